//! Facts about the running system that do not change while the plugin runs: the clock tick,
//! the page size and the kernel version.

/// `sysconf(_SC_CLK_TCK)`: the unit of the CPU times in /proc. 100 on most builds, but not on
/// all, so it is asked, never assumed.
pub fn clock_ticks_per_second() -> u64 {
    // AT_CLKTCK from the auxiliary vector, where glibc's sysconf takes it from too.
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        ticks => ticks,
    }
}

/// `sysconf(_SC_PAGESIZE)`: the unit of `rss` in /proc/<pid>/stat.
pub fn page_size() -> u64 {
    // AT_PAGESZ from the auxiliary vector, where glibc's sysconf takes it from too.
    u64::try_from(rustix::param::page_size())
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// Whether the running kernel's release is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse_release(&release).is_some_and(|v| v >= (major, minor))
}

/// `6.18.44-foo` -> (6, 18).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v669\n"), Some((6, 18)));
        assert_eq!(parse_release("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(parse_release("6.2-rc1"), Some((6, 2)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn sysconf_values_are_sane() {
        assert!(clock_ticks_per_second() >= 1);
        assert!(page_size().is_power_of_two());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// `major.minor[.patch][-suffix]` gives (major, minor); any text never panics.
            #[test]
            fn releases_come_back(
                major in any::<u32>(),
                minor in any::<u32>(),
                rest in "(\\.[0-9]{1,3})?(-[a-z0-9.-]{0,12})?\n?",
            ) {
                prop_assert_eq!(parse_release(&format!("{major}.{minor}{rest}")), Some((major, minor)));
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
                let _ = parse_release(&text);
            }
        }
    }
}
