//! Instance-name templates: `GroupBy "{user}:{comm}:{pid}"` and rule names alike. Parsed once at
//! configuration time (unknown placeholders are configuration errors), expanded per process.

use std::fmt;

/// What a template can ask about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Comm,
    Exe,
    User,
    Uid,
    Pid,
    /// Last component of the process's cgroup path (see `proc::pid_cgroup`).
    Cgroup,
    /// Short id of the container the process runs in; the one placeholder that may expand to
    /// nothing (a process outside any container).
    Container,
}

impl Field {
    pub const ALL: [(&'static str, Field); 7] = [
        ("comm", Field::Comm),
        ("exe", Field::Exe),
        ("user", Field::User),
        ("uid", Field::Uid),
        ("pid", Field::Pid),
        ("cgroup", Field::Cgroup),
        ("container", Field::Container),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Field),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template was refused, in words for the configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(TemplateError(format!(
                                    "unclosed `{{{name}`; write `{{{{` for a literal brace"
                                )))
                            }
                        }
                    }
                    let field = Field::ALL
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, f)| *f)
                        .ok_or_else(|| {
                            TemplateError(format!(
                                "unknown placeholder `{{{name}}}`; accepted: {}",
                                Field::ALL
                                    .iter()
                                    .map(|(n, _)| format!("{{{n}}}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Placeholder(field));
                }
                '}' => {
                    return Err(TemplateError(
                        "unmatched `}`; write `}}` for a literal brace".to_string(),
                    ))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text as written in the configuration.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The fixed name of a template without placeholders.
    pub fn fixed(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(_) => return None,
            }
        }
        Some(out)
    }

    /// The literal text (placeholders left out), for validation.
    pub fn literal_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Literal(s) => Some(s.as_str()),
                Part::Placeholder(_) => None,
            })
            .collect()
    }

    pub fn uses(&self, field: Field) -> bool {
        self.parts.contains(&Part::Placeholder(field))
    }

    /// Expands the template; `value` answers each placeholder. The result is not sanitized.
    pub fn expand(&self, mut value: impl FnMut(Field) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(f) => out.push_str(&value(*f)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(f: Field) -> String {
        match f {
            Field::Comm => "nginx".into(),
            Field::Exe => "nginx-bin".into(),
            Field::User => "www".into(),
            Field::Uid => "33".into(),
            Field::Pid => "4242".into(),
            Field::Cgroup => "nginx.service".into(),
            Field::Container => String::new(),
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let t = Template::parse("{user}:{comm}:{pid}").unwrap();
        assert_eq!(t.expand(values), "www:nginx:4242");
        let t = Template::parse("{exe}-{uid}").unwrap();
        assert_eq!(t.expand(values), "nginx-bin-33");
        assert!(t.uses(Field::Exe) && !t.uses(Field::Comm));
        let t = Template::parse("{cgroup}/{container}:{comm}").unwrap();
        assert_eq!(t.expand(values), "nginx.service/:nginx");
        assert!(t.uses(Field::Cgroup) && t.uses(Field::Container));
    }

    #[test]
    fn literal_braces_and_fixed_names() {
        let t = Template::parse("a{{b}}c").unwrap();
        assert_eq!(t.fixed().as_deref(), Some("a{b}c"));
        assert_eq!(Template::parse("{comm}").unwrap().fixed(), None);
        assert!(Template::parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Template::parse("{nope}").unwrap_err();
        assert!(e.0.contains("{nope}") && e.0.contains("{comm}"), "{e}");
        assert!(
            e.0.contains("{cgroup}") && e.0.contains("{container}"),
            "{e}"
        );
        assert!(Template::parse("{comm").unwrap_err().0.contains("unclosed"));
        assert!(Template::parse("x}").unwrap_err().0.contains("unmatched"));
    }

    mod properties {
        use super::*;
        use crate::names;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Piece {
            Text(String),
            Field(Field),
        }

        fn piece() -> impl Strategy<Value = Piece> {
            prop_oneof![
                "\\PC{0,12}".prop_map(Piece::Text),
                prop::sample::select(Field::ALL.to_vec()).prop_map(|(_, f)| Piece::Field(f)),
            ]
        }

        fn facts() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(
                prop_oneof!["\\PC{0,20}", "[a-z/\n\t\u{7f}]{0,80}", Just(String::new())],
                Field::ALL.len(),
            )
        }

        fn value(facts: &[String], field: Field) -> String {
            let at = Field::ALL.iter().position(|(_, f)| *f == field).unwrap();
            facts[at].clone()
        }

        proptest! {
            /// A template written from pieces (literal text with its braces doubled, and
            /// placeholders) parses, uses exactly its placeholders, and expands to the text
            /// with each placeholder's value; without placeholders it is that fixed text.
            #[test]
            fn written_templates_expand_to_their_pieces(
                pieces in prop::collection::vec(piece(), 0..8),
                facts in facts(),
            ) {
                let mut source = String::new();
                let mut expected = String::new();
                for p in &pieces {
                    match p {
                        Piece::Text(t) => {
                            source.push_str(&t.replace('{', "{{").replace('}', "}}"));
                            expected.push_str(t);
                        }
                        Piece::Field(f) => {
                            let name = Field::ALL.iter().find(|(_, g)| g == f).unwrap().0;
                            source.push_str(&format!("{{{name}}}"));
                            expected.push_str(&value(&facts, *f));
                        }
                    }
                }
                let template = Template::parse(&source).unwrap();
                prop_assert_eq!(template.source(), source.as_str());
                prop_assert_eq!(template.expand(|f| value(&facts, f)), expected.clone());
                for (_, field) in Field::ALL {
                    let used = pieces.iter().any(|p| matches!(p, Piece::Field(f) if *f == field));
                    prop_assert_eq!(template.uses(field), used);
                }
                let fixed = pieces.iter().all(|p| matches!(p, Piece::Text(_)));
                prop_assert_eq!(template.fixed(), fixed.then_some(expected));
            }

            /// Any text: parsing never panics, and what parses expands, once sanitized, to a
            /// clean instance name.
            #[test]
            fn any_text_expands_to_clean_names(source in "[{}a-z/]{0,20}|\\PC{0,30}", facts in facts()) {
                if let Ok(template) = Template::parse(&source) {
                    let name = names::sanitize(&template.expand(|f| value(&facts, f)));
                    prop_assert!(names::is_clean(&name) && !name.is_empty() && name.len() <= names::MAX_NAME_BYTES);
                    prop_assert!(!name.contains('/') && !name.chars().any(char::is_control));
                }
            }
        }
    }
}
