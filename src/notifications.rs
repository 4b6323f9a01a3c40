//! Notifications for watched groups: an instance with a fixed name (a rule without
//! placeholders, reported with `ps_count` 0 while empty) raises FAILURE when it has no process
//! left and OKAY when one is back, so collectd's notification plugins (notify_email,
//! notify_nagios, exec, logfile ...) hear of a watched program that is gone without Prometheus.
//!
//! Transitions are taken from the snapshots as they are dispatched, so a notification always
//! agrees with the `ps_count` values the writers received. A group that is empty in the first
//! snapshot raises FAILURE once: a watched program that is not running when collectd starts
//! (it failed at boot, it was never installed) is exactly what an operator wants to hear about,
//! and it would otherwise go unnoticed until it had run once. A group with processes at start
//! raises nothing: "all is well" at every restart would be noise.

use crate::snapshot::InstanceReport;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Failure,
    Okay,
}

/// One notification to raise, about the instance `instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub severity: Severity,
    pub instance: String,
    pub message: String,
}

/// The last known state of each watched group: whether it had a live process.
#[derive(Debug, Default)]
pub struct GroupWatch {
    had_processes: HashMap<String, bool>,
}

impl GroupWatch {
    /// The notifications that `instances` (one snapshot, in dispatch order) call for.
    pub fn update(&mut self, instances: &[InstanceReport]) -> Vec<Notification> {
        let mut out = Vec::new();
        for inst in instances.iter().filter(|i| i.watched) {
            let alive = inst.processes > 0;
            let before = self.had_processes.insert(inst.name.clone(), alive);
            let name = &inst.name;
            match (before, alive) {
                (None, false) => out.push(Notification {
                    severity: Severity::Failure,
                    instance: name.clone(),
                    message: format!("capture: no process in group \"{name}\""),
                }),
                (Some(true), false) => out.push(Notification {
                    severity: Severity::Failure,
                    instance: name.clone(),
                    message: format!("capture: no process left in group \"{name}\""),
                }),
                (Some(false), true) => out.push(Notification {
                    severity: Severity::Okay,
                    instance: name.clone(),
                    message: format!(
                        "capture: {} in group \"{name}\" again",
                        match inst.processes {
                            1 => "1 process".to_string(),
                            n => format!("{n} processes"),
                        }
                    ),
                }),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, processes: u64, watched: bool) -> InstanceReport {
        InstanceReport {
            name: name.to_string(),
            processes,
            watched,
            ..InstanceReport::default()
        }
    }

    fn severities(n: &[Notification]) -> Vec<(Severity, &str)> {
        n.iter()
            .map(|n| (n.severity, n.instance.as_str()))
            .collect()
    }

    #[test]
    fn losing_the_last_process_fails_and_its_return_is_okay() {
        let mut watch = GroupWatch::default();
        assert!(
            watch.update(&[group("sshd", 2, true)]).is_empty(),
            "up at start: quiet"
        );
        assert!(watch.update(&[group("sshd", 1, true)]).is_empty());
        let gone = watch.update(&[group("sshd", 0, true)]);
        assert_eq!(
            gone,
            [Notification {
                severity: Severity::Failure,
                instance: "sshd".into(),
                message: "capture: no process left in group \"sshd\"".into(),
            }]
        );
        assert!(
            watch.update(&[group("sshd", 0, true)]).is_empty(),
            "said once"
        );
        let back = watch.update(&[group("sshd", 3, true)]);
        assert_eq!(severities(&back), [(Severity::Okay, "sshd")]);
        assert_eq!(
            back[0].message,
            "capture: 3 processes in group \"sshd\" again"
        );
        assert!(watch.update(&[group("sshd", 3, true)]).is_empty());
    }

    #[test]
    fn a_group_empty_at_start_fails_once() {
        let mut watch = GroupWatch::default();
        let first = watch.update(&[group("cron", 0, true), group("sshd", 1, true)]);
        assert_eq!(severities(&first), [(Severity::Failure, "cron")]);
        assert_eq!(first[0].message, "capture: no process in group \"cron\"");
        assert!(watch.update(&[group("cron", 0, true)]).is_empty());
        let back = watch.update(&[group("cron", 1, true)]);
        assert_eq!(
            back[0].message,
            "capture: 1 process in group \"cron\" again"
        );
    }

    #[test]
    fn unwatched_groups_never_notify() {
        let mut watch = GroupWatch::default();
        assert!(watch.update(&[group("bash", 0, false)]).is_empty());
        assert!(watch.update(&[group("bash", 2, false)]).is_empty());
        assert!(watch.update(&[]).is_empty());
        assert!(watch.update(&[group("bash", 0, false)]).is_empty());
    }
}
