//! Where the traffic of a process the sampler never saw alive goes: the kernel recorded it using
//! a socket (the eBPF owner source), and it exited before a cycle read /proc. It is placed by
//! the same rules as every process, from what the record and the resolver's early look at /proc
//! kept ([`RecordedProcess`]).
//!
//! A rule or template that asks for a fact nobody could read (the command line, executable or
//! cgroup of a process gone before its record arrived) cannot be decided: guessing would credit
//! a process to an instance it may not belong to, so its traffic counts as `unattributed`,
//! never as someone else's. Rules on the comm (`Process`, `Comm`) and the user (`User`), and
//! `GroupBy "{comm}"`, `"{user}"`, `"{uid}"`, `"{pid}"`, always decide.

use super::grouping::{self, ProcessFacts};
use crate::config::Config;
use crate::net::types::RecordedProcess;
use crate::users::UserNames;

/// The instance `process` belongs to; `None` when no rule or `GroupBy` takes it, or when
/// deciding needed a fact that is not known.
pub fn place(config: &Config, process: &RecordedProcess, users: &mut UserNames) -> Placement {
    let mut facts = RecordedFacts {
        process,
        users,
        unknown_asked: false,
    };
    let assignment = grouping::assign(config, &mut facts);
    if facts.unknown_asked {
        return Placement::Undecidable;
    }
    match assignment {
        Some(assignment) if !assignment.name.is_empty() => Placement::Instance(assignment.name),
        _ => Placement::Dropped,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Instance(String),
    /// `GroupBy ""` and no rule: not reported, as the live process would not be.
    Dropped,
    /// A rule or template needed a fact nobody could read.
    Undecidable,
}

struct RecordedFacts<'a> {
    process: &'a RecordedProcess,
    users: &'a mut UserNames,
    /// Grouping asked for a fact this process's record lacks.
    unknown_asked: bool,
}

impl ProcessFacts for RecordedFacts<'_> {
    fn pid(&self) -> u32 {
        self.process.owner.pid
    }

    fn comm(&self) -> &str {
        &self.process.comm
    }

    fn kernel_thread(&self) -> bool {
        // Kernel threads own no user sockets.
        false
    }

    fn cmdline(&mut self) -> &str {
        match &self.process.cmdline {
            Some(cmdline) => cmdline,
            None => {
                self.unknown_asked = true;
                ""
            }
        }
    }

    fn exe(&mut self) -> Option<&str> {
        if self.process.exe.is_none() {
            self.unknown_asked = true;
        }
        self.process.exe.as_deref()
    }

    fn uid(&mut self) -> Option<u32> {
        Some(self.process.uid)
    }

    fn user(&mut self) -> Option<&str> {
        self.users.name(self.process.uid)
    }

    fn cgroup(&mut self) -> Option<&str> {
        if self.process.cgroup.is_none() {
            self.unknown_asked = true;
        }
        self.process.cgroup.as_deref()
    }
}

#[cfg(test)]
mod tests;
