/* The kernel's fixed-width types and the BPF map types, as every program of the plugin uses them
 * (src/net/ownership/ebpf/bpf, src/exits/ebpf/bpf). Spelled out rather than taken from
 * <linux/types.h> and <linux/bpf.h>: those pull in the build host's asm headers, which clang's
 * BPF target does not find on every distribution. The map types are the UAPI's numbers (a
 * stable ABI). Each program's kernel.h adds the structures it reads. */
#ifndef CAPTURE_TYPES_H
#define CAPTURE_TYPES_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum {
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#endif
