//! A process's soft `RLIMIT_NOFILE`: from `prlimit64(2)` when allowed (one system call, no
//! text), else from `/proc/<pid>/limits`, which is world-readable.
//!
//! `prlimit64` on another process needs the same real and saved ids as the caller or
//! `CAP_SYS_RESOURCE` (root has it); a collectd without it gets EPERM, and the file answers.

use super::{parse_u64, ProcRoot};
use std::io;

/// The kernel's `RLIM_INFINITY`: no limit. Linux refuses it for `RLIMIT_NOFILE` (the ceiling is
/// `fs.nr_open`), but `/proc/PID/limits` can say `unlimited` for other resources, and a parser
/// must not trip on it should it ever appear here.
pub const UNLIMITED: u64 = u64::MAX;

/// `/proc/<pid>/limits` is about 1.6 KiB.
pub const READ_LIMIT: usize = 4096;

/// The soft limit of `Max open files` in the content of `/proc/<pid>/limits`: a number, or
/// [`UNLIMITED`]. `None` when the line is missing or unreadable.
pub fn parse_soft_nofile(content: &[u8]) -> Option<u64> {
    const NAME: &[u8] = b"Max open files";
    let line = content
        .split(|&b| b == b'\n')
        .find(|line| line.starts_with(NAME))?;
    // The name column is padded with spaces; the soft limit is the first field after it.
    let soft = line[NAME.len()..]
        .split(|&b| b == b' ' || b == b'\t')
        .find(|field| !field.is_empty())?;
    if soft == b"unlimited" {
        return Some(UNLIMITED);
    }
    parse_u64(soft)
}

/// The soft `RLIMIT_NOFILE` of `pid`. On the live /proc, asks the kernel with `prlimit64` and
/// reads the file only when that is refused; on any other root (fixtures) reads the file.
pub fn soft_nofile(proc: &mut ProcRoot, pid: u32) -> Option<u64> {
    let asked = proc.is_system().then(|| prlimit_soft_nofile(pid));
    answer_or_file(asked, || {
        proc.read(Some(pid), "limits", READ_LIMIT)
            .ok()
            .and_then(parse_soft_nofile)
    })
}

/// The kernel's answer, or the file's when the kernel was not asked or refused (EPERM).
fn answer_or_file(
    asked: Option<io::Result<u64>>,
    file: impl FnOnce() -> Option<u64>,
) -> Option<u64> {
    match asked {
        Some(Ok(soft)) => Some(soft),
        Some(Err(e)) if e.raw_os_error() == Some(libc::EPERM) => file(),
        // ESRCH: the process is gone; nothing to read in /proc either.
        Some(Err(_)) => None,
        None => file(),
    }
}

fn prlimit_soft_nofile(pid: u32) -> io::Result<u64> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit makes prlimit64 read only; it writes one rlimit64 we own.
    let rc = unsafe { libc::prlimit64(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if old.rlim_cur == libc::RLIM64_INFINITY {
        UNLIMITED
    } else {
        old.rlim_cur
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Limit                     Soft Limit           Hard Limit           Units     \n";

    fn limits(open_files: &str) -> String {
        format!(
            "{HEADER}Max cpu time              unlimited            unlimited            seconds   \n\
             Max processes             96365                96365                processes \n\
             {open_files}\
             Max locked memory         8388608              8388608              bytes     \n"
        )
    }

    #[test]
    fn soft_limit_of_open_files() {
        let content = limits(
            "Max open files            1024                 524288               files     \n",
        );
        assert_eq!(parse_soft_nofile(content.as_bytes()), Some(1024));
    }

    #[test]
    fn unlimited_is_the_kernels_infinity() {
        let content = limits(
            "Max open files            unlimited            unlimited            files     \n",
        );
        assert_eq!(parse_soft_nofile(content.as_bytes()), Some(UNLIMITED));
    }

    #[test]
    fn missing_or_bad_lines() {
        assert_eq!(parse_soft_nofile(limits("").as_bytes()), None);
        assert_eq!(parse_soft_nofile(b""), None);
        assert_eq!(parse_soft_nofile(b"Max open files"), None);
        assert_eq!(parse_soft_nofile(b"Max open files   -1   5  files\n"), None);
        assert_eq!(parse_soft_nofile(b"Max open files   12x  5  files\n"), None);
        // A file cut before its newline still has its soft limit.
        assert_eq!(parse_soft_nofile(b"Max open files   256"), Some(256));
    }

    #[test]
    fn the_file_answers_when_the_kernel_refuses() {
        let err = |code| Some(Err(io::Error::from_raw_os_error(code)));
        let file = || Some(4096);
        assert_eq!(answer_or_file(Some(Ok(256)), file), Some(256));
        assert_eq!(answer_or_file(err(libc::EPERM), file), Some(4096));
        assert_eq!(answer_or_file(err(libc::ESRCH), file), None);
        assert_eq!(answer_or_file(None, file), Some(4096));
    }

    #[test]
    fn the_system_call_and_the_file_agree_on_this_process() {
        let me = std::process::id();
        let from_file = parse_soft_nofile(&std::fs::read("/proc/self/limits").unwrap());
        assert_eq!(prlimit_soft_nofile(me).ok(), from_file);
        assert_eq!(soft_nofile(&mut ProcRoot::system(), me), from_file);
        // A pid that cannot exist (above pid_max's ceiling of 2^22).
        assert_eq!(soft_nofile(&mut ProcRoot::system(), 4_194_305), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The soft limit of `Max open files`, a number or `unlimited`, among the other
            /// limits.
            #[test]
            fn soft_limit_comes_back(
                soft in prop::option::of(any::<u64>()),
                hard in any::<u64>(),
                padding in 1usize..12,
            ) {
                let soft_text = soft.map_or("unlimited".to_string(), |n| n.to_string());
                let content = format!(
                    "Limit                     Soft Limit           Hard Limit           Units\n\
                     Max cpu time              unlimited            unlimited            seconds\n\
                     Max open files{}{soft_text}                 {hard}                files\n\
                     Max locked memory         8388608              8388608              bytes\n",
                    " ".repeat(padding)
                );
                prop_assert_eq!(parse_soft_nofile(content.as_bytes()), Some(soft.unwrap_or(UNLIMITED)));
            }

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_soft_nofile(&content);
            }
        }
    }
}
