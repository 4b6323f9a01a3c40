/* The few kernel types the owner programs read, declared with only the fields they use.
 *
 * Why not a generated vmlinux.h: it is 3 MB of one kernel's types, and bpftool would be needed at
 * build time to make it. `preserve_access_index` makes every field access a CO-RE relocation:
 * libbpf finds each field by name in the running kernel's BTF (/sys/kernel/btf/vmlinux) when it
 * loads the programs, so the offsets here do not matter and one object runs on every kernel that
 * has the fields. Anonymous unions mirror the kernel's (libbpf matches through them). */
#ifndef CAPTURE_KERNEL_H
#define CAPTURE_KERNEL_H

#include "types.h"

enum {
	BPF_F_NO_PREALLOC = 1,
};
enum {
	BPF_SK_STORAGE_GET_F_CREATE = 1,
};

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
	struct socket *sk_socket;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	struct task_struct *group_leader;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

/* Before Linux 5.5 the boot-based start time was `real_start_time`. */
struct task_struct___before_5_5 {
	__u64 real_start_time;
} __attribute__((preserve_access_index));

#endif
