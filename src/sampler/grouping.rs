//! Which instance a process belongs to: the configured rules in order, then `GroupBy`. Facts
//! that cost a file read (command line, executable, uid, cgroup) are fetched only when a rule or
//! template asks for them, through [`ProcessFacts`].

use crate::config::{Config, Criteria, Field, Template, UserSpec};
use crate::names;
use crate::proc::pid_cgroup;

/// What grouping may ask about one process. Implemented over /proc by the sampler and over
/// plain values in tests.
pub trait ProcessFacts {
    fn pid(&self) -> u32;
    fn comm(&self) -> &str;
    fn kernel_thread(&self) -> bool;
    /// Arguments joined by spaces; empty for kernel threads and zombies.
    fn cmdline(&mut self) -> &str;
    /// Full path of the executable, when it can be read.
    fn exe(&mut self) -> Option<&str>;
    fn uid(&mut self) -> Option<u32>;
    fn user(&mut self) -> Option<&str>;
    /// The cgroup path that represents the process (`proc::pid_cgroup::parse`), when it can be
    /// read.
    fn cgroup(&mut self) -> Option<&str>;
}

/// The outcome of grouping one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Sanitized instance name.
    pub name: String,
    /// The name came from a rule with no placeholders: report it even with no process.
    pub fixed: bool,
}

pub fn assign(config: &Config, facts: &mut dyn ProcessFacts) -> Option<Assignment> {
    for rule in &config.rules {
        if matches(&rule.criteria, facts) {
            return Some(Assignment {
                name: expand(&rule.name, facts),
                fixed: rule.name.fixed().is_some(),
            });
        }
    }
    config.group_by.as_ref().map(|template| Assignment {
        name: expand(template, facts),
        fixed: false,
    })
}

fn matches(criteria: &Criteria, facts: &mut dyn ProcessFacts) -> bool {
    if let Some(comm) = &criteria.comm_exact {
        if facts.comm() != comm {
            return false;
        }
    }
    if let Some(re) = &criteria.comm {
        if !re.is_match(facts.comm()) {
            return false;
        }
    }
    if let Some(re) = &criteria.cmdline {
        let cmdline = facts.cmdline();
        let subject = if cmdline.is_empty() && criteria.cmdline_falls_back_to_comm {
            facts.comm().to_string()
        } else {
            cmdline.to_string()
        };
        if !re.is_match(&subject) {
            return false;
        }
    }
    if let Some(re) = &criteria.exe {
        match facts.exe() {
            Some(exe) if re.is_match(exe) => {}
            _ => return false,
        }
    }
    if let Some(user) = &criteria.user {
        let matched = match user {
            UserSpec::Uid(uid) => facts.uid() == Some(*uid),
            UserSpec::Name(name) => facts.user() == Some(name.as_str()),
        };
        if !matched {
            return false;
        }
    }
    if let Some(re) = &criteria.cgroup {
        match facts.cgroup() {
            Some(path) if re.is_match(path) => {}
            _ => return false,
        }
    }
    true
}

/// Expands a template. Every placeholder but `{container}` expands to something: `{exe}` falls
/// back to the comm (kernel threads have no executable), `{user}` to the uid, an unreadable uid
/// or cgroup to `?`, and `{cgroup}` of the root cgroup is [`ROOT_CGROUP`].
///
/// `{container}` is empty for a process outside any container, because there is no container
/// to name: `"{container}:{comm}"` gives `:sshd` on the host and `3f4e2b1c9a8d:nginx` in a
/// container, and a Prometheus relabel rule splitting on `:` yields an empty `container` label,
/// which Prometheus treats as no label — what a host process is. A stand-in such as `host`
/// would be indistinguishable from a container of that name in the split label. A template that
/// expands to nothing at all (a bare `"{container}"`) is made `_` by the sanitizing.
fn expand(template: &Template, facts: &mut dyn ProcessFacts) -> String {
    let raw = template.expand(|field| match field {
        Field::Comm => comm_for_name(facts).to_string(),
        Field::Pid => facts.pid().to_string(),
        Field::Exe => match facts.exe() {
            Some(path) => basename(path).to_string(),
            None => comm_for_name(facts).to_string(),
        },
        Field::Uid => facts
            .uid()
            .map_or_else(|| "?".to_string(), |u| u.to_string()),
        Field::User => match facts.user() {
            Some(name) => name.to_string(),
            None => facts
                .uid()
                .map_or_else(|| "?".to_string(), |u| u.to_string()),
        },
        Field::Cgroup => match facts.cgroup() {
            Some(path) => match pid_cgroup::last_component(path) {
                "" => ROOT_CGROUP.to_string(),
                last => last.to_string(),
            },
            None => "?".to_string(),
        },
        Field::Container => facts
            .cgroup()
            .and_then(pid_cgroup::container_id)
            .unwrap_or("")
            .to_string(),
    });
    names::sanitize(&raw)
}

/// `{cgroup}` of a process in the root cgroup (kernel threads, and everything on a host where
/// nothing manages cgroups): `-`, the name systemd gives the root slice (`-.slice`). Never
/// empty, so `"{cgroup}:{comm}"` keeps its shape.
pub const ROOT_CGROUP: &str = "-";

/// `{comm}` of a kernel thread is its kind, the part before the first `/`: per-CPU and
/// per-device threads (`ksoftirqd/3`, `kworker/0:1H`, `irq/24-acpi`) would otherwise make an
/// instance each — hundreds on a large host, a cost and a cardinality nobody asked for. Matching
/// (`Process`, `Comm`) still sees the whole name.
fn comm_for_name(facts: &dyn ProcessFacts) -> &str {
    let comm = facts.comm();
    if facts.kernel_thread() {
        comm.split('/')
            .next()
            .filter(|k| !k.is_empty())
            .unwrap_or(comm)
    } else {
        comm
    }
}

fn basename(path: &str) -> &str {
    // A deleted executable shows as "/path/prog (deleted)".
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// For tests and the fuzz targets: the facts of one process given as plain values.
#[cfg(any(test, fuzzing))]
#[derive(Debug, Default, Clone)]
pub struct FixedFacts {
    pub pid: u32,
    pub comm: String,
    pub kernel_thread: bool,
    pub cmdline: String,
    pub exe: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cgroup: Option<String>,
}

#[cfg(any(test, fuzzing))]
impl ProcessFacts for FixedFacts {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn comm(&self) -> &str {
        &self.comm
    }
    fn kernel_thread(&self) -> bool {
        self.kernel_thread
    }
    fn cmdline(&mut self) -> &str {
        &self.cmdline
    }
    fn exe(&mut self) -> Option<&str> {
        self.exe.as_deref()
    }
    fn uid(&mut self) -> Option<u32> {
        self.uid
    }
    fn user(&mut self) -> Option<&str> {
        self.user.as_deref()
    }
    fn cgroup(&mut self) -> Option<&str> {
        self.cgroup.as_deref()
    }
}

#[cfg(test)]
pub(crate) mod tests;
