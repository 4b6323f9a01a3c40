//! `/proc/stat`: the machine's CPU time, the denominator of `percent-cpu` and of the share of
//! it the instances account for.

use super::parse_u64;

/// The aggregate `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// user, nice, system, idle, iowait, irq, softirq and steal. `guest` and `guest_nice` are
    /// left out on purpose: the kernel already counts guest time inside user and nice, so
    /// adding them would count it twice.
    pub total: u64,
    /// user, nice and system: the time the kernel charged to tasks (what processes' `utime`
    /// and `stime` add up to; interrupts and steal are no process's).
    pub tasks: u64,
}

pub fn parse_cpu_ticks(content: &[u8]) -> Option<CpuTicks> {
    let line = content.split(|&b| b == b'\n').next()?;
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    if fields.next()? != b"cpu" {
        return None;
    }
    let (mut total, mut tasks): (u64, u64) = (0, 0);
    let mut count = 0;
    for field in fields.take(8) {
        let ticks = parse_u64(field)?;
        total = total.checked_add(ticks)?;
        if count < 3 {
            tasks += ticks;
        }
        count += 1;
    }
    // Linux has reported at least user..softirq (7 fields) since 2.6.0.
    (count >= 7).then_some(CpuTicks { total, tasks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_total_cpu_ticks(content: &[u8]) -> Option<u64> {
        parse_cpu_ticks(content).map(|t| t.total)
    }

    #[test]
    fn total_without_guest() {
        let stat = b"cpu  10 20 30 400 5 6 7 8 100 200\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n";
        assert_eq!(
            parse_total_cpu_ticks(stat),
            Some(10 + 20 + 30 + 400 + 5 + 6 + 7 + 8)
        );
    }

    #[test]
    fn tasks_are_user_nice_and_system() {
        let stat = b"cpu  10 20 30 400 5 6 7 8 100 200\n";
        assert_eq!(parse_cpu_ticks(stat).map(|t| t.tasks), Some(60));
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The first eight fields of the `cpu` line are summed (at least seven present);
            /// guest fields and the per-CPU lines are not.
            #[test]
            fn total_is_the_sum_of_eight(
                fields in prop::collection::vec(0u64..1 << 56, 7..=10),
                per_cpu in prop::collection::vec(any::<u32>(), 10),
            ) {
                let line: Vec<String> = fields.iter().map(u64::to_string).collect();
                let cpu0: Vec<String> = per_cpu.iter().map(u32::to_string).collect();
                let stat = format!("cpu  {}\ncpu0 {}\nintr 1\n", line.join(" "), cpu0.join(" "));
                let expected: u64 = fields.iter().take(8).sum();
                prop_assert_eq!(parse_total_cpu_ticks(stat.as_bytes()), Some(expected));
            }

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_total_cpu_ticks(&content);
            }
        }
    }
}
