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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arguments (any bytes but NUL, not necessarily UTF-8) written NUL-terminated come
            /// back joined by spaces, less the empty arguments at the end.
            #[test]
            fn arguments_are_joined(
                args in prop::collection::vec(prop::collection::vec(1u8..=255, 0..12), 1..8),
            ) {
                let mut content = Vec::new();
                for arg in &args {
                    content.extend_from_slice(arg);
                    content.push(0);
                }
                // Empty arguments at the end leave only NULs behind, which are cut.
                let kept = args.iter().rposition(|a| !a.is_empty()).map_or(0, |last| last + 1);
                let expected = String::from_utf8_lossy(&args[..kept].join(&b' ')).into_owned();
                prop_assert_eq!(join(&content), expected);
            }

            /// Any bytes: never a NUL in the result, empty only for nothing but NULs.
            #[test]
            fn arbitrary_bytes(content in prop::collection::vec(any::<u8>(), 0..512)) {
                let joined = join(&content);
                prop_assert!(!joined.contains('\0'));
                prop_assert_eq!(joined.is_empty(), content.iter().all(|&b| b == 0));
            }
        }
    }
}
