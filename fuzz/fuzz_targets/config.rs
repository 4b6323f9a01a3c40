//! The configuration layer as collectd feeds it: an arbitrary tree of `ConfigNode`s (what
//! `src/collectd/mod.rs` builds from collectd's `oconfig_item_t`: a key, typed values, children)
//! validated by `Config::from_nodes`; a configuration it accepts then groups arbitrary processes
//! (`sampler::grouping::assign`, the sampler's own code path, with the facts given as values).
//!
//! Keys and string values are drawn half from the words the configuration knows (option names
//! in any case, templates, regexes, booleans as words) and half arbitrary, so the fuzzer gets
//! past the first unknown option and into every check.
//!
//! Checks: no panic; an error names an option written in the tree (in any case) and says what
//! is wrong; an accepted configuration's rules and `GroupBy` make, for any process, a name that
//! is what `names::sanitize` makes of it: not empty, at most 63 bytes, no `/`, no control
//! character, no reserved name; a rule with a fixed name gives exactly that name.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use capture::config::{Config, ConfigNode, ConfigValue, MATCH_OPTION_NAMES, OPTION_NAMES};
use capture::names;
use capture::sampler::grouping::{self, FixedFacts};
use libfuzzer_sys::fuzz_target;

/// Keys in other cases than the documented ones (options are case-insensitive).
const OTHER_CASES: &[&str] = &["process", "GROUPBY", "maxinstances", "cOMM"];

const WORDS: &[&str] = &[
    "",
    "{comm}",
    "{exe}",
    "{user}:{comm}:{pid}",
    "{uid}",
    "{cgroup}",
    "{container}",
    "{container}:{comm}",
    "{{literal}}",
    "{nope}",
    "{comm",
    "x}",
    "sshd",
    "self",
    "unattributed",
    "forwarded",
    "a/b",
    "tab\there",
    "nginx.*",
    "^/usr/sbin/",
    "(",
    "[",
    "root",
    "0",
    "any",
    "lo",
    "tcp or udp",
    "true",
    "false",
    "yes",
    "off",
];

/// A key or string: one of the known words, or anything.
#[derive(Debug)]
struct Word(String);

impl<'a> Arbitrary<'a> for Word {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Word(if u.arbitrary()? {
            (*u.choose(WORDS)?).to_string()
        } else {
            u.arbitrary()?
        }))
    }
}

#[derive(Debug)]
struct Key(String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let known = OPTION_NAMES.iter().chain(&MATCH_OPTION_NAMES);
        Ok(Key(match u.int_in_range(0..=7)? {
            0 => u.arbitrary()?,
            1 => (*u.choose(OTHER_CASES)?).to_string(),
            _ => (*u.choose(&known.collect::<Vec<_>>())?).to_string(),
        }))
    }
}

#[derive(Arbitrary, Debug)]
enum Value {
    String(Word),
    Number(f64),
    SmallNumber(i32),
    Boolean(bool),
}

#[derive(Arbitrary, Debug)]
struct Node {
    key: Key,
    values: Vec<Value>,
    children: Vec<Node>,
}

impl Node {
    /// collectd nests blocks a few levels at most; deeper ones add nothing but run time.
    fn to_config(&self, depth: usize) -> ConfigNode {
        let values = self
            .values
            .iter()
            .map(|v| match v {
                Value::String(s) => ConfigValue::String(s.0.clone()),
                Value::Number(n) => ConfigValue::Number(*n),
                Value::SmallNumber(n) => ConfigValue::Number(f64::from(*n)),
                Value::Boolean(b) => ConfigValue::Boolean(*b),
            })
            .collect();
        let mut node = ConfigNode::new(&self.key.0, values);
        if depth < 3 {
            node.children = self
                .children
                .iter()
                .map(|c| c.to_config(depth + 1))
                .collect();
        }
        node
    }
}

/// One process: the library's fixture (`grouping::FixedFacts`, built with `--cfg fuzzing`),
/// drawn field by field in its declaration order, as a derived `Arbitrary` would.
#[derive(Debug)]
struct Facts(FixedFacts);

impl<'a> Arbitrary<'a> for Facts {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Facts(FixedFacts {
            pid: u.arbitrary()?,
            comm: u.arbitrary()?,
            kernel_thread: u.arbitrary()?,
            cmdline: u.arbitrary()?,
            exe: u.arbitrary()?,
            uid: u.arbitrary()?,
            user: u.arbitrary()?,
            cgroup: u.arbitrary()?,
        }))
    }
}

fn check_name(name: &str) {
    assert!(!name.is_empty());
    assert!(name.len() <= names::MAX_NAME_BYTES, "{name:?}");
    assert!(
        !name.contains('/') && !name.chars().any(char::is_control),
        "{name:?}"
    );
    assert!(!names::RESERVED.contains(&name), "{name:?}");
    assert!(names::is_clean(name), "{name:?}");
}

/// Whether `key` is the key of a node of the tree (options are case-insensitive).
fn written(nodes: &[ConfigNode], key: &str) -> bool {
    nodes
        .iter()
        .any(|n| n.key.eq_ignore_ascii_case(key) || written(&n.children, key))
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    processes: Vec<Facts>,
}

fuzz_target!(|input: Input| {
    let nodes: Vec<ConfigNode> = input.nodes.iter().map(|n| n.to_config(0)).collect();
    let config = match Config::from_nodes(&nodes) {
        Ok(config) => config,
        Err(e) => {
            // The error names an option as written.
            assert!(written(&nodes, &e.option), "{e:?}");
            assert!(!e.problem.is_empty(), "{e:?}");
            let _ = e.to_string();
            return;
        }
    };
    assert!(config.max_instances >= 1);
    for rule in &config.rules {
        if let Some(fixed) = rule.name.fixed() {
            check_name(&fixed);
        }
    }
    for mut facts in input.processes {
        if let Some(assignment) = grouping::assign(&config, &mut facts.0) {
            check_name(&assignment.name);
        }
    }
});
