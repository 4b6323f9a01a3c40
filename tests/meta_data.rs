//! Integration tests: the meta data of capture's value lists, as collectd's write_log plugin
//! writes it in JSON (collectd's own JSON formatter, the one write_http and write_kafka use):
//! `{"values":[...], ..., "plugin":"capture","plugin_instance":"sshd", ...,
//! "meta":{"pid":812,"uid":0,"user":"root","comm":"sshd","exe":"/usr/sbin/sshd",
//! "cmdline":"sshd: /usr/sbin/sshd -D"}}`. write_log logs through collectd's log, so the JSON
//! lands in the harness's collectd.log.

mod common;

use common::*;
use serde_json::{Map, Value};

const WRITE_LOG_JSON: &str = "<Plugin write_log>\n  Format JSON\n</Plugin>";

fn start(capture_block: &str) -> Option<Collectd> {
    // Debian's write_log.so needs libyajl2, which collectd-core only suggests: the harness
    // checks its libraries and names the package when one is missing.
    Collectd::start_extended(
        Some(capture_block),
        &Extra {
            plugins: &["write_log"],
            config: WRITE_LOG_JSON,
            ..Default::default()
        },
    )
}

/// collectd reporting only the group `Process "<comm>"` (a fresh comm from `prefix`), with
/// more capture `options`; the comm is returned beside it.
fn start_watching(prefix: &str, options: &str) -> Option<(Collectd, String)> {
    let comm = unique_comm(prefix);
    let block = format!("GroupBy \"\"\nProcess \"{comm}\"\n{options}");
    Some((start(&block)?, comm))
}

/// Every value list of capture instance `instance` that write_log logged, as JSON objects.
fn value_lists(collectd: &Collectd, instance: &str) -> Vec<Map<String, Value>> {
    let needle = format!("\"plugin_instance\":{}", Value::from(instance));
    collectd
        .log()
        .lines()
        .filter(|line| line.contains(&needle) && line.contains("\"plugin\":\"capture\""))
        .filter_map(|line| {
            let json = &line[line.find('[')?..];
            serde_json::from_str::<Vec<Map<String, Value>>>(json).ok()
        })
        .flatten()
        .filter(|vl| vl.get("plugin_instance") == Some(&Value::from(instance)))
        .collect()
}

/// Waits for a value list of `instance` of type `type_` whose meta data satisfies `done`, and
/// returns that meta data.
fn wait_meta(
    collectd: &Collectd,
    instance: &str,
    type_: &str,
    what: &str,
    done: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    wait_for(
        &format!("{what} in the meta data of {instance}/{type_}"),
        TIMEOUT,
        || {
            value_lists(collectd, instance)
                .into_iter()
                .rev()
                .filter(|vl| vl.get("type") == Some(&Value::from(type_)))
                .find_map(|vl| match vl.get("meta") {
                    Some(Value::Object(meta)) if done(meta) => Some(meta.clone()),
                    _ => None,
                })
        },
    )
}

/// What the plugin makes of a command line: control characters replaced, cut to 240 bytes.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > 240 {
            break;
        }
        out.push(c);
    }
    out
}

#[test]
fn a_single_process_instance_carries_its_identity() {
    let Some((collectd, comm)) = start_watching("cw_md1_", "MetaData true") else {
        return;
    };
    // A parent whose command line is long and has a tab and a newline in it: it runs
    // /bin/true (another comm, not in the group), reaps it and stays, alone in its group.
    let long = format!("a\tb\n{}", "x".repeat(400));
    let binary = collectd.workload_copy(&comm);
    let binary_path = binary.to_str().expect("a UTF-8 path");
    let mut parent = collectd.spawn(&comm, &["parent", "60", "--", "/bin/true", &long]);
    parent.expect_line("reaped");

    let meta = wait_meta(&collectd, &comm, "ps_count", "a pid", |m| {
        m.contains_key("pid")
    });
    eprintln!("meta data: {meta:?}");
    assert_eq!(meta.get("pid"), Some(&Value::from(parent.pid)));
    assert_eq!(
        meta.get("uid"),
        Some(&Value::from(0)),
        "the tests run as root"
    );
    assert_eq!(meta.get("user"), Some(&Value::from("root")));
    assert_eq!(meta.get("comm"), Some(&Value::from(comm.as_str())));
    assert_eq!(meta.get("exe"), Some(&Value::from(binary_path)));
    let cmdline = format!("{binary_path} parent 60 -- /bin/true {long}");
    assert_eq!(
        meta.get("cmdline"),
        Some(&Value::from(bounded(&cmdline))),
        "arguments joined by spaces, control characters replaced, at most 240 bytes"
    );
    // Every value list of the instance carries it, not only ps_count.
    let cpu = wait_meta(&collectd, &comm, "ps_cputime", "a pid", |m| {
        m.contains_key("pid")
    });
    assert_eq!(cpu, meta);
    // The plugin's own instances carry none. They are dispatched after the process instances
    // of the same interval, so the log may not have them yet.
    let own = wait_for("capture-self value lists in the log", TIMEOUT, || {
        Some(value_lists(&collectd, "self")).filter(|lists| !lists.is_empty())
    });
    assert!(
        own.iter().all(|vl| !vl.contains_key("meta")),
        "{:?}",
        own[0]
    );
}

#[test]
fn several_processes_carry_only_what_they_share() {
    let Some((collectd, comm)) = start_watching("cw_md2_", "MetaData true") else {
        return;
    };
    // Same program, same user, different arguments and pids.
    let mut first = collectd.spawn(&comm, &["sleep", "60"]);
    let mut second = collectd.spawn(&comm, &["sleep", "61"]);
    first.expect_line("ready");
    second.expect_line("ready");
    collectd.wait_rows(&comm, "ps_count", "processes=2", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 2.0)
    });
    let settled = now() + SETTLE;
    let meta = wait_for("a value list of both members", TIMEOUT, || {
        value_lists(&collectd, &comm)
            .into_iter()
            .rev()
            .find_map(|vl| {
                let time = vl.get("time")?.as_f64()?;
                let two = vl.get("type")? == "ps_count" && vl.get("values")?.get(0)? == 2.0;
                (time >= settled && two).then(|| vl.get("meta").cloned())
            })
    });
    let binary = collectd.workload_copy(&comm);
    let expected = serde_json::json!({
        "uid": 0,
        "user": "root",
        "comm": comm,
        "exe": binary.to_str().expect("a UTF-8 path"),
    });
    assert_eq!(
        meta,
        Some(expected),
        "no pid and no command line: they are not shared"
    );
}

#[test]
fn no_meta_data_by_default() {
    let Some((collectd, comm)) = start_watching("cw_md0_", "") else {
        return;
    };
    let mut sleeper = collectd.spawn(&comm, &["sleep", "60"]);
    sleeper.expect_line("ready");
    collectd.wait_rows(&comm, "ps_count", "processes=1", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
    let settled = now() + SETTLE;
    collectd.wait_row_after(&comm, "ps_count", settled);
    let lists = value_lists(&collectd, &comm);
    assert!(!lists.is_empty(), "write_log logged the instance");
    assert!(
        lists.iter().all(|vl| !vl.contains_key("meta")),
        "{:?}",
        lists.last()
    );
}
