/* One freed task's final accounting, as the exit program writes it to its ring buffer and
 * src/exits/ebpf/record.rs reads it: host byte order, fields at fixed offsets (the layout is
 * checked by both sides: EXIT_RECORD_SIZE). */
#ifndef CAPTURE_EXIT_RECORD_H
#define CAPTURE_EXIT_RECORD_H

#define EXIT_RECORD_SIZE 240

/* flags */
#define EXIT_AUTOREAPED 1 /* no parent waited for it: its I/O was not added to a parent's */
#define EXIT_REPLACED_LEADER 2 /* a group leader whose place another thread took by exec'ing:
				* its pid is the process's, but the process goes on */

struct exit_record {
	__u64 start_boottime_ns;   /*   0: the process's (group leader's) start, boot-based */
	__u64 runtime_ns;          /*   8: se.sum_exec_runtime, final */
	__u64 utime_ns;            /*  16: tick-sampled, for the user/system split */
	__u64 stime_ns;            /*  24 */
	__u64 min_flt;             /*  32 */
	__u64 maj_flt;             /*  40 */
	__u64 nvcsw;               /*  48 */
	__u64 nivcsw;              /*  56 */
	__u64 rchar;               /*  64 */
	__u64 wchar;               /*  72 */
	__u64 syscr;               /*  80 */
	__u64 syscw;               /*  88 */
	__u64 read_bytes;          /*  96 */
	__u64 write_bytes;         /* 104 */
	__u64 cancelled_write_bytes; /* 112 */
	__u64 cpu_delay_ns;        /* 120: sched_info.run_delay */
	__u64 blkio_delay_ns;      /* 128: 0 without delay accounting */
	__u64 swapin_delay_ns;     /* 136 */
	__u64 reclaim_delay_ns;    /* 144: freepages_delay */
	/* The group leader's only: its process's shared I/O (exited threads, reaped children),
	 * which the kernel adds with the leader's own to its parent's when the parent reaps it. */
	__u64 signal_rchar;        /* 152 */
	__u64 signal_wchar;        /* 160 */
	__u64 signal_syscr;        /* 168 */
	__u64 signal_syscw;        /* 176 */
	__u64 signal_read_bytes;   /* 184 */
	__u64 signal_write_bytes;  /* 192 */
	__u32 pid;                 /* 200: the thread */
	__u32 tgid;                /* 204: its process */
	__u32 ppid;                /* 208: the process's parent (real_parent's tgid) when freed */
	__u32 uid;                 /* 212: real uid */
	__u32 flags;               /* 216: EXIT_* */
	__u32 reserved;            /* 220 */
	char comm[16];             /* 224: the thread's */
};

#endif
