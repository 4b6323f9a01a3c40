//! Every /proc parser over the same bytes. One target rather than one per file: each parser is a
//! few dozen lines that libFuzzer covers in seconds, their inputs share a shape (lines of
//! `key: value` or space-separated fields), so a mutation found for one often reaches another,
//! and one five-minute run covers them all on a shared two-core machine. Every input goes to
//! every parser (no selector byte that mutations would waste themselves on).
//!
//! Checks: no panic; a command name from /proc/PID/stat lies between the first `(` and the last
//! `)` of the input; a uid only from a `Uid:` line; a cgroup path is one line of the input and
//! absolute, its last component has no `/`, a container id is 12 hex digits; a joined command
//! line has no NUL and is empty only for an input of NULs.

#![no_main]

use capture::proc::{cmdline, meminfo, pid_cgroup, pid_io, pid_limits, pid_stat, pid_status, stat};
use libfuzzer_sys::fuzz_target;

/// Whether `inner` is a subslice of `outer`.
fn within(inner: &[u8], outer: &[u8]) -> bool {
    let start = inner.as_ptr() as usize;
    let o_start = outer.as_ptr() as usize;
    start >= o_start && start + inner.len() <= o_start + outer.len()
}

fuzz_target!(|data: &[u8]| {
    if let Some(s) = pid_stat::parse(data) {
        let open = data.iter().position(|&b| b == b'(').unwrap();
        let close = data.iter().rposition(|&b| b == b')').unwrap();
        assert_eq!(s.comm, &data[open + 1..close]);
        assert!(data[close..].contains(&s.state));
    }

    let _ = pid_io::parse(data);

    if pid_status::parse_real_uid(data).is_some() {
        assert!(data.split(|&b| b == b'\n').any(|l| l.starts_with(b"Uid:")));
    }

    if let Some(path) = pid_cgroup::parse(data) {
        assert!(path.starts_with(b"/"), "{path:?}");
        assert!(!path.contains(&b'\n'));
        assert!(path == b"/" || within(path, data));
        let text = String::from_utf8_lossy(path);
        let last = pid_cgroup::last_component(&text);
        assert!(!last.contains('/'));
        if let Some(id) = pid_cgroup::container_id(&text) {
            assert_eq!(id.len(), pid_cgroup::SHORT_ID_LEN);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
    // Any text, not only a parsed path.
    let text = String::from_utf8_lossy(data);
    assert!(!pid_cgroup::last_component(&text).contains('/'));
    if let Some(id) = pid_cgroup::container_id(&text) {
        assert_eq!(id.len(), pid_cgroup::SHORT_ID_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }

    let _ = pid_limits::parse_soft_nofile(data);

    let joined = cmdline::join(data);
    assert!(!joined.contains('\0'));
    assert_eq!(joined.is_empty(), data.iter().all(|&b| b == 0));

    let _ = meminfo::parse_mem_total(data);
    let _ = stat::parse_cpu_ticks(data);
});
