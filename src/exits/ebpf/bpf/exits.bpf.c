// SPDX-License-Identifier: MIT OR GPL-2.0
/* What each task used, told when the kernel frees it (collectd-capture's exit records; user
 * space: ../mod.rs).
 *
 * Hook: sched:sched_process_free (tp_btf, Linux 5.5; attached by name), which runs in an RCU
 * callback once a task is both reaped and switched out for the last time: its CPU time
 * (se.sum_exec_runtime) and I/O counters are final, teardown included. taskstats' exit record
 * is written earlier in do_exit, before the task frees its memory and files and exits:
 * measured, 100 short shells' records held 82% of the CPU time their parent's rusage gave
 * them (src/exits/source.rs).
 *
 * One record per thread (a process's numbers are its threads' sum), written to a ring buffer;
 * a record that does not fit is counted in `lost`, never waited for. Reads task accounting
 * only. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lost.h"
#include "exit_record.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* PF_KTHREAD: kernel threads are not processes anyone reports. */
#define PF_KTHREAD 0x00200000
#define SIGCHLD 17
#define SIG_IGN ((void *)1)
#define SA_NOCLDWAIT 2

/* Whether `leader`'s end was not waited for (do_notify_parent's test): a parent that ignores
 * SIGCHLD or set SA_NOCLDWAIT has its children reaped by the kernel, their I/O added nowhere.
 * Read when the task is freed, moments after it exited: a parent changing its disposition in
 * between is not worth more. */
static __always_inline bool autoreaped(struct task_struct *leader)
{
	if (BPF_CORE_READ(leader, ptrace) || BPF_CORE_READ(leader, exit_signal) != SIGCHLD)
		return false;
	struct sighand_struct *sighand = BPF_CORE_READ(leader, real_parent, sighand);
	if (!sighand)
		return false;
	struct sigaction action;
	if (bpf_core_read(&action, sizeof(action), &sighand->action[SIGCHLD - 1].sa))
		return false;
	return action.sa_handler == SIG_IGN || (action.sa_flags & SA_NOCLDWAIT);
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} exits SEC(".maps");


_Static_assert(sizeof(struct exit_record) == EXIT_RECORD_SIZE, "exit record layout");

static __always_inline __u64 start_boottime(struct task_struct *leader)
{
	if (bpf_core_field_exists(leader->start_boottime))
		return BPF_CORE_READ(leader, start_boottime);
	return BPF_CORE_READ((struct task_struct___before_5_5 *)leader, real_start_time);
}

SEC("tp_btf/sched_process_free")
int BPF_PROG(on_free, struct task_struct *task)
{
	if (task->flags & PF_KTHREAD)
		return 0;
	struct exit_record *r = bpf_ringbuf_reserve(&exits, sizeof(*r), 0);
	if (!r) {
		count_lost();
		return 0;
	}
	struct task_struct *leader = task->group_leader;
	r->start_boottime_ns = start_boottime(leader);
	r->runtime_ns = task->se.sum_exec_runtime;
	r->utime_ns = task->utime;
	r->stime_ns = task->stime;
	r->min_flt = task->min_flt;
	r->maj_flt = task->maj_flt;
	r->nvcsw = task->nvcsw;
	r->nivcsw = task->nivcsw;
	r->rchar = task->ioac.rchar;
	r->wchar = task->ioac.wchar;
	r->syscr = task->ioac.syscr;
	r->syscw = task->ioac.syscw;
	if (bpf_core_field_exists(task->ioac.read_bytes)) {
		r->read_bytes = task->ioac.read_bytes;
		r->write_bytes = task->ioac.write_bytes;
		r->cancelled_write_bytes = task->ioac.cancelled_write_bytes;
	} else {
		r->read_bytes = 0;
		r->write_bytes = 0;
		r->cancelled_write_bytes = 0;
	}
	r->cpu_delay_ns = task->sched_info.run_delay;
	struct task_delay_info *delays = task->delays;
	if (delays) {
		r->blkio_delay_ns = BPF_CORE_READ(delays, blkio_delay);
		r->swapin_delay_ns = BPF_CORE_READ(delays, swapin_delay);
		r->reclaim_delay_ns = BPF_CORE_READ(delays, freepages_delay);
	} else {
		r->blkio_delay_ns = 0;
		r->swapin_delay_ns = 0;
		r->reclaim_delay_ns = 0;
	}
	r->flags = 0;
	r->reserved = 0;
	if (task->pid == task->tgid && leader != task) {
		/* de_thread: a thread exec'd and became the leader; this is the old one. */
		r->flags |= EXIT_REPLACED_LEADER;
	}
	if (task->pid == task->tgid && leader == task) {
		struct signal_struct *signal = task->signal;
		r->signal_rchar = BPF_CORE_READ(signal, ioac.rchar);
		r->signal_wchar = BPF_CORE_READ(signal, ioac.wchar);
		r->signal_syscr = BPF_CORE_READ(signal, ioac.syscr);
		r->signal_syscw = BPF_CORE_READ(signal, ioac.syscw);
		if (bpf_core_field_exists(signal->ioac.read_bytes)) {
			r->signal_read_bytes = BPF_CORE_READ(signal, ioac.read_bytes);
			r->signal_write_bytes = BPF_CORE_READ(signal, ioac.write_bytes);
		} else {
			r->signal_read_bytes = 0;
			r->signal_write_bytes = 0;
		}
		if (autoreaped(task))
			r->flags |= EXIT_AUTOREAPED;
	} else {
		r->signal_rchar = 0;
		r->signal_wchar = 0;
		r->signal_syscr = 0;
		r->signal_syscw = 0;
		r->signal_read_bytes = 0;
		r->signal_write_bytes = 0;
	}
	r->pid = task->pid;
	r->tgid = task->tgid;
	r->ppid = BPF_CORE_READ(leader, real_parent, tgid);
	r->uid = BPF_CORE_READ(task, real_cred, uid.val);
	__builtin_memcpy(r->comm, task->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
	return 0;
}
