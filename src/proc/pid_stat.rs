//! `/proc/<pid>/stat`: the one file read for every process on every cycle — command name,
//! state, CPU time, thread count, start time and memory.

use super::{parse_i64, parse_u64};

/// `PF_KTHREAD` in the flags field: the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/<pid>/stat` the sampler uses. `comm` borrows the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// Command name as the kernel reports it: raw bytes, may hold spaces, parentheses, even
    /// newlines, and is not necessarily UTF-8.
    pub comm: &'a [u8],
    /// Single-letter state (`R`, `S`, `Z`, ...).
    pub state: u8,
    pub ppid: u32,
    /// Page faults that needed no I/O (`minflt`) and that did (`majflt`), of the process's own
    /// threads, exited ones included (not of its children).
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Minor faults of the children this process has waited for (`cminflt`). It grows whenever
    /// the process reaps a child — every process faults at least once — which is how the
    /// sampler tells that the kernel has just folded a child's I/O counters into this one's.
    pub children_minflt: u64,
    pub kernel_thread: bool,
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    /// Start time in clock ticks after boot; with the pid it identifies a process for life.
    pub starttime: u64,
    /// Virtual memory size, bytes.
    pub vsize: u64,
    /// Resident set, pages.
    pub rss_pages: u64,
}

/// Parses the content of `/proc/<pid>/stat`. The command name is delimited by the first `(` and
/// the *last* `)` because the name itself may contain either.
pub fn parse(content: &[u8]) -> Option<PidStat<'_>> {
    let open = content.iter().position(|&b| b == b'(')?;
    let close = content.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &content[open + 1..close];
    let rest = content.get(close + 1..)?;
    // Fields 3 (state) to 24 (rss) of proc(5), the ones after the command name.
    let mut fields: [&[u8]; 22] = [&[]; 22];
    let mut count = 0;
    for field in rest
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty())
        .take(fields.len())
    {
        fields[count] = field;
        count += 1;
    }
    if count < fields.len() {
        return None;
    }
    let field = |number: usize| fields[number - 3];
    let state = *field(3).first()?;
    let ppid = u32::try_from(parse_u64(field(4))?).ok()?;
    let flags = parse_u64(field(9))?;
    let minor_faults = parse_u64(field(10))?;
    let children_minflt = parse_u64(field(11))?;
    let major_faults = parse_u64(field(12))?;
    let utime = parse_u64(field(14))?;
    let stime = parse_u64(field(15))?;
    let num_threads = parse_i64(field(20))?.max(0) as u64;
    let starttime = parse_u64(field(22))?;
    let vsize = parse_u64(field(23))?;
    let rss_pages = parse_i64(field(24))?.max(0) as u64;

    Some(PidStat {
        comm,
        state,
        ppid,
        minor_faults,
        major_faults,
        children_minflt,
        kernel_thread: flags & PF_KTHREAD != 0,
        utime,
        stime,
        num_threads,
        starttime,
        vsize,
        rss_pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: &[u8] = b"1234 (bash) S 1000 1234 1234 34816 5678 4194304 2461 14577 0 4 \
        17 9 51 23 20 0 1 0 81234 9539584 1344 18446744073709551615 94 95 96 0 0 0 65536 \
        3686404 1266761467 1 0 0 17 1 0 0 0 0 0 97 98 99 100 101 102 103 0\n";

    #[test]
    fn ordinary_process() {
        let s = parse(BASH).unwrap();
        assert_eq!(s.comm, b"bash");
        assert_eq!(s.state, b'S');
        assert_eq!((s.ppid, s.children_minflt), (1000, 14577));
        assert_eq!((s.minor_faults, s.major_faults), (2461, 0));
        assert!(!s.kernel_thread);
        assert_eq!((s.utime, s.stime), (17, 9));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.starttime, 81234);
        assert_eq!(s.vsize, 9539584);
        assert_eq!(s.rss_pages, 1344);
    }

    #[test]
    fn comm_with_spaces_parentheses_and_newline() {
        let line =
            b"77 (a) b (c\n) d) R 1 77 77 0 -1 4194560 0 0 0 0 5 6 0 0 20 0 3 0 99 100 7 0\n";
        let s = parse(line).unwrap();
        assert_eq!(s.comm, b"a) b (c\n) d");
        assert_eq!(s.state, b'R');
        assert_eq!((s.utime, s.stime, s.num_threads), (5, 6, 3));
        assert_eq!((s.starttime, s.vsize, s.rss_pages), (99, 100, 7));
    }

    #[test]
    fn non_utf8_comm() {
        let line = b"5 (\xff\xfe) S 1 5 5 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 3 4 5\n";
        assert_eq!(parse(line).unwrap().comm, b"\xff\xfe");
    }

    #[test]
    fn kernel_thread_flag() {
        let line = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 1 0 0\n";
        let s = parse(line).unwrap();
        assert!(s.kernel_thread);
        assert_eq!((s.vsize, s.rss_pages), (0, 0));
    }

    #[test]
    fn zombie() {
        let line = b"900 (defunct) Z 1 900 900 0 -1 4227084 0 0 0 0 3 4 0 0 20 0 1 0 500 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let s = parse(line).unwrap();
        assert_eq!(s.state, b'Z');
        assert_eq!((s.utime, s.stime), (3, 4));
    }

    #[test]
    fn truncated_and_garbage_never_panic() {
        for cut in 0..BASH.len() {
            let _ = parse(&BASH[..cut]);
        }
        assert!(parse(b"").is_none());
        assert!(parse(b"1 (x)").is_none());
        assert!(parse(b")(").is_none());
        assert!(parse(b"1 (x) S a b c").is_none());
        // Cut right after the rss field still parses; one field earlier does not.
        let upto_rss = b"1 (x) S 0 0 0 0 0 0 0 0 0 0 1 2 0 0 0 0 1 0 5 6 7";
        assert!(parse(upto_rss).is_some());
        assert!(parse(&upto_rss[..upto_rss.len() - 2]).is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Command names as hostile as the kernel allows: any byte but NUL, weighted towards
        /// spaces, parentheses, newlines and bytes that are not UTF-8.
        fn comm() -> impl Strategy<Value = Vec<u8>> {
            let byte = prop_oneof![
                prop::sample::select(b" ()\n\t)(\xff\xc3".to_vec()),
                1u8..=255,
            ];
            prop::collection::vec(byte, 0..=32)
        }

        proptest! {
            /// A stat line written as the kernel writes it gives every field back, whatever
            /// the command name holds and however many fields follow rss.
            #[test]
            fn fields_come_back(
                pid in any::<u32>(),
                comm in comm(),
                state in prop::sample::select(b"RSDZTtXIPW".to_vec()),
                ppid in any::<u32>(),
                flags in any::<u64>(),
                children_minflt in any::<u64>(),
                (minflt, majflt) in any::<(u64, u64)>(),
                (utime, stime) in any::<(u64, u64)>(),
                num_threads in any::<i64>(),
                starttime in any::<u64>(),
                vsize in any::<u64>(),
                rss in any::<i64>(),
                tail in 0usize..30,
            ) {
                let mut line = format!("{pid} (").into_bytes();
                line.extend_from_slice(&comm);
                line.extend_from_slice(
                    format!(
                        ") {} {ppid} {pid} {pid} 34816 -1 {flags} {minflt} {children_minflt} {majflt} 0 \
                         {utime} {stime} 0 0 20 0 {num_threads} 0 {starttime} {vsize} {rss}",
                        state as char
                    )
                    .as_bytes(),
                );
                for i in 0..tail {
                    line.extend_from_slice(format!(" {i}").as_bytes());
                }
                line.push(b'\n');
                let s = parse(&line).expect("a well-formed line");
                prop_assert_eq!(s.comm, &comm[..]);
                prop_assert_eq!(s.state, state);
                prop_assert_eq!(s.ppid, ppid);
                prop_assert_eq!(s.children_minflt, children_minflt);
                prop_assert_eq!((s.minor_faults, s.major_faults), (minflt, majflt));
                prop_assert_eq!(s.kernel_thread, flags & PF_KTHREAD != 0);
                prop_assert_eq!((s.utime, s.stime), (utime, stime));
                prop_assert_eq!(s.num_threads, num_threads.max(0) as u64);
                prop_assert_eq!((s.starttime, s.vsize), (starttime, vsize));
                prop_assert_eq!(s.rss_pages, rss.max(0) as u64);
            }

            /// Any bytes: no panic, and a command name is what lies between the first `(` and
            /// the last `)`.
            #[test]
            fn arbitrary_bytes(content in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Some(s) = parse(&content) {
                    let open = content.iter().position(|&b| b == b'(').unwrap();
                    let close = content.iter().rposition(|&b| b == b')').unwrap();
                    prop_assert_eq!(s.comm, &content[open + 1..close]);
                }
            }
        }
    }
}
