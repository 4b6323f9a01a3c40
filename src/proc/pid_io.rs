//! `/proc/<pid>/io`: bytes and system calls through read/write, and bytes that reached the
//! block layer. Readable only by the process's owner, or with CAP_DAC_READ_SEARCH (mode 0400)
//! and CAP_SYS_PTRACE.

use super::parse_u64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidIo {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// Parses `key: value` lines; `None` unless all six counters are present.
pub fn parse(content: &[u8]) -> Option<PidIo> {
    let mut io = PidIo::default();
    let mut seen = 0u8;
    for line in content.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], trim(&line[colon + 1..]));
        let (slot, bit) = match key {
            b"rchar" => (&mut io.rchar, 1),
            b"wchar" => (&mut io.wchar, 2),
            b"syscr" => (&mut io.syscr, 4),
            b"syscw" => (&mut io.syscw, 8),
            b"read_bytes" => (&mut io.read_bytes, 16),
            b"write_bytes" => (&mut io.write_bytes, 32),
            _ => continue,
        };
        *slot = parse_u64(value)?;
        seen |= bit;
    }
    (seen == 63).then_some(io)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IO: &[u8] = b"rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\n\
        read_bytes: 4096\nwrite_bytes: 323932160\ncancelled_write_bytes: 0\n";

    #[test]
    fn all_counters() {
        let io = parse(IO).unwrap();
        assert_eq!(io.rchar, 323934931);
        assert_eq!(io.wchar, 323929600);
        assert_eq!(io.syscr, 632687);
        assert_eq!(io.syscw, 632675);
        assert_eq!(io.read_bytes, 4096);
        assert_eq!(io.write_bytes, 323932160);
    }

    #[test]
    fn incomplete_or_bad_is_none() {
        assert!(parse(b"").is_none());
        assert!(parse(b"rchar: 1\nwchar: 2\n").is_none());
        assert!(parse(&IO[..40]).is_none());
        let bad = String::from_utf8_lossy(IO).replace("632687", "x");
        assert!(parse(bad.as_bytes()).is_none());
        for cut in 0..IO.len() {
            let _ = parse(&IO[..cut]);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The six counters come back in any line order, with any blanks after the colon
            /// and other lines around them.
            #[test]
            fn counters_come_back(
                values in any::<[u64; 6]>(),
                order in Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
                blanks in prop::collection::vec(prop::sample::select(vec![" ", "\t", "  "]), 7),
            ) {
                const KEYS: [&str; 7] = [
                    "rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
                    "cancelled_write_bytes",
                ];
                let mut content = String::new();
                for i in order {
                    let value = values.get(i).copied().unwrap_or(7);
                    content.push_str(&format!("{}:{}{value}\n", KEYS[i], blanks[i]));
                }
                let io = parse(content.as_bytes()).expect("all six counters");
                prop_assert_eq!(
                    [io.rchar, io.wchar, io.syscr, io.syscw, io.read_bytes, io.write_bytes],
                    values
                );
            }

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&content);
            }
        }
    }
}
