//! `/proc/<pid>/schedstat`: the scheduler's statistics of a process's main thread — time on a
//! CPU (ns), time waiting on a run queue (ns), and how many times it was put on a CPU. Only the
//! last is taken: while it stays the same the thread has not run, so its context switches and
//! delays cannot have changed (see `sampler::details`). Present with `CONFIG_SCHED_INFO`
//! (every distribution kernel); world-readable.

use super::parse_u64;

/// How many times the thread was put on a CPU (`sched_info.pcount`); `None` unless the file
/// holds its three numbers.
pub fn parse_timeslices(content: &[u8]) -> Option<u64> {
    let line = content.split(|&b| b == b'\n').next()?;
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let (_on_cpu, _waiting) = (fields.next()?, fields.next()?);
    parse_u64(fields.next()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeslices() {
        assert_eq!(parse_timeslices(b"185416913 17117283 361\n"), Some(361));
        assert_eq!(parse_timeslices(b"185416913 17117283\n"), None);
        assert_eq!(parse_timeslices(b""), None);
        assert_eq!(parse_timeslices(b"a b c\n"), None);
        let own = std::fs::read("/proc/self/schedstat").unwrap();
        assert!(parse_timeslices(&own).is_some_and(|n| n > 0));
    }
}
