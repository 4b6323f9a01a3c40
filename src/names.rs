//! Instance names that every writer accepts: no `/` (it separates identifier parts in collectd,
//! csv and rrd paths), no control characters (they break line-based protocols), at most 63 bytes
//! (DATA_MAX_NAME_LEN leaves room for it in every writer), and never empty.

pub const MAX_NAME_BYTES: usize = 63;

/// Instance names the plugin itself reports under; a process group with the same name gets an
/// underscore appended so the two never mix.
pub const RESERVED: &[&str] = &["self", "unattributed", "forwarded"];

/// Replaces `/` and control characters with `_` and truncates to [`MAX_NAME_BYTES`] on a
/// character boundary. Pure: the same input always gives the same name.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_NAME_BYTES));
    for c in raw.chars() {
        let c = if c == '/' || c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    if RESERVED.contains(&out.as_str()) {
        if out.len() == MAX_NAME_BYTES {
            out.pop();
        }
        out.push('_');
    }
    out
}

/// Longest meta data string, in bytes: collectd 5's JSON formatter (write_log, write_http,
/// write_kafka) escapes each meta data string into a 512-byte buffer and drops the whole value
/// list when it does not fit; escaping doubles `"` and `\`, so 240 bytes always fit.
pub const MAX_META_BYTES: usize = 240;

/// A meta data string (an executable's path, a command line): control characters become `_`
/// as in names (they break line-based writers), `/` stays, and the text is cut to
/// [`MAX_META_BYTES`] on a character boundary.
pub fn sanitize_meta(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_META_BYTES));
    for c in raw.chars() {
        let c = if c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_META_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Whether `name` is already what [`sanitize`] would make of it.
pub fn is_clean(name: &str) -> bool {
    sanitize(name) == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_what_writers_cannot_take() {
        assert_eq!(sanitize("kworker/0:1"), "kworker_0:1");
        assert_eq!(sanitize("a\nb\tc\u{7f}"), "a_b_c_");
        assert_eq!(sanitize("a (b) c"), "a (b) c");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn truncates_on_char_boundary() {
        let long = "é".repeat(40); // 80 bytes
        let s = sanitize(&long);
        assert!(s.len() <= MAX_NAME_BYTES);
        assert_eq!(s, "é".repeat(31));
        assert_eq!(sanitize(&"x".repeat(100)).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn meta_strings_keep_slashes_and_lose_control_characters() {
        assert_eq!(
            sanitize_meta("/usr/bin/python3 -c print(1)\n\t"),
            "/usr/bin/python3 -c print(1)__"
        );
        assert_eq!(sanitize_meta(""), "");
        let long = "é".repeat(200); // 400 bytes
        assert_eq!(sanitize_meta(&long), "é".repeat(120));
        assert_eq!(sanitize_meta(&"x".repeat(1000)).len(), MAX_META_BYTES);
    }

    #[test]
    fn reserved_names_are_moved_aside() {
        assert_eq!(sanitize("self"), "self_");
        assert_eq!(sanitize("unattributed"), "unattributed_");
        assert!(is_clean("sshd"));
        assert!(!is_clean("self"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text weighted towards what names must not hold: `/`, control characters, multi-byte
        /// characters that a cut could split, and the reserved names.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,80}",
                "[a-z/\n\t\u{7f}\u{85}é€😀]{0,80}",
                prop::sample::select(RESERVED.to_vec()).prop_map(str::to_string),
                any::<String>(),
            ]
        }

        proptest! {
            /// Whatever the input: not empty, at most 63 bytes, no `/`, no control character,
            /// no reserved name, stable under a second pass, and a prefix of the input with
            /// only the forbidden characters replaced (or `_` for nothing).
            #[test]
            fn sanitized_names_are_clean(raw in text()) {
                let name = sanitize(&raw);
                prop_assert!(!name.is_empty());
                prop_assert!(name.len() <= MAX_NAME_BYTES, "{name:?}");
                prop_assert!(!name.contains('/') && !name.chars().any(char::is_control), "{name:?}");
                prop_assert!(!RESERVED.contains(&name.as_str()), "{name:?}");
                prop_assert!(is_clean(&name), "{name:?}");
                let replaced: String = raw
                    .chars()
                    .map(|c| if c == '/' || c.is_control() { '_' } else { c })
                    .collect();
                let body = name.strip_suffix('_').filter(|b| RESERVED.contains(b)).unwrap_or(&name);
                prop_assert!(replaced.starts_with(body) || (raw.is_empty() && name == "_"), "{raw:?} -> {name:?}");
            }

            /// A name that is already clean is kept as it is.
            #[test]
            fn clean_names_are_kept(raw in "[a-zA-Z0-9_.:@ é-]{1,30}") {
                prop_assume!(!RESERVED.contains(&raw.as_str()));
                prop_assert_eq!(sanitize(&raw), raw);
            }

            /// Meta data strings: at most 240 bytes, no control character, `/` kept.
            #[test]
            fn meta_strings_are_clean(raw in text()) {
                let meta = sanitize_meta(&raw);
                prop_assert!(meta.len() <= MAX_META_BYTES);
                prop_assert!(!meta.chars().any(char::is_control));
                prop_assert_eq!(meta.matches('/').count(), raw.chars().take(meta.chars().count()).filter(|&c| c == '/').count());
            }
        }
    }
}
