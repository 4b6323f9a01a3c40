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
    /// Flows with an owner each capture thread keeps at most (`MaxFlows`); the bounds of its
    /// other tables follow from it (`net::capture::flows::FlowLimits`).
    pub max_flows: usize,
    /// Where owners of flows come from first (`OwnerSource`).
    pub owner_source: OwnerSource,
}

/// `OwnerSource`: which process owns a flow's socket is asked first of what eBPF programs
/// recorded in the kernel, or only of /proc and sock_diag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerSource {
    /// eBPF when the programs load; /proc otherwise, saying why once.
    Auto,
    /// eBPF, or the plugin refuses to start.
    Ebpf,
    /// /proc and sock_diag only.
    Proc,
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
            max_flows: crate::net::capture::flows::DEFAULT_MAX_FLOWS,
            owner_source: OwnerSource::Auto,
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
    /// Read each reported process's `status` for its code, data and stack sizes
    /// (`CollectMemoryDetails`). Off by default: the file costs about twice `stat`.
    pub collect_memory_details: bool,
    /// Read each reported process's threads' `status` for their context switches
    /// (`CollectContextSwitch`, the processes plugin's name): a file per thread.
    pub collect_context_switches: bool,
    /// Count each reported process's memory mappings (`CollectMemoryMaps`): its whole `maps`.
    pub collect_memory_maps: bool,
    /// Ask taskstats for each reported process's delays (`CollectDelayAccounting`): one
    /// netlink request a process.
    pub collect_delay_accounting: bool,
    /// Load the exit program (`ExitRecords`): what processes use up to their end, shorter
    /// than an interval included.
    pub exit_records: bool,
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
            collect_memory_details: false,
            collect_context_switches: false,
            collect_memory_maps: false,
            collect_delay_accounting: false,
            exit_records: true,
            notifications: true,
            meta_data: false,
            network: Some(NetworkConfig::default()),
        }
    }
}

/// The options of `<Plugin capture>`, for error messages.
const OPTIONS: &str = "Process, ProcessMatch, <Match>, GroupBy, MaxInstances, \
                       CollectFileHandles (or CollectFileDescriptor), CollectIO, \
                       CollectMemoryDetails, CollectContextSwitch, CollectMemoryMaps, \
                       CollectDelayAccounting, ExitRecords, Notifications, MetaData, CollectNetwork, Interface, BPFFilter, SnapLen, \
                       BufferSize, Promiscuous, MaxFlows, OwnerSource";
const MATCH_OPTIONS: &str = "Comm, Cmdline, Exe, User, Cgroup";

/// The option names of [`OPTIONS`] and [`MATCH_OPTIONS`], for suggestions (and fuzzing).
pub const OPTION_NAMES: [&str; 23] = [
    "Process",
    "ProcessMatch",
    "Match",
    "GroupBy",
    "MaxInstances",
    "CollectFileHandles",
    "CollectFileDescriptor",
    "CollectIO",
    "CollectMemoryDetails",
    "CollectContextSwitch",
    "CollectMemoryMaps",
    "CollectDelayAccounting",
    "ExitRecords",
    "Notifications",
    "MetaData",
    "CollectNetwork",
    "Interface",
    "BPFFilter",
    "SnapLen",
    "BufferSize",
    "Promiscuous",
    "MaxFlows",
    "OwnerSource",
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
            if !node.children.is_empty() && (key == "process" || key == "processmatch") {
                // The processes plugin's per-match blocks (`<Process "x"> CollectContextSwitch
                // true </Process>`): here each value is collected for every reported process.
                return Err(error(
                    node,
                    "is not a block here; write it as a single line and set its Collect... \
                     options at the top of <Plugin capture>, where they apply to every reported \
                     process",
                ));
            }
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
                // The processes plugin's name for the same switch.
                "collectfilehandles" | "collectfiledescriptor" => {
                    config.collect_file_handles = boolean(node)?
                }
                "collectio" => config.collect_io = boolean(node)?,
                "collectmemorydetails" => config.collect_memory_details = boolean(node)?,
                // The processes plugin's names.
                "collectcontextswitch" => config.collect_context_switches = boolean(node)?,
                "collectmemorymaps" => config.collect_memory_maps = boolean(node)?,
                "collectdelayaccounting" => config.collect_delay_accounting = boolean(node)?,
                "exitrecords" => config.exit_records = boolean(node)?,
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
                "maxflows" => network.max_flows = integer(node, 1024, 16 << 20)? as usize,
                "ownersource" => {
                    network.owner_source = match one_string(node)?.to_ascii_lowercase().as_str() {
                        "auto" => OwnerSource::Auto,
                        "ebpf" => OwnerSource::Ebpf,
                        "proc" => OwnerSource::Proc,
                        _ => return Err(error(node, "expected \"auto\", \"ebpf\" or \"proc\"")),
                    };
                }
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

    /// Whether any of the costly per-process values is collected.
    pub fn collects_details(&self) -> bool {
        self.collect_memory_details
            || self.collect_context_switches
            || self.collect_memory_maps
            || self.collect_delay_accounting
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
mod tests;
