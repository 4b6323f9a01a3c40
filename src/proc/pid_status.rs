//! `/proc/<pid>/status` (and `/proc/<pid>/task/<tid>/status`): the real uid, for the `User`
//! criterion and the `{user}`/`{uid}` placeholders; the memory split of `CollectMemoryDetails`
//! (code, data, stack); and a thread's context switches, for `CollectContextSwitch`.

use super::{parse_u64, ProcRoot};
use std::io;

/// The values `CollectMemoryDetails` and `CollectContextSwitch` take from a status file. A
/// line the file lacks reads 0: kernel threads have no `Vm` lines (no memory of their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Details {
    /// `VmExe` + `VmLib`: the executable's and the libraries' code mappings, as the processes
    /// plugin's `ps_code`.
    pub code_bytes: u64,
    /// `VmData`: private writable mappings and the heap (`ps_data`).
    pub data_bytes: u64,
    /// `VmStk`: the main thread's stack mapping (`ps_stacksize`).
    pub stack_bytes: u64,
    /// The thread's own context switches (the file of a process is its leader thread's).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// The [`Details`] of a status file; `None` when it holds none of their lines (not a status
/// file, or one cut short before them).
pub fn parse_details(content: &[u8]) -> Option<Details> {
    let mut details = Details::default();
    let mut found = false;
    for line in content.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, rest) = (&line[..colon], &line[colon + 1..]);
        let slot = match key {
            b"VmExe" | b"VmLib" => &mut details.code_bytes,
            b"VmData" => &mut details.data_bytes,
            b"VmStk" => &mut details.stack_bytes,
            b"voluntary_ctxt_switches" => &mut details.voluntary_switches,
            b"nonvoluntary_ctxt_switches" => &mut details.involuntary_switches,
            _ => continue,
        };
        let mut words = rest
            .split(|&b| b == b'\t' || b == b' ')
            .filter(|w| !w.is_empty());
        let Some(value) = words.next().and_then(parse_u64) else {
            continue;
        };
        // The memory lines are in kB (the kernel's `kB` means KiB); the switch counts are not.
        let value = if words.next() == Some(b"kB") {
            value.saturating_mul(1024)
        } else {
            value
        };
        *slot = slot.saturating_add(value);
        found = true;
    }
    found.then_some(details)
}

/// Real uid: the first number of the `Uid:` line (real, effective, saved, filesystem).
pub fn parse_real_uid(content: &[u8]) -> Option<u32> {
    let line = content
        .split(|&b| b == b'\n')
        .find(|line| line.starts_with(b"Uid:"))?;
    let first = line[4..]
        .split(|&b| b == b'\t' || b == b' ')
        .find(|f| !f.is_empty())?;
    u32::try_from(parse_u64(first)?).ok()
}

/// Context switches of the threads of process `pid` other than its leader (whose are in the
/// process's own status file), each thread's `task/<tid>/status` read and summed — the
/// kernel has no per-process sum of live threads in /proc. A thread that ended took its
/// count with it, so the sum can fall; the accounting never lowers what it reported, and a
/// process's exit record brings all its threads' in the end.
pub fn other_threads_switches(proc: &mut ProcRoot, pid: u32) -> io::Result<(u64, u64)> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(proc.path(Some(pid), "task"))?.flatten() {
        if let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        {
            if tid != pid {
                tids.push(tid);
            }
        }
    }
    let (mut voluntary, mut involuntary) = (0u64, 0u64);
    for tid in tids {
        // A thread that ended since the listing is skipped, as it would have been a moment later.
        let Ok(content) = proc.read(Some(pid), &format!("task/{tid}/status"), 4096) else {
            continue;
        };
        if let Some(d) = parse_details(content) {
            voluntary = voluntary.saturating_add(d.voluntary_switches);
            involuntary = involuntary.saturating_add(d.involuntary_switches);
        }
    }
    Ok((voluntary, involuntary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_uid() {
        let status = b"Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\n\
            Uid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_real_uid(status), Some(1000));
    }

    #[test]
    fn details_of_a_process() {
        let status = b"Name:\tcat\nVmPeak:\t    3060 kB\nVmData:\t     360 kB\n\
            VmStk:\t     132 kB\nVmExe:\t      20 kB\nVmLib:\t    1528 kB\nVmPTE:\t48 kB\n\
            Threads:\t1\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(
            parse_details(status),
            Some(Details {
                code_bytes: (20 + 1528) * 1024,
                data_bytes: 360 * 1024,
                stack_bytes: 132 * 1024,
                voluntary_switches: 7,
                involuntary_switches: 2,
            })
        );
    }

    #[test]
    fn details_of_a_kernel_thread_are_its_switches() {
        let status = b"Name:\tkthreadd\nThreads:\t1\nvoluntary_ctxt_switches:\t12\n\
            nonvoluntary_ctxt_switches:\t0\n";
        let details = parse_details(status).unwrap();
        assert_eq!((details.code_bytes, details.voluntary_switches), (0, 12));
        assert_eq!(parse_details(b"Name:\tx\nUid:\t0\n"), None);
        assert_eq!(parse_details(b"VmData:\tlots kB\n"), None);
    }

    #[test]
    fn details_of_this_process() {
        let content = std::fs::read("/proc/self/status").unwrap();
        let details = parse_details(&content).unwrap();
        assert!(details.code_bytes > 0 && details.data_bytes > 0 && details.stack_bytes > 0);
    }

    #[test]
    fn switches_of_the_other_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            for _ in 0..20 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            rx.recv().ok();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut proc = ProcRoot::system();
        let (voluntary, _) = other_threads_switches(&mut proc, std::process::id()).unwrap();
        tx.send(()).unwrap();
        sleeper.join().unwrap();
        assert!(voluntary >= 20, "the sleeper slept 20 times: {voluntary}");
    }

    #[test]
    fn missing_or_bad() {
        assert_eq!(parse_real_uid(b"Name:\tx\n"), None);
        assert_eq!(parse_real_uid(b"Uid:\t\n"), None);
        assert_eq!(parse_real_uid(b"Uid:\t99999999999\t0\n"), None);
        assert_eq!(parse_real_uid(b"Uid:"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The real uid is the first of the `Uid:` line's four, wherever the line is.
            #[test]
            fn real_uid_comes_back(
                ids in any::<[u32; 4]>(),
                before in prop::collection::vec("[A-Z][a-z_]{1,10}:\t[a-z0-9 ()]{0,20}", 0..8),
            ) {
                let mut status = before.join("\n");
                status.push_str(&format!(
                    "\nUid:\t{}\t{}\t{}\t{}\nGid:\t0\t0\t0\t0\n",
                    ids[0], ids[1], ids[2], ids[3]
                ));
                prop_assert_eq!(parse_real_uid(status.as_bytes()), Some(ids[0]));
            }

            /// Each memory line is read in kB wherever it is; the code is VmExe + VmLib.
            #[test]
            fn details_come_back(
                kib in any::<[u32; 4]>(),
                switches in any::<[u32; 2]>(),
                before in prop::collection::vec("[A-Z][a-z_]{1,10}:\t[a-z0-9 ()]{0,20}", 0..8),
            ) {
                let mut status = before.join("\n");
                status.push_str(&format!(
                    "\nVmData:\t{} kB\nVmStk:\t{} kB\nVmExe:\t{} kB\nVmLib:\t{} kB\n\
                     voluntary_ctxt_switches:\t{}\nnonvoluntary_ctxt_switches:\t{}\n",
                    kib[0], kib[1], kib[2], kib[3], switches[0], switches[1]
                ));
                let d = parse_details(status.as_bytes()).unwrap();
                let k = |v: u32| u64::from(v) * 1024;
                prop_assert_eq!(d.data_bytes, k(kib[0]));
                prop_assert_eq!(d.stack_bytes, k(kib[1]));
                prop_assert_eq!(d.code_bytes, k(kib[2]) + k(kib[3]));
                prop_assert_eq!(d.voluntary_switches, u64::from(switches[0]));
                prop_assert_eq!(d.involuntary_switches, u64::from(switches[1]));
            }

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_details(&content);
                if parse_real_uid(&content).is_some() {
                    prop_assert!(content.split(|&b| b == b'\n').any(|l| l.starts_with(b"Uid:")));
                }
            }
        }
    }
}
