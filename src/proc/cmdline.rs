//! `/proc/<pid>/cmdline`: the arguments, NUL-separated, joined by single spaces for the
//! `ProcessMatch` and `Cmdline` regexes as collectd's processes plugin does.

/// At most this much of a command line is read: long Java class paths are the norm, megabytes
/// are not worth matching.
pub const READ_LIMIT: usize = 64 * 1024;

/// Joins the arguments with spaces; invalid UTF-8 becomes U+FFFD. Empty for kernel threads and
/// zombies.
pub fn join(content: &[u8]) -> String {
    let trimmed = match content.iter().rposition(|&b| b != 0) {
        Some(last) => &content[..=last],
        None => return String::new(),
    };
    let spaced: Vec<u8> = trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    String::from_utf8_lossy(&spaced).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_with_spaces() {
        assert_eq!(
            join(b"/usr/bin/java\0-jar\0app.jar\0"),
            "/usr/bin/java -jar app.jar"
        );
        assert_eq!(join(b"sshd: root@pts/0"), "sshd: root@pts/0");
        assert_eq!(join(b""), "");
        assert_eq!(join(b"\0\0"), "");
        assert_eq!(join(b"a\xff\0b\0"), "a\u{fffd} b");
    }
}
