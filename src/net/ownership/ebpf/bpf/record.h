/* One owner record: what the programs send user space through the ring buffer. The layout is
 * the contract with `record.rs`, which parses it by these offsets (and checks the size): change
 * both together. Every field is in host byte order except the addresses, which are as on the
 * wire. */
#ifndef CAPTURE_RECORD_H
#define CAPTURE_RECORD_H

/* What the process did with the socket when it was recorded. */
#define OWNER_EVENT_CONNECTED 1 /* its connect() completed (TCP, recorded at ESTABLISHED) */
#define OWNER_EVENT_SENT 2      /* it sent on the socket */
#define OWNER_EVENT_RECEIVED 3  /* it received from the socket */

struct owner_record {
	/* The thread group leader's start, ns after boot (task->start_boottime): user space turns
	 * it into /proc/PID/stat's clock ticks, so it keys the same (pid, start time) as the
	 * sampler. */
	__u64 start_boottime_ns; /* 0 */
	__u64 cgroup_id;         /* 8: cgroup v2 id of the task */
	__u64 socket_inode;      /* 16: the socket's inode (sock_diag gives the same), 0 if none */
	__u64 recorded_ns;       /* 24: when, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 netns_inode;       /* 32: the socket's network namespace (its nsfs inode) */
	__u32 tgid;              /* 36 */
	__u32 uid;               /* 40: real uid */
	__u16 family;            /* 44: AF_INET or AF_INET6 */
	__u8 protocol;           /* 46: IPPROTO_TCP or IPPROTO_UDP */
	__u8 event;              /* 47: OWNER_EVENT_* */
	__u16 local_port;        /* 48 */
	__u16 remote_port;       /* 50: 0 when the socket has no peer */
	__u8 local_addr[16];     /* 52: IPv4 in the first 4 bytes */
	__u8 remote_addr[16];    /* 68 */
	char comm[16];           /* 84: the thread group leader's comm */
};                               /* 100 (104 with the tail padding) */

#endif
