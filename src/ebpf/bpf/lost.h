/* The count of records a program's ring buffer had no room for, which every program of the
 * plugin keeps in its map `lost`, one slot per CPU (user space sums them: crate::ebpf reads it).
 * Include after <bpf/bpf_helpers.h>. */
#ifndef CAPTURE_LOST_H
#define CAPTURE_LOST_H

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Counts one record lost on this CPU. Atomic although the slot is this CPU's: a program run
 * from a softirq (the exit program's tracepoint fires in RCU callbacks) may interrupt one run
 * in task context on the same CPU. */
static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&lost, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
}

#endif
