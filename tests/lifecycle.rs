//! Integration tests of the plugin's lifecycle inside a real collectd: it starts, reports its
//! own telemetry, and lets collectd stop promptly on SIGTERM — the sampler thread is stopped
//! and joined, even in the middle of a cycle.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn sigterm_stops_collectd_promptly_again_and_again() {
    for round in 0..3 {
        let Some(mut collectd) = Collectd::start(None) else {
            return;
        };
        // Wait until the plugin has dispatched at least twice: the sampler thread is running
        // and being asked for cycles.
        collectd.wait_rows("self", "duration-sampler", "two sampler rows", |rows| {
            rows.len() >= 2
        });
        let (took, status) = collectd.terminate();
        let log = collectd.log();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: collectd took {took:?} to stop after SIGTERM (status {status:?}):\n{log}"
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "round {round}: collectd exited with {status:?}:\n{log}"
        );
        assert!(log.contains("Exiting normally"), "round {round}:\n{log}");
        let errors = collectd.plugin_log_lines("error");
        assert!(
            errors.is_empty(),
            "round {round}: plugin errors: {errors:?}"
        );
    }
}

#[test]
fn telemetry_describes_the_sampler() {
    let Some(collectd) = Collectd::start(None) else {
        return;
    };
    let durations = collectd.wait_rows("self", "duration-sampler", "two rows", |rows| {
        rows.len() >= 2
    });
    let processes = collectd.wait_rows("self", "count-processes", "a row", |r| !r.is_empty());
    let instances = collectd.wait_rows("self", "count-instances", "a row", |r| !r.is_empty());
    let dropped = collectd.wait_rows("self", "count-instances_dropped", "a row", |r| {
        !r.is_empty()
    });
    // A cycle over a few hundred processes takes milliseconds; a second would mean a hang.
    let last = durations.last().expect("a row").get("seconds");
    assert!(
        last > 0.0 && last < 1.0,
        "sampler cycle of {last} s: {}",
        format_rows(&durations)
    );
    // This test's own process and collectd are on the host: at least two processes, and at
    // most as many instances as processes.
    let seen = processes.last().expect("a row").value();
    let reported = instances.last().expect("a row").value();
    assert!(seen >= 2.0, "{}", format_rows(&processes));
    assert!(
        reported >= 1.0 && reported <= seen,
        "{reported} instances for {seen} processes"
    );
    assert_eq!(dropped.last().expect("a row").value(), 0.0);
    // The instance count is what was written: one capture-<instance> directory each, besides
    // `self` (instances that came and went between rows may add a few).
    let directories = collectd.instances().len() as f64 - 1.0;
    assert!(
        directories >= reported,
        "{directories} instance directories for {reported} reported instances"
    );
}
