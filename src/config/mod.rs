//! The plugin's configuration: a plain tree of options (what collectd hands over, converted by
//! the adapter) validated into [`Config`]. Validation stops at the first mistake and says which
//! option, which value, and what would have been accepted — the operator reads it in collectd's
//! log at 3 a.m. and must not have to open the source.

pub mod template;

use crate::names;
use regex::Regex;
use std::fmt;
pub use template::{Field, Template};

/// One value on a configuration line, as collectd's parser types it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    String(String),
    Number(f64),
    Boolean(bool),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::String(s) => write!(f, "\"{s}\""),
            ConfigValue::Number(n) => write!(f, "{n}"),
            ConfigValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// One line or block of the configuration: `Key value...` or `<Key value...> children </Key>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigNode {
    pub key: String,
    pub values: Vec<ConfigValue>,
    pub children: Vec<ConfigNode>,
}

impl ConfigNode {
    pub fn new(key: &str, values: Vec<ConfigValue>) -> Self {
        ConfigNode {
            key: key.to_string(),
            values,
            children: Vec::new(),
        }
    }

    fn values_text(&self) -> String {
        self.values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A configuration mistake: the option, the value as written, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub option: String,
    pub value: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "option `{}`: {}", self.option, self.problem)
        } else {
            write!(
                f,
                "option `{}` {}: {}",
                self.option, self.value, self.problem
            )
        }
    }
}

impl std::error::Error for ConfigError {}

fn error(node: &ConfigNode, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        option: node.key.clone(),
        value: node.values_text(),
        problem: problem.into(),
    }
}

/// A user as written in `User`: a name, or a numeric uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    Name(String),
    Uid(u32),
}

/// What a process must look like for a rule to take it. Every criterion given must match.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// `Process "comm"`: exact command name.
    pub comm_exact: Option<String>,
    /// `Comm` in `<Match>`.
    pub comm: Option<Regex>,
    /// `ProcessMatch` and `Cmdline`: searched in the arguments joined by spaces.
    pub cmdline: Option<Regex>,
    /// `ProcessMatch` falls back to the comm for processes without a command line, as
    /// collectd's processes plugin does; `<Match> Cmdline` does not.
    pub cmdline_falls_back_to_comm: bool,
    pub exe: Option<Regex>,
    pub user: Option<UserSpec>,
    /// `Cgroup` in `<Match>`: searched in the whole cgroup path that represents the process
    /// (see `proc::pid_cgroup::parse`).
    pub cgroup: Option<Regex>,
}

impl Criteria {
    pub fn needs_cmdline(&self) -> bool {
        self.cmdline.is_some()
    }
    pub fn needs_exe(&self) -> bool {
        self.exe.is_some()
    }
    pub fn needs_user(&self) -> bool {
        self.user.is_some()
    }
    pub fn needs_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }
}

/// A grouping rule: processes matching `criteria` are reported under `name`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Template,
    pub criteria: Criteria,
}

/// Packet capture options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Interfaces to capture on; `any` by default.
    pub interfaces: Vec<String>,
    pub bpf_filter: Option<String>,
    pub snaplen: u32,
    pub buffer_size: u32,
    pub promiscuous: bool,
}

pub const DEFAULT_SNAPLEN: u32 = 128;
/// Room for the largest headers parsed: SLL2 (20) + two VLAN tags (8) + IPv6 (40) with a few
/// extension headers + the 4 bytes of ports.
pub const MIN_SNAPLEN: u32 = 96;
/// libpcap's ring, all of it resident once traffic has gone round it: collectd's memory pays
/// for every byte. 2 MiB (libpcap's own default) carried 200,000 packets/s on loopback with no
/// drops, also with two CPU hogs competing for the cores; 4 MiB put the plugin over its memory
/// budget (issue 5: under 16 MiB in all). A host whose captures drop raises it.
pub const DEFAULT_BUFFER_SIZE: u32 = 2 << 20;

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: vec!["any".to_string()],
            bpf_filter: None,
            snaplen: DEFAULT_SNAPLEN,
            buffer_size: DEFAULT_BUFFER_SIZE,
            promiscuous: false,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<Rule>,
    /// Name of processes no rule matched; `None` (`GroupBy ""`) drops them.
    pub group_by: Option<Template>,
    pub max_instances: usize,
    pub collect_file_handles: bool,
    pub collect_io: bool,
    /// A fixed-name instance that loses its last process raises a FAILURE notification, and an
    /// OKAY one when a process is back (`Notifications`).
    pub notifications: bool,
    /// Value lists carry the identity of the instance's processes as meta data (`MetaData`).
    /// Off by default: collectd copies a value list's meta data for its write queue, which
    /// doubled collectd's CPU per value list in a measurement (README, Meta data), a price
    /// only JSON writers' users should pay.
    pub meta_data: bool,
    /// `None` with `CollectNetwork false`.
    pub network: Option<NetworkConfig>,
}

pub const DEFAULT_GROUP_BY: &str = "{comm}";
pub const DEFAULT_MAX_INSTANCES: usize = 1000;
pub const MAX_INSTANCES_LIMIT: usize = 1_000_000;

impl Default for Config {
    /// What the plugin does with no `<Plugin capture>` block: every process, grouped by comm.
    fn default() -> Self {
        Config {
            rules: Vec::new(),
            group_by: Template::parse(DEFAULT_GROUP_BY).ok(),
            max_instances: DEFAULT_MAX_INSTANCES,
            collect_file_handles: true,
            collect_io: true,
            notifications: true,
            meta_data: false,
            network: Some(NetworkConfig::default()),
        }
    }
}

/// The options of `<Plugin capture>`, for error messages.
const OPTIONS: &str = "Process, ProcessMatch, <Match>, GroupBy, MaxInstances, \
                       CollectFileHandles, CollectIO, Notifications, MetaData, CollectNetwork, \
                       Interface, BPFFilter, SnapLen, BufferSize, Promiscuous";
const MATCH_OPTIONS: &str = "Comm, Cmdline, Exe, User, Cgroup";

/// The option names of [`OPTIONS`] and [`MATCH_OPTIONS`], for suggestions (and fuzzing).
pub const OPTION_NAMES: [&str; 15] = [
    "Process",
    "ProcessMatch",
    "Match",
    "GroupBy",
    "MaxInstances",
    "CollectFileHandles",
    "CollectIO",
    "Notifications",
    "MetaData",
    "CollectNetwork",
    "Interface",
    "BPFFilter",
    "SnapLen",
    "BufferSize",
    "Promiscuous",
];
pub const MATCH_OPTION_NAMES: [&str; 5] = ["Comm", "Cmdline", "Exe", "User", "Cgroup"];

/// A misspelled option is most often one or two keystrokes away from the intended one.
const SUGGEST_DISTANCE: usize = 2;

/// The accepted name closest to `key` (ignoring case), when it is at most
/// [`SUGGEST_DISTANCE`] edits away; ties go to the first in `names`.
fn closest<'a>(key: &str, names: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    names
        .iter()
        .map(|name| (edit_distance(&key, &name.to_ascii_lowercase()), *name))
        .filter(|(distance, _)| *distance <= SUGGEST_DISTANCE)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance (insertions, deletions, substitutions) over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The problem of an unknown option: a suggestion when one is close, then what is accepted.
fn unknown_option(key: &str, names: &[&str], inside: &str, accepted: &str) -> String {
    match closest(key, names) {
        Some(name) => {
            format!("unknown option{inside}; did you mean `{name}`? accepted: {accepted}")
        }
        None => format!("unknown option{inside}; accepted: {accepted}"),
    }
}

impl Config {
    /// Validates the children of `<Plugin capture>`.
    pub fn from_nodes(nodes: &[ConfigNode]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut network = NetworkConfig::default();
        let mut collect_network = true;
        let mut interfaces: Vec<String> = Vec::new();
        // The option each rule was written with, for the duplicate-name error.
        let mut rule_options: Vec<String> = Vec::new();
        for node in nodes {
            let key = node.key.to_ascii_lowercase();
            // A misspelled block (`<Matc "m">`) is an unknown option, not a misplaced block.
            let known = OPTION_NAMES.iter().any(|o| o.eq_ignore_ascii_case(&key));
            if !node.children.is_empty() && key != "match" && known {
                return Err(error(node, "is not a block; write it as a single line"));
            }
            let rules_before = config.rules.len();
            match key.as_str() {
                "process" => {
                    let comm = one_string(node)?;
                    if comm.is_empty() {
                        return Err(error(node, "expected a non-empty command name"));
                    }
                    let name = Template::parse(
                        &names::sanitize(comm).replace('{', "{{").replace('}', "}}"),
                    )
                    .map_err(|e| error(node, e.0))?;
                    config.rules.push(Rule {
                        name,
                        criteria: Criteria {
                            comm_exact: Some(comm.to_string()),
                            ..Criteria::default()
                        },
                    });
                }
                "processmatch" => {
                    let [name, pattern] = two_strings(node)?;
                    let name = rule_name(node, name)?;
                    let regex = compile(node, pattern)?;
                    config.rules.push(Rule {
                        name,
                        criteria: Criteria {
                            cmdline: Some(regex),
                            cmdline_falls_back_to_comm: true,
                            ..Criteria::default()
                        },
                    });
                }
                "match" => config.rules.push(match_block(node)?),
                "groupby" => {
                    let source = one_string(node)?;
                    config.group_by = if source.is_empty() {
                        None
                    } else {
                        Some(rule_name(node, source)?)
                    };
                }
                "maxinstances" => {
                    config.max_instances = integer(node, 1, MAX_INSTANCES_LIMIT as u64)? as usize;
                }
                "collectfilehandles" => config.collect_file_handles = boolean(node)?,
                "collectio" => config.collect_io = boolean(node)?,
                "notifications" => config.notifications = boolean(node)?,
                "metadata" => config.meta_data = boolean(node)?,
                "collectnetwork" => collect_network = boolean(node)?,
                "interface" => {
                    let name = one_string(node)?;
                    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                        return Err(error(
                            node,
                            "expected an interface name (as in `ip link`), or \"any\"",
                        ));
                    }
                    if interfaces.iter().any(|i| i == name) {
                        return Err(error(node, "interface given twice"));
                    }
                    interfaces.push(name.to_string());
                }
                "bpffilter" => {
                    let filter = one_string(node)?;
                    network.bpf_filter = (!filter.trim().is_empty()).then(|| filter.to_string());
                }
                "snaplen" => network.snaplen = integer(node, MIN_SNAPLEN.into(), 65535)? as u32,
                "buffersize" => {
                    network.buffer_size = integer(node, 65536, 1 << 30)? as u32;
                }
                "promiscuous" => network.promiscuous = boolean(node)?,
                _ if closest(&key, &OPTION_NAMES).is_none()
                    && MATCH_OPTION_NAMES
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&key)) =>
                {
                    return Err(error(
                        node,
                        "is a criterion of a <Match \"name\"> block, not an option of its own; \
                         write it inside one",
                    ));
                }
                _ => {
                    return Err(error(
                        node,
                        unknown_option(&key, &OPTION_NAMES, "", OPTIONS),
                    ))
                }
            }
            if config.rules.len() > rules_before {
                // Two rules may not report under the same name: the second is the mistake.
                let name = config.rules[rules_before].name.source();
                if let Some(first) = config.rules[..rules_before]
                    .iter()
                    .position(|r| r.name.source() == name)
                {
                    return Err(ConfigError {
                        option: node.key.clone(),
                        value: format!("\"{name}\""),
                        problem: format!(
                            "instance name already used by the earlier `{}` rule; give each \
                             rule its own name, or one regex that covers both",
                            rule_options[first]
                        ),
                    });
                }
                rule_options.push(node.key.clone());
            }
        }
        if !interfaces.is_empty() {
            network.interfaces = interfaces;
        }
        config.network = collect_network.then_some(network);
        config.check_instance_names()?;
        Ok(config)
    }

    /// The fixed names alone must fit in `MaxInstances`.
    fn check_instance_names(&self) -> Result<(), ConfigError> {
        let fixed = self
            .rules
            .iter()
            .filter(|r| r.name.fixed().is_some())
            .count();
        if fixed > self.max_instances {
            return Err(ConfigError {
                option: "MaxInstances".into(),
                value: self.max_instances.to_string(),
                problem: format!(
                    "{fixed} rules have fixed instance names, more than MaxInstances allows"
                ),
            });
        }
        Ok(())
    }

    /// Whether any rule or the GroupBy template needs this fact about a process.
    pub fn needs_field(&self, field: Field) -> bool {
        self.rules.iter().any(|r| r.name.uses(field))
            || self.group_by.as_ref().is_some_and(|t| t.uses(field))
    }
}

fn match_block(node: &ConfigNode) -> Result<Rule, ConfigError> {
    let name = rule_name(node, one_string(node)?)?;
    let mut criteria = Criteria::default();
    for child in &node.children {
        if !child.children.is_empty() {
            return Err(error(child, "is not a block; write it as a single line"));
        }
        let slot_taken = |taken: bool| {
            if taken {
                Err(error(child, "given twice in the same <Match>"))
            } else {
                Ok(())
            }
        };
        match child.key.to_ascii_lowercase().as_str() {
            "comm" => {
                slot_taken(criteria.comm.is_some())?;
                criteria.comm = Some(compile(child, one_string(child)?)?);
            }
            "cmdline" => {
                slot_taken(criteria.cmdline.is_some())?;
                criteria.cmdline = Some(compile(child, one_string(child)?)?);
            }
            "exe" => {
                slot_taken(criteria.exe.is_some())?;
                criteria.exe = Some(compile(child, one_string(child)?)?);
            }
            "user" => {
                slot_taken(criteria.user.is_some())?;
                criteria.user = Some(user_spec(child)?);
            }
            "cgroup" => {
                slot_taken(criteria.cgroup.is_some())?;
                criteria.cgroup = Some(compile(child, one_string(child)?)?);
            }
            key => {
                return Err(error(
                    child,
                    unknown_option(key, &MATCH_OPTION_NAMES, " inside <Match>", MATCH_OPTIONS),
                ))
            }
        }
    }
    if criteria.comm.is_none()
        && criteria.cmdline.is_none()
        && criteria.exe.is_none()
        && criteria.user.is_none()
        && criteria.cgroup.is_none()
    {
        return Err(error(
            node,
            format!("<Match> needs at least one criterion: {MATCH_OPTIONS}"),
        ));
    }
    Ok(Rule { name, criteria })
}

/// A rule's instance name: a template whose fixed text must already be a clean name, so what
/// the operator wrote is what the writers see.
fn rule_name(node: &ConfigNode, source: &str) -> Result<Template, ConfigError> {
    if source.is_empty() {
        return Err(error(node, "expected a non-empty instance name"));
    }
    let template = Template::parse(source).map_err(|e| error(node, e.0))?;
    if template.fixed().is_some_and(|name| name.trim().is_empty()) {
        return Err(error(node, "expected an instance name that is not blank"));
    }
    let literal = template.literal_text();
    if literal.chars().any(|c| c == '/' || c.is_control()) {
        return Err(error(
            node,
            "instance names may not contain `/` or control characters",
        ));
    }
    if literal.len() > names::MAX_NAME_BYTES {
        return Err(error(
            node,
            format!("instance names are at most {} bytes", names::MAX_NAME_BYTES),
        ));
    }
    if let Some(fixed) = template.fixed() {
        if names::RESERVED.contains(&fixed.as_str()) {
            return Err(error(
                node,
                format!(
                    "`{fixed}` is reserved for the plugin's own metrics ({})",
                    names::RESERVED.join(", ")
                ),
            ));
        }
    }
    Ok(template)
}

fn compile(node: &ConfigNode, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| {
        // The regex crate draws a caret under the pattern on lines of their own, which a log
        // line cannot show: its last line says what is wrong.
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default();
        let detail = last.strip_prefix("error: ").unwrap_or(last);
        error(node, format!("invalid regular expression: {detail}"))
    })
}

fn one_string(node: &ConfigNode) -> Result<&str, ConfigError> {
    match node.values.as_slice() {
        [ConfigValue::String(s)] => Ok(s),
        _ => Err(error(node, "expected exactly one quoted string")),
    }
}

fn two_strings(node: &ConfigNode) -> Result<[&str; 2], ConfigError> {
    match node.values.as_slice() {
        [ConfigValue::String(a), ConfigValue::String(b)] => Ok([a, b]),
        _ => Err(error(
            node,
            "expected two quoted strings: an instance name and a regular expression",
        )),
    }
}

fn boolean(node: &ConfigNode) -> Result<bool, ConfigError> {
    match node.values.as_slice() {
        [ConfigValue::Boolean(b)] => Ok(*b),
        [ConfigValue::String(s)] => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(error(node, "expected true or false")),
        },
        _ => Err(error(node, "expected true or false")),
    }
}

fn integer(node: &ConfigNode, min: u64, max: u64) -> Result<u64, ConfigError> {
    let accepted = format!("expected an integer from {min} to {max}");
    let n = match node.values.as_slice() {
        [ConfigValue::Number(n)] => *n,
        [ConfigValue::String(s)] => s
            .trim()
            .parse::<f64>()
            .map_err(|_| error(node, &accepted))?,
        _ => return Err(error(node, accepted)),
    };
    if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
        return Err(error(node, accepted));
    }
    Ok(n as u64)
}

fn user_spec(node: &ConfigNode) -> Result<UserSpec, ConfigError> {
    match node.values.as_slice() {
        [ConfigValue::Number(n)] if n.fract() == 0.0 && *n >= 0.0 && *n <= u32::MAX as f64 => {
            Ok(UserSpec::Uid(*n as u32))
        }
        [ConfigValue::String(s)] if !s.is_empty() => Ok(match s.parse::<u32>() {
            Ok(uid) => UserSpec::Uid(uid),
            Err(_) => UserSpec::Name(s.clone()),
        }),
        _ => Err(error(node, "expected a user name or a numeric uid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ConfigValue {
        ConfigValue::String(v.to_string())
    }
    fn n(v: f64) -> ConfigValue {
        ConfigValue::Number(v)
    }
    fn line(key: &str, values: Vec<ConfigValue>) -> ConfigNode {
        ConfigNode::new(key, values)
    }
    fn block(key: &str, values: Vec<ConfigValue>, children: Vec<ConfigNode>) -> ConfigNode {
        ConfigNode {
            key: key.to_string(),
            values,
            children,
        }
    }
    fn err(nodes: Vec<ConfigNode>) -> String {
        Config::from_nodes(&nodes).unwrap_err().to_string()
    }

    #[test]
    fn defaults_report_everything_by_comm() {
        let c = Config::from_nodes(&[]).unwrap();
        assert!(c.rules.is_empty());
        assert_eq!(c.group_by.unwrap().source(), "{comm}");
        assert_eq!(c.max_instances, 1000);
        assert!(c.collect_file_handles && c.collect_io);
        assert!(c.notifications && !c.meta_data);
    }

    #[test]
    fn every_option() {
        let c = Config::from_nodes(&[
            line("Process", vec![s("sshd")]),
            line("ProcessMatch", vec![s("java-{pid}"), s("java .*-jar")]),
            block(
                "Match",
                vec![s("pg")],
                vec![
                    line("Comm", vec![s("^postgres")]),
                    line("User", vec![n(70.0)]),
                ],
            ),
            line("GroupBy", vec![s("{user}:{comm}:{pid}")]),
            line("MaxInstances", vec![n(50.0)]),
            line("collectfilehandles", vec![ConfigValue::Boolean(false)]),
            line("CollectIO", vec![s("off")]),
            line("Notifications", vec![ConfigValue::Boolean(false)]),
            line("metadata", vec![s("yes")]),
        ])
        .unwrap();
        assert_eq!(c.rules.len(), 3);
        assert_eq!(c.rules[0].criteria.comm_exact.as_deref(), Some("sshd"));
        assert!(c.rules[1].criteria.cmdline_falls_back_to_comm);
        assert_eq!(c.rules[2].criteria.user, Some(UserSpec::Uid(70)));
        assert!(c.needs_field(Field::User) && c.needs_field(Field::Pid));
        assert!(!c.needs_field(Field::Exe));
        assert!(!c.needs_field(Field::Cgroup) && !c.needs_field(Field::Container));
        assert_eq!(c.max_instances, 50);
        assert!(!c.collect_file_handles && !c.collect_io);
        assert!(!c.notifications && c.meta_data);
    }

    #[test]
    fn cgroup_criterion_and_placeholders() {
        let c = Config::from_nodes(&[
            block(
                "Match",
                vec![s("docker-{container}")],
                vec![line("CGROUP", vec![s(r"/docker[-/][0-9a-f]{64}")])],
            ),
            line("GroupBy", vec![s("{cgroup}:{comm}")]),
        ])
        .unwrap();
        let re = c.rules[0].criteria.cgroup.as_ref().unwrap();
        assert!(re.is_match(&format!("/system.slice/docker-{}.scope", "a".repeat(64))));
        assert!(c.rules[0].criteria.needs_cgroup());
        assert!(c.needs_field(Field::Container) && c.needs_field(Field::Cgroup));
        assert!(c.needs_field(Field::Comm));
    }

    #[test]
    fn network_options() {
        let c = Config::from_nodes(&[]).unwrap();
        assert_eq!(c.network, Some(NetworkConfig::default()));
        assert_eq!(c.network.unwrap().interfaces, ["any"]);
        let c = Config::from_nodes(&[
            line("Interface", vec![s("lo")]),
            line("Interface", vec![s("eth0")]),
            line("BPFFilter", vec![s("tcp or udp")]),
            line("SnapLen", vec![n(200.0)]),
            line("BufferSize", vec![n(1048576.0)]),
            line("Promiscuous", vec![ConfigValue::Boolean(true)]),
        ])
        .unwrap();
        let net = c.network.unwrap();
        assert_eq!(net.interfaces, ["lo", "eth0"]);
        assert_eq!(net.bpf_filter.as_deref(), Some("tcp or udp"));
        assert_eq!(
            (net.snaplen, net.buffer_size, net.promiscuous),
            (200, 1 << 20, true)
        );
        let c = Config::from_nodes(&[line("CollectNetwork", vec![ConfigValue::Boolean(false)])])
            .unwrap();
        assert!(c.network.is_none());
    }

    #[test]
    fn group_by_empty_drops_unmatched() {
        let c = Config::from_nodes(&[line("GroupBy", vec![s("")])]).unwrap();
        assert!(c.group_by.is_none());
    }

    #[test]
    fn process_with_slash_gets_a_clean_name() {
        let c = Config::from_nodes(&[line("Process", vec![s("kworker/0:1")])]).unwrap();
        assert_eq!(c.rules[0].name.fixed().as_deref(), Some("kworker_0:1"));
        assert_eq!(
            c.rules[0].criteria.comm_exact.as_deref(),
            Some("kworker/0:1")
        );
    }

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("maxinstance", &OPTION_NAMES), Some("MaxInstances"));
        assert_eq!(closest("PROCES", &OPTION_NAMES), Some("Process"));
        assert_eq!(closest("Interfaces", &OPTION_NAMES), Some("Interface"));
        assert_eq!(closest("Foo", &OPTION_NAMES), None);
        assert_eq!(
            closest("Notification", &OPTION_NAMES),
            Some("Notifications")
        );
        let message = err(vec![line("Foo", vec![s("x")])]);
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn mistakes_name_option_value_and_what_is_accepted() {
        let cases: Vec<(Vec<ConfigNode>, &[&str])> = vec![
            (
                vec![line("Foo", vec![s("x")])],
                &["`Foo`", "\"x\"", "unknown option", "GroupBy"],
            ),
            (
                vec![line("MaxInstances", vec![s("x")])],
                &["`MaxInstances`", "\"x\"", "integer from 1"],
            ),
            (
                vec![line("MaxInstances", vec![n(0.0)])],
                &["`MaxInstances` 0", "from 1 to 1000000"],
            ),
            (
                vec![line("MaxInstances", vec![n(1.5)])],
                &["1.5", "integer"],
            ),
            (
                vec![line("MaxInstances", vec![n(1e9)])],
                &["1000000000", "integer"],
            ),
            (
                vec![line("ProcessMatch", vec![s("a"), s("(")])],
                &["`ProcessMatch`", "\"(\"", "invalid regular expression"],
            ),
            (
                vec![line("ProcessMatch", vec![s("a")])],
                &["`ProcessMatch`", "two quoted strings"],
            ),
            (
                vec![line("GroupBy", vec![s("{nope}")])],
                &["`GroupBy`", "{nope}", "unknown placeholder", "{comm}"],
            ),
            (
                vec![line("GroupBy", vec![n(3.0)])],
                &["`GroupBy` 3", "one quoted string"],
            ),
            (
                vec![line("Process", vec![s("a"), s("b")])],
                &["`Process`", "exactly one"],
            ),
            (vec![line("Process", vec![])], &["`Process`", "exactly one"]),
            (
                vec![line("CollectIO", vec![n(1.0)])],
                &["`CollectIO` 1", "true or false"],
            ),
            (
                vec![block("Match", vec![s("m")], vec![])],
                &["`Match` \"m\"", "at least one criterion"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Bogus", vec![s("x")])],
                )],
                &["`Bogus`", "inside <Match>"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Exe", vec![s("[")])],
                )],
                &["`Exe` \"[\"", "invalid regular expression"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("User", vec![ConfigValue::Boolean(true)])],
                )],
                &["`User` true", "user name or a numeric uid"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Cgroup", vec![s("docker-(")])],
                )],
                &["`Cgroup` \"docker-(\"", "invalid regular expression"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![
                        line("Cgroup", vec![s("^/system.slice/")]),
                        line("Comm", vec![s("x")]),
                        line("cgroup", vec![s("docker")]),
                    ],
                )],
                &["`cgroup` \"docker\"", "given twice in the same <Match>"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Cgroup", vec![n(1.0)])],
                )],
                &["`Cgroup` 1", "one quoted string"],
            ),
            (
                vec![block("Match", vec![s("m")], vec![])],
                &["at least one criterion", "Cgroup"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Container", vec![s("x")])],
                )],
                &["`Container`", "inside <Match>", "Cgroup"],
            ),
            (
                vec![line("GroupBy", vec![s("{containers}")])],
                &["`GroupBy`", "{containers}", "{container}", "{cgroup}"],
            ),
            (
                vec![line("ProcessMatch", vec![s("a/b"), s("x")])],
                &["\"a/b\"", "`/`"],
            ),
            (
                vec![line("ProcessMatch", vec![s("self"), s("x")])],
                &["reserved"],
            ),
            (
                vec![line("ProcessMatch", vec![s(&"x".repeat(64)), s("x")])],
                &["at most 63 bytes"],
            ),
            (
                vec![
                    line("ProcessMatch", vec![s("w"), s("a")]),
                    line("Process", vec![s("w")]),
                ],
                &["`Process` \"w\"", "earlier `ProcessMatch` rule"],
            ),
            (
                vec![
                    line("GroupBy", vec![s("x")]),
                    line("Process", vec![s("a")]),
                    line("Process", vec![s("b")]),
                    line("MaxInstances", vec![n(1.0)]),
                ],
                &["MaxInstances", "2 rules"],
            ),
            (
                vec![block("GroupBy", vec![s("x")], vec![line("a", vec![])])],
                &["`GroupBy`", "not a block"],
            ),
            (
                vec![line("SnapLen", vec![n(40.0)])],
                &["`SnapLen` 40", "from 96 to 65535"],
            ),
            (
                vec![line("BufferSize", vec![n(10.0)])],
                &["`BufferSize` 10", "from 65536"],
            ),
            (
                vec![line("Interface", vec![s("a/b")])],
                &["`Interface` \"a/b\"", "interface name"],
            ),
            (
                vec![
                    line("Interface", vec![s("lo")]),
                    line("Interface", vec![s("lo")]),
                ],
                &["given twice"],
            ),
            (
                vec![line("CollectNetwork", vec![s("maybe")])],
                &["`CollectNetwork`", "true or false"],
            ),
            (
                vec![line("Notifications", vec![s("loud")])],
                &["`Notifications` \"loud\"", "true or false"],
            ),
            (
                vec![line("MetaData", vec![n(2.0)])],
                &["`MetaData` 2", "true or false"],
            ),
            (
                vec![line("Notification", vec![ConfigValue::Boolean(true)])],
                &[
                    "`Notification` true",
                    "unknown option",
                    "Notifications",
                    "MetaData",
                ],
            ),
            (
                vec![line("MaxInstance", vec![n(5.0)])],
                &["`MaxInstance` 5", "did you mean `MaxInstances`?"],
            ),
            (
                vec![line("BPFFiltre", vec![s("tcp")])],
                &["`BPFFiltre`", "did you mean `BPFFilter`?"],
            ),
            (
                vec![block(
                    "Match",
                    vec![s("m")],
                    vec![line("Cmdlin", vec![s("x")])],
                )],
                &["`Cmdlin`", "inside <Match>", "did you mean `Cmdline`?"],
            ),
            (
                vec![line("Comm", vec![s("^x")])],
                &["`Comm` \"^x\"", "criterion of a <Match"],
            ),
            (
                vec![block(
                    "Matc",
                    vec![s("m")],
                    vec![line("Comm", vec![s("x")])],
                )],
                &["`Matc` \"m\"", "did you mean `Match`?"],
            ),
            (
                vec![line("GroupBy", vec![s("  ")])],
                &["`GroupBy` \"  \"", "not blank"],
            ),
        ];
        for (nodes, needles) in cases {
            let message = err(nodes);
            for needle in needles {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
    }

    mod properties {
        use super::*;
        use crate::sampler::grouping::{self, tests::Fixed};
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = ConfigValue> {
            prop_oneof![
                prop_oneof![
                    "\\PC{0,16}",
                    "\\{(comm|exe|user|uid|pid|cgroup|container)\\}[:a-z/]{0,4}",
                    "(true|false|on|off|[0-9]{1,7})",
                ]
                .prop_map(ConfigValue::String),
                prop_oneof![any::<f64>(), (-5i32..2_000_000).prop_map(f64::from)]
                    .prop_map(ConfigValue::Number),
                any::<bool>().prop_map(ConfigValue::Boolean),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => prop::sample::select(
                    OPTION_NAMES.iter().chain(&MATCH_OPTION_NAMES).copied().collect::<Vec<_>>()
                )
                .prop_map(str::to_string),
                1 => "[a-zA-Z]{0,12}",
            ]
        }

        /// Trees of options as collectd hands them over: keys, typed values, blocks.
        fn nodes() -> impl Strategy<Value = Vec<ConfigNode>> {
            let leaf = (key(), prop::collection::vec(value(), 0..3))
                .prop_map(|(k, v)| ConfigNode::new(&k, v));
            let tree = leaf.prop_recursive(2, 16, 4, |inner| {
                (
                    key(),
                    prop::collection::vec(value(), 0..3),
                    prop::collection::vec(inner, 0..4),
                )
                    .prop_map(|(k, v, children)| ConfigNode {
                        children,
                        ..ConfigNode::new(&k, v)
                    })
            });
            prop::collection::vec(tree, 0..6)
        }

        fn written(nodes: &[ConfigNode], key: &str) -> bool {
            nodes
                .iter()
                .any(|n| n.key.eq_ignore_ascii_case(key) || written(&n.children, key))
        }

        proptest! {
            /// Any tree: no panic; a refusal names an option as written; an accepted
            /// configuration names every process with a clean name.
            #[test]
            fn any_tree_validates_or_names_its_option(nodes in nodes(), comm in "\\PC{0,20}", pid in any::<u32>()) {
                match Config::from_nodes(&nodes) {
                    Err(e) => {
                        prop_assert!(written(&nodes, &e.option), "{:?}", e);
                        prop_assert!(!e.problem.is_empty());
                    }
                    Ok(config) => {
                        let mut facts = Fixed { pid, comm, ..Fixed::default() };
                        if let Some(a) = grouping::assign(&config, &mut facts) {
                            prop_assert!(crate::names::is_clean(&a.name), "{:?}", a);
                        }
                    }
                }
            }

            /// `Process "comm"` names its rule after the command, sanitized, or is refused (a
            /// reserved name); `MaxInstances n` is taken in 1 ... 1000000 and refused outside.
            #[test]
            fn options_come_back(comm in "\\PC{1,20}|[a-z/\n]{1,80}", max in -10i64..2_000_000) {
                let nodes = vec![
                    line("Process", vec![s(&comm)]),
                    line("MaxInstances", vec![n(max as f64)]),
                ];
                match Config::from_nodes(&nodes) {
                    Ok(config) => {
                        prop_assert!((1..=MAX_INSTANCES_LIMIT as i64).contains(&max));
                        prop_assert_eq!(config.max_instances as i64, max);
                        prop_assert_eq!(config.rules[0].name.fixed(), Some(names::sanitize(&comm)));
                    }
                    Err(e) => prop_assert!(
                        e.option == "MaxInstances" && !(1..=MAX_INSTANCES_LIMIT as i64).contains(&max)
                            || e.option == "Process",
                        "{:?}", e
                    ),
                }
            }
        }
    }
}
