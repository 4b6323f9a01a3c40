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
}
