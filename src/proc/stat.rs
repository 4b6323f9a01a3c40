//! `/proc/stat`: the machine's total CPU time, the denominator of `percent-cpu`.

use super::parse_u64;

/// Sum of the aggregate `cpu` line, in clock ticks: user, nice, system, idle, iowait, irq,
/// softirq and steal. `guest` and `guest_nice` are left out on purpose: the kernel already
/// counts guest time inside user and nice, so adding them would count it twice.
pub fn parse_total_cpu_ticks(content: &[u8]) -> Option<u64> {
    let line = content.split(|&b| b == b'\n').next()?;
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    if fields.next()? != b"cpu" {
        return None;
    }
    let mut total: u64 = 0;
    let mut count = 0;
    for field in fields.take(8) {
        total = total.checked_add(parse_u64(field)?)?;
        count += 1;
    }
    // Linux has reported at least user..softirq (7 fields) since 2.6.0.
    (count >= 7).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_without_guest() {
        let stat = b"cpu  10 20 30 400 5 6 7 8 100 200\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n";
        assert_eq!(
            parse_total_cpu_ticks(stat),
            Some(10 + 20 + 30 + 400 + 5 + 6 + 7 + 8)
        );
    }

    #[test]
    fn old_kernel_seven_fields() {
        assert_eq!(parse_total_cpu_ticks(b"cpu 1 1 1 1 1 1 1\n"), Some(7));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_total_cpu_ticks(b""), None);
        assert_eq!(parse_total_cpu_ticks(b"cpu0 1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse_total_cpu_ticks(b"cpu 1 2 3\n"), None);
        assert_eq!(parse_total_cpu_ticks(b"cpu 1 2 x 4 5 6 7\n"), None);
    }
}
