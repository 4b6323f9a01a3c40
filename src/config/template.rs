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
}
