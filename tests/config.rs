//! Integration tests (owned by the integration tests): how collectd-capture takes its
//! `<Plugin capture>` configuration inside a real collectd. Every documented option is accepted;
//! each kind of mistake is refused with one error line naming the option and the value, while
//! collectd and its other plugins go on.

mod common;

use common::*;

/// Starts collectd with `block`, and checks that the capture plugin refused it: exactly one
/// error line of the plugin, naming `option` and, when given, `value` (compared ignoring case,
/// as collectd does for option names); collectd still running with `load` still being written;
/// no capture instance at all.
fn assert_refused(block: &str, option: &str, value: Option<&str>) {
    let Some(mut collectd) = Collectd::start(Some(block)) else {
        return;
    };
    let started = now();
    // Three intervals of `load` rows: collectd kept reading, and the plugin had the time to
    // write something if it (wrongly) started.
    wait_for("3 rows of the load plugin", TIMEOUT, || {
        let rows = collectd.rows_of_plugin("load", "load");
        (rows.iter().filter(|row| row.epoch >= started).count() >= 3).then_some(())
    });
    assert_eq!(
        collectd.exit_status(),
        None,
        "collectd exited after a bad capture config"
    );
    assert_eq!(
        collectd.instances(),
        Vec::<String>::new(),
        "the plugin reported instances despite the bad config:\n{block}"
    );
    let errors = collectd.plugin_log_lines("error");
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one `[error] capture: ` line for the bad config\n{block}\ngot {errors:#?}"
    );
    eprintln!("refused as expected: {}", errors[0]);
    let line = errors[0].to_lowercase();
    assert!(
        line.contains(&option.to_lowercase()),
        "the error line does not name the option {option:?}: {:?}",
        errors[0]
    );
    if let Some(value) = value {
        assert!(
            line.contains(&value.to_lowercase()),
            "the error line does not name the value {value:?}: {:?}",
            errors[0]
        );
    }
}

#[test]
fn unknown_option_is_refused() {
    assert_refused(r#"Foo "bar""#, "Foo", Some("bar"));
}

#[test]
fn max_instances_that_is_not_a_number_is_refused() {
    assert_refused(r#"MaxInstances "x""#, "MaxInstances", Some("x"));
}

#[test]
fn max_instances_zero_is_refused() {
    assert_refused("MaxInstances 0", "MaxInstances", Some("0"));
}

#[test]
fn invalid_regex_is_refused() {
    assert_refused(r#"ProcessMatch "a" "(""#, "ProcessMatch", Some("("));
}

#[test]
fn unknown_placeholder_is_refused() {
    assert_refused(r#"GroupBy "{nope}""#, "GroupBy", Some("{nope}"));
}

#[test]
fn process_with_two_arguments_is_refused() {
    assert_refused(r#"Process "a" "b""#, "Process", None);
}

#[test]
fn match_without_criteria_is_refused() {
    assert_refused("<Match \"m\">\n</Match>", "Match", Some("\"m\""));
}

#[test]
fn invalid_cgroup_regex_is_refused() {
    assert_refused(
        "<Match \"m\">\n  Cgroup \"docker-(\"\n</Match>",
        "Cgroup",
        Some("docker-("),
    );
}

#[test]
fn every_documented_option_is_accepted() {
    // The options of collectd.conf.example, each with a non-default value where it has one.
    let absent = unique_comm("cw_none_");
    let block = format!(
        r#"
  Process "{absent}"
  ProcessMatch "matched" "^/nonexistent/program "
  <Match "postgres-{{user}}">
    Comm "^postgres"
    Cmdline "postgres"
    Exe "/postgres$"
    User "root"
    Cgroup "^/"
  </Match>
  <Match "by-uid">
    User "0"
    Comm "^cw_uid_"
  </Match>
  GroupBy "{{user}}:{{comm}}:{{pid}} {{{{literal}}}}"
  MaxInstances 100000
  CollectFileHandles false
  CollectIO false
"#
    );
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    // A rule with a fixed name is reported while nothing matches it, with ps_count 0.
    collectd.wait_rows(&absent, "ps_count", "processes=0", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 0.0)
    });
    // A GroupBy instance of a workload: user, comm, pid, and the literal braces.
    let mut sleeper = collectd.spawn(&unique_comm("cw_opt_"), &["sleep", "30"]);
    sleeper.expect_line("ready");
    let me = format!("root:{}:{} {{literal}}", sleeper.comm, sleeper.pid);
    collectd.wait_rows(&me, "ps_count", "the workload", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
    // The collections turned off are not reported.
    for off in ["file_handles", "io_octets", "disk_octets", "io_ops"] {
        assert!(
            collectd.rows(&me, off).is_empty(),
            "{off} is reported although its collection is off"
        );
    }
    assert_eq!(collectd.plugin_log_lines("error"), Vec::<String>::new());
}

#[test]
fn max_instances_bounds_the_instances() {
    let Some(collectd) = Collectd::start(Some(
        r#"GroupBy "{pid}"
MaxInstances 3"#,
    )) else {
        return;
    };
    let started = now();
    // Many processes, 3 instances at most, interval after interval.
    wait_for("4 rows of the load plugin", TIMEOUT, || {
        let rows = collectd.rows_of_plugin("load", "load");
        (rows.iter().filter(|row| row.epoch >= started).count() >= 4).then_some(())
    });
    // The plugin's own instances (`self`, `unattributed`, `forwarded`) are not processes: they
    // do not count.
    let instances: Vec<String> = collectd
        .instances()
        .into_iter()
        .filter(|name| !["self", "unattributed", "forwarded"].contains(&name.as_str()))
        .collect();
    assert!(
        !instances.is_empty() && instances.len() <= 3,
        "expected 1 to 3 process instances with MaxInstances 3, got {instances:?}"
    );
    // What is cut is said once, not every interval.
    let said: Vec<String> = collectd
        .log()
        .lines()
        .filter(|line| line.contains("capture: ") && line.contains("MaxInstances"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        said.len(),
        1,
        "expected one log line about MaxInstances: {said:#?}"
    );
    assert_eq!(collectd.plugin_log_lines("error"), Vec::<String>::new());
}
