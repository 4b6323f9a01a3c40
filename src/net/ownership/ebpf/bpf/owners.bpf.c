// SPDX-License-Identifier: MIT OR GPL-2.0
/* Who uses which socket, recorded in the kernel in the context of the process that uses it
 * (collectd-capture's eBPF owner source; user space: ../mod.rs).
 *
 * Hooks, all BTF-enabled tracepoints (attached by name: no kprobes, no tracefs needed):
 * - sock:inet_sock_set_state (Linux 4.16; tp_btf 5.5): a TCP connect(). The SYN_SENT change
 *   runs in the connecting process, before the kernel picks the source port, so the owner is
 *   kept in the socket's storage then and recorded at ESTABLISHED, when the 4-tuple is whole.
 * - sock:sock_send_length, sock:sock_recv_length (Linux 6.3): every sendmsg/recvmsg (send,
 *   sendto, write, recvfrom, read, io_uring ...) on a socket, after it, in the process's context.
 *
 * Cheap by design: a socket is recorded once per process that uses it (and again every
 * REFRESH_NS while used, so user space, which forgets records after a while, always has a fresh
 * one for a live socket); every other call costs one socket-storage lookup and a compare.
 * Bounded: the ring buffer has a fixed size and a record that does not fit is counted in
 * `lost`, never waited for; socket storage is freed with its socket.
 * Reads socket and task metadata only, never a byte of payload. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lost.h"
#include <bpf/bpf_endian.h>
#include "record.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* A live socket is recorded again after this long, while it is used. */
#define REFRESH_NS (10ULL * 1000 * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Set by user space before loading (records_ring_bytes). */
	__uint(max_entries, 1 << 20);
} records SEC(".maps");


/* What a socket's storage keeps: who was recorded last, when, with which peer; and, between a
 * TCP connect() and its ESTABLISHED, the connecting process. */
struct seen {
	__u64 recorded_ns;
	__u64 start_boottime_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 uid;
	__u32 remote_addr_hash;
	__u16 remote_port;
	__u8 connecting;
	__u8 pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct seen);
} sockets SEC(".maps");

static __always_inline __u64 start_boottime(struct task_struct *leader)
{
	if (bpf_core_field_exists(leader->start_boottime))
		return BPF_CORE_READ(leader, start_boottime);
	return BPF_CORE_READ((struct task_struct___before_5_5 *)leader, real_start_time);
}

/* The current process's facts, into `seen`. */
static __always_inline void current_process(struct seen *seen)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	seen->tgid = bpf_get_current_pid_tgid() >> 32;
	seen->uid = (__u32)bpf_get_current_uid_gid();
	seen->cgroup_id = bpf_get_current_cgroup_id();
	seen->start_boottime_ns = start_boottime(leader);
	BPF_CORE_READ_STR_INTO(&seen->comm, leader, comm);
}

/* An IPv4 or IPv6 TCP or UDP socket: the only kind the capture attributes. The socket is the
 * tracepoint's own argument, a pointer the verifier trusts: its fields are read directly (a
 * load each, relocated by CO-RE), not through bpf_probe_read_kernel (a helper call each), which
 * matters on a path that runs on every send and receive. */
static __always_inline bool is_inet_transport(struct sock *sk, __u16 *family, __u8 *protocol)
{
	*family = sk->__sk_common.skc_family;
	if (*family != AF_INET && *family != AF_INET6)
		return false;
	__u16 type = sk->sk_type;
	__u16 proto = sk->sk_protocol;
	if (type == SOCK_STREAM && proto == IPPROTO_TCP)
		*protocol = IPPROTO_TCP;
	else if (type == SOCK_DGRAM && proto == IPPROTO_UDP)
		*protocol = IPPROTO_UDP;
	else
		return false;
	return true;
}

static __always_inline __u32 remote_hash(struct sock *sk, __u16 family)
{
	if (family == AF_INET)
		return sk->__sk_common.skc_daddr;
	__u32 h = 0;
	for (int i = 0; i < 4; i++)
		h = h * 31 + sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
	return h;
}

/* Sends one record of `sk` owned by `seen`'s process; counts it lost when it does not fit. */
static __always_inline void record(struct sock *sk, __u16 family, __u8 protocol, __u8 event,
				   const struct seen *seen, __u64 now)
{
	struct owner_record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		count_lost();
		return;
	}
	r->start_boottime_ns = seen->start_boottime_ns;
	r->cgroup_id = seen->cgroup_id;
	r->socket_inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	r->recorded_ns = now;
	r->netns_inode = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->tgid = seen->tgid;
	r->uid = seen->uid;
	r->family = family;
	r->protocol = protocol;
	r->event = event;
	r->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__builtin_memset(r->local_addr, 0, sizeof(r->local_addr));
	__builtin_memset(r->remote_addr, 0, sizeof(r->remote_addr));
	if (family == AF_INET) {
		__be32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 remote = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(r->local_addr, &local, 4);
		__builtin_memcpy(r->remote_addr, &remote, 4);
	} else {
		BPF_CORE_READ_INTO(&r->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	__builtin_memcpy(r->comm, seen->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
}

/* A process sent or received on `sk`: recorded unless this process was recorded for this
 * socket and peer less than REFRESH_NS ago. */
static __always_inline void used(struct sock *sk, __u8 event)
{
	__u16 family;
	__u8 protocol;
	if (!sk || !is_inet_transport(sk, &family, &protocol))
		return;
	struct seen *seen = bpf_sk_storage_get(&sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!seen)
		return;
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u16 remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	__u32 hash = remote_hash(sk, family);
	if (seen->recorded_ns && seen->tgid == tgid && seen->remote_port == remote_port &&
	    seen->remote_addr_hash == hash && now - seen->recorded_ns < REFRESH_NS)
		return;
	current_process(seen);
	seen->recorded_ns = now;
	seen->remote_port = remote_port;
	seen->remote_addr_hash = hash;
	seen->connecting = 0;
	record(sk, family, protocol, event, seen, now);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int ret, int flags)
{
	if (ret > 0)
		used(sk, OWNER_EVENT_SENT);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_receive, struct sock *sk, int ret, int flags)
{
	if (ret > 0)
		used(sk, OWNER_EVENT_RECEIVED);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_tcp_state, const struct sock *csk, int oldstate, int newstate)
{
	struct sock *sk = (struct sock *)csk;
	__u16 family;
	__u8 protocol;
	if (!is_inet_transport(sk, &family, &protocol) || protocol != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT) {
		/* In connect(), in the connecting process: keep who, record at ESTABLISHED. */
		struct seen *seen =
			bpf_sk_storage_get(&sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!seen)
			return 0;
		current_process(seen);
		seen->recorded_ns = 0;
		seen->connecting = 1;
		return 0;
	}
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT) {
		/* In softirq, any process's context: the owner is the one kept at SYN_SENT. */
		struct seen *seen = bpf_sk_storage_get(&sockets, sk, 0, 0);
		if (!seen || !seen->connecting)
			return 0;
		__u64 now = bpf_ktime_get_ns();
		seen->connecting = 0;
		seen->recorded_ns = now;
		seen->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		seen->remote_addr_hash = remote_hash(sk, family);
		record(sk, family, protocol, OWNER_EVENT_CONNECTED, seen, now);
	}
	return 0;
}
