/* The kernel types the exit program reads, declared with only the fields it uses. As for the
 * owner programs (src/net/ownership/ebpf/bpf/kernel.h, which says why not a vmlinux.h):
 * `preserve_access_index` makes every access a CO-RE relocation that libbpf resolves against
 * the running kernel's BTF, so the offsets here do not matter. */
#ifndef CAPTURE_EXITS_KERNEL_H
#define CAPTURE_EXITS_KERNEL_H

#include "types.h"

typedef struct {
	__u32 val;
} kuid_t;

struct cred {
	kuid_t uid;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct sched_info {
	unsigned long long run_delay;
} __attribute__((preserve_access_index));

struct task_io_accounting {
	__u64 rchar;
	__u64 wchar;
	__u64 syscr;
	__u64 syscw;
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 cancelled_write_bytes;
} __attribute__((preserve_access_index));

struct task_delay_info {
	__u64 blkio_delay;
	__u64 swapin_delay;
	__u64 freepages_delay;
} __attribute__((preserve_access_index));

/* Only the first two fields of the kernel's (their order is x86's and arm64's; CO-RE finds
 * them by name elsewhere). */
struct sigaction {
	void *sa_handler;
	unsigned long sa_flags;
} __attribute__((preserve_access_index));

struct k_sigaction {
	struct sigaction sa;
} __attribute__((preserve_access_index));

struct sighand_struct {
	struct k_sigaction action[64];
} __attribute__((preserve_access_index));

/* The process's shared accounting: what its exited threads and reaped children did. */
struct signal_struct {
	struct task_io_accounting ioac;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int flags;
	unsigned int ptrace;
	int exit_signal;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	__u64 utime;
	__u64 stime;
	unsigned long nvcsw;
	unsigned long nivcsw;
	__u64 start_boottime;
	unsigned long min_flt;
	unsigned long maj_flt;
	const struct cred *real_cred;
	char comm[16];
	struct sched_entity se;
	struct sched_info sched_info;
	struct task_io_accounting ioac;
	struct task_delay_info *delays;
	struct signal_struct *signal;
	struct sighand_struct *sighand;
} __attribute__((preserve_access_index));

/* Before Linux 5.5 the boot-based start time was `real_start_time`. */
struct task_struct___before_5_5 {
	__u64 real_start_time;
} __attribute__((preserve_access_index));

#endif
