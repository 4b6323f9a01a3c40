//! `/proc/<pid>/status`: only the real uid is taken from it, for the `User` criterion and the
//! `{user}`/`{uid}` placeholders.

use super::parse_u64;

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

            #[test]
            fn arbitrary_bytes_never_panic(content in prop::collection::vec(any::<u8>(), 0..512)) {
                if parse_real_uid(&content).is_some() {
                    prop_assert!(content.split(|&b| b == b'\n').any(|l| l.starts_with(b"Uid:")));
                }
            }
        }
    }
}
