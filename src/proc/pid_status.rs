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
}
