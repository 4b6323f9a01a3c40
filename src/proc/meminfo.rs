//! `/proc/meminfo`: total memory, the denominator of `percent-memory`.

use super::parse_u64;

/// `MemTotal` in bytes.
pub fn parse_mem_total(content: &[u8]) -> Option<u64> {
    let line = content
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"MemTotal:"))?;
    let mut fields = line[9..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    let kib = parse_u64(fields.next()?)?;
    match fields.next() {
        Some(b"kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total() {
        let meminfo = b"MemTotal:       24597420 kB\nMemFree:        23000000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24597420 * 1024));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_mem_total(b"MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total(b"MemTotal: x kB\n"), None);
        assert_eq!(parse_mem_total(b"MemTotal: 1 MB\n"), None);
        assert_eq!(parse_mem_total(b"MemTotal:"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// MemTotal in kB comes back in bytes; a value whose bytes overflow is refused.
            #[test]
            fn mem_total_comes_back(kib in any::<u64>(), blanks in 1usize..12) {
                let meminfo = format!(
                    "MemTotal:{}{kib} kB\nMemFree:        23000000 kB\n",
                    " ".repeat(blanks)
                );
                prop_assert_eq!(parse_mem_total(meminfo.as_bytes()), kib.checked_mul(1024));
            }

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_mem_total(&content);
            }
        }
    }
}
