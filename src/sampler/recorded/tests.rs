//! Unit tests of [`super`] (placing a process from its kernel record).

use super::*;
use crate::net::types::Owner;
use crate::sampler::grouping::tests::config as with_blocks;

fn config(lines: &[(&str, &[&str])]) -> Config {
    with_blocks(lines, Vec::new())
}

/// A `curl` run by root that exited before /proc could be read: comm and uid only.
fn gone() -> RecordedProcess {
    RecordedProcess {
        owner: Owner {
            pid: 4321,
            starttime: 99,
        },
        comm: "curl".into(),
        uid: 0,
        cmdline: None,
        exe: None,
        cgroup: None,
    }
}

/// The same, read from /proc when its record arrived.
fn read() -> RecordedProcess {
    RecordedProcess {
        cmdline: Some("curl -s http://example.invalid/upload".into()),
        exe: Some("/usr/bin/curl".into()),
        cgroup: Some("/system.slice/cron.service".into()),
        ..gone()
    }
}

fn placed(config: &Config, process: &RecordedProcess) -> Placement {
    place(config, process, &mut UserNames::default())
}

fn instance(name: &str) -> Placement {
    Placement::Instance(name.into())
}

#[test]
fn comm_user_and_pid_always_decide() {
    assert_eq!(placed(&Config::default(), &gone()), instance("curl"));
    assert_eq!(
        placed(&config(&[("GroupBy", &["{uid}:{comm}:{pid}"])]), &gone()),
        instance("0:curl:4321")
    );
    assert_eq!(
        placed(
            &config(&[("Process", &["curl"]), ("GroupBy", &[""])]),
            &gone()
        ),
        instance("curl")
    );
}

#[test]
fn a_rule_on_a_fact_nobody_read_is_undecidable_never_a_guess() {
    // Would the command line have matched? Not known: not the rule's, not GroupBy's either.
    let by_cmdline = config(&[("ProcessMatch", &["uploads", "upload"])]);
    assert_eq!(placed(&by_cmdline, &gone()), Placement::Undecidable);
    assert_eq!(placed(&by_cmdline, &read()), instance("uploads"));
    let by_exe = config(&[("GroupBy", &["{exe}"])]);
    assert_eq!(placed(&by_exe, &gone()), Placement::Undecidable);
    assert_eq!(placed(&by_exe, &read()), instance("curl"));
    let by_cgroup = config(&[("GroupBy", &["{cgroup}"])]);
    assert_eq!(placed(&by_cgroup, &gone()), Placement::Undecidable);
}

#[test]
fn a_rule_decided_on_the_comm_before_an_undecidable_one_places_it() {
    // The first rule matches on the comm alone: the later rule is never asked.
    let config = config(&[
        ("Process", &["curl"]),
        ("ProcessMatch", &["uploads", "upload"]),
    ]);
    assert_eq!(placed(&config, &gone()), instance("curl"));
}

#[test]
fn group_by_nothing_drops_it_as_it_would_the_live_process() {
    assert_eq!(
        placed(&config(&[("GroupBy", &[""])]), &gone()),
        Placement::Dropped
    );
}
