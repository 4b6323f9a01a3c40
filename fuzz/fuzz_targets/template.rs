//! Instance-name templates (`config::template`): any text parsed; a template that parses is
//! expanded with arbitrary process facts, then sanitized as every instance name is
//! (`names::sanitize`).
//!
//! Input: NUL-separated, lossily decoded text: the template, then the values of `{comm}`,
//! `{exe}`, `{user}`, `{uid}`, `{pid}`, `{cgroup}`, `{container}` (`Field::ALL`'s order; missing
//! ones are empty), so seeds are readable (`{user}:{comm}\0sshd\0...`).
//!
//! Checks: no panic; a parsed template keeps its source; one without placeholders expands to
//! its fixed text whatever the facts, and its literal text is that text; expansion is the
//! literal parts plus the facts (its length is bounded by them); the sanitized name is not
//! empty, at most 63 bytes, has no `/` or control character, is no reserved name, and is
//! stable (sanitizing it again changes nothing).

#![no_main]

use capture::config::{Field, Template};
use capture::names;
use libfuzzer_sys::fuzz_target;

struct Input {
    source: String,
    /// One value per placeholder, in `Field::ALL`'s order.
    facts: [String; 7],
}

fn input(data: &[u8]) -> Input {
    let mut parts = data
        .split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let source = parts.next().unwrap_or_default();
    Input {
        source,
        facts: std::array::from_fn(|_| parts.next().unwrap_or_default()),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = input(data);
    let Ok(template) = Template::parse(&input.source) else {
        return;
    };
    assert_eq!(template.source(), input.source);
    let value = |field: Field| {
        let at = Field::ALL.iter().position(|(_, f)| *f == field).unwrap();
        input.facts[at].clone()
    };
    let expanded = template.expand(value);
    let placeholders = Field::ALL.iter().filter(|(_, f)| template.uses(*f)).count();
    let literal = template.literal_text();
    assert!(literal.len() <= input.source.len());
    match template.fixed() {
        Some(fixed) => {
            assert_eq!(placeholders, 0);
            assert_eq!(expanded, fixed);
            assert_eq!(literal, fixed);
        }
        None => {
            assert!(placeholders > 0);
            // Every use of a placeholder adds at most the longest fact.
            let longest = input.facts.iter().map(String::len).max().unwrap_or(0);
            assert!(expanded.len() <= literal.len() + input.source.len() * longest);
            assert!(expanded.len() >= literal.len());
        }
    }
    assert_eq!(template.is_empty(), input.source.is_empty());

    let name = names::sanitize(&expanded);
    assert!(!name.is_empty());
    assert!(name.len() <= names::MAX_NAME_BYTES, "{name:?}");
    assert!(
        !name.contains('/') && !name.chars().any(char::is_control),
        "{name:?}"
    );
    assert!(!names::RESERVED.contains(&name.as_str()), "{name:?}");
    assert_eq!(names::sanitize(&name), name, "not stable");
});
