//! Integration tests: collectd notifications of watched groups (a rule with a fixed name), as
//! collectd's logfile plugin logs them at LogLevel info:
//!
//! ```text
//! Notification: severity = FAILURE, host = test, plugin = capture, plugin_instance = sshd,
//!     type = ps_count, message = capture: no process left in group "sshd"
//! ```
//!
//! (one line in the log). Each test watches command names of its own, so tests run in parallel.

mod common;

use common::*;

/// The notifications logged for capture instance `instance`, in order: (severity, message).
fn notifications(collectd: &Collectd, instance: &str) -> Vec<(String, String)> {
    let needle = format!(", plugin = capture, plugin_instance = {instance}, ");
    collectd
        .log()
        .lines()
        .filter_map(|line| {
            let at = line.find("Notification: severity = ")?;
            let rest = &line[at + "Notification: severity = ".len()..];
            if !rest.contains(&needle) {
                return None;
            }
            let severity = rest.split(',').next()?.to_string();
            let message = rest.split(", message = ").nth(1)?.to_string();
            Some((severity, message))
        })
        .collect()
}

/// Waits until `count` notifications of `instance` are logged and returns them all.
fn wait_notifications(collectd: &Collectd, instance: &str, count: usize) -> Vec<(String, String)> {
    wait_for(
        &format!("{count} notification(s) of {instance}"),
        TIMEOUT,
        || {
            let seen = notifications(collectd, instance);
            (seen.len() >= count).then_some(seen)
        },
    )
}

fn pair(severity: &str, message: String) -> (String, String) {
    (severity.to_string(), message)
}

#[test]
fn a_watched_group_that_loses_its_last_process_fails_and_recovers() {
    let comm = unique_comm("cw_ntf_");
    // Only the watched group is reported: nothing else to write for collectd.
    let block = format!("GroupBy \"\"\nProcess \"{comm}\"");
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    // Empty when collectd starts: said once, so a program that is not running at boot is
    // noticed.
    let seen = wait_notifications(&collectd, &comm, 1);
    assert_eq!(
        seen,
        [pair(
            "FAILURE",
            format!("capture: no process in group \"{comm}\"")
        )],
        "{}",
        collectd.log()
    );

    let mut first = collectd.spawn(&comm, &["sleep", "60"]);
    first.expect_line("ready");
    let seen = wait_notifications(&collectd, &comm, 2);
    assert_eq!(
        seen[1],
        pair(
            "OKAY",
            format!("capture: 1 process in group \"{comm}\" again")
        )
    );

    drop(first); // killed and reaped
    let seen = wait_notifications(&collectd, &comm, 3);
    assert_eq!(
        seen[2],
        pair(
            "FAILURE",
            format!("capture: no process left in group \"{comm}\"")
        )
    );

    let mut second = collectd.spawn(&comm, &["sleep", "60"]);
    second.expect_line("ready");
    let seen = wait_notifications(&collectd, &comm, 4);
    assert_eq!(seen[3].0, "OKAY");

    // Each transition is said once: a few more intervals add nothing.
    collectd.wait_row_after(&comm, "ps_count", now() + SETTLE + INTERVAL);
    let seen = notifications(&collectd, &comm);
    assert_eq!(seen.len(), 4, "one notification per transition: {seen:?}");
    // The whole line, as a notification plugin receives it: host, plugin, type.
    let line = collectd
        .log()
        .lines()
        .find(|l| l.contains("Notification: severity = OKAY") && l.contains(&comm))
        .map(str::to_owned)
        .expect("the OKAY line");
    assert!(
        line.contains(&format!(
            "Notification: severity = OKAY, host = test, plugin = capture, \
             plugin_instance = {comm}, type = ps_count, message = capture: "
        )),
        "{line}"
    );
}

#[test]
fn groups_with_placeholders_and_running_groups_stay_quiet() {
    let running = unique_comm("cw_nup_");
    let templated = unique_comm("cw_ntp_");
    let block = format!(
        "GroupBy \"\"\nProcessMatch \"{{comm}}\" \"{templated}\"\nProcess \"{running}\"\n\
         Notifications true"
    );
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    let mut up = collectd.spawn(&running, &["sleep", "60"]);
    up.expect_line("ready");
    let mut other = collectd.spawn(&templated, &["sleep", "60"]);
    other.expect_line("ready");
    collectd.wait_rows(&templated, "ps_count", "processes=1", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
    drop(other); // its instance has a placeholder: it just stops being reported
    collectd.wait_row_after(&running, "ps_count", now() + SETTLE + INTERVAL);
    // The running group raised FAILURE at most for the first cycle (it may have started
    // before the workload), then OKAY; nothing for the group with a placeholder.
    let seen = notifications(&collectd, &running);
    assert!(
        seen.is_empty() || seen.iter().map(|(s, _)| s.as_str()).eq(["FAILURE", "OKAY"]),
        "{seen:?}"
    );
    assert_eq!(notifications(&collectd, &templated), []);
}

#[test]
fn notifications_can_be_turned_off() {
    let comm = unique_comm("cw_nof_");
    let block = format!("GroupBy \"\"\nProcess \"{comm}\"\nNotifications false");
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    // Reported with ps_count 0 for a few intervals, never notified.
    collectd.wait_rows(&comm, "ps_count", "3 rows", |rows| rows.len() >= 3);
    assert_eq!(notifications(&collectd, &comm), []);
    assert!(
        !collectd.log().contains("Notification: severity"),
        "{}",
        collectd.log()
    );
}
