//! Integration tests (owned by the integration tests): how collectd-capture takes its
//! `<Plugin capture>` configuration inside a real collectd. Every documented option is accepted;
//! each kind of mistake is refused with one error line naming the option and the value, while
//! collectd and its other plugins go on.

mod common;

use common::*;

/// Malformed `<Plugin capture>` blocks, each with what its one error line must name (compared
/// ignoring case, as collectd compares option names): first the option, then the value or the
/// words that say what is wrong.
const HOSTILE: &[(&str, &[&str])] = &[
    // Unknown and misspelled options: the closest valid name is suggested.
    (r#"Foo "bar""#, &["Foo", "\"bar\"", "unknown option"]),
    ("MaxInstance 5", &["MaxInstance", "did you mean `MaxInstances`?"]),
    (r#"Proces "sshd""#, &["Proces", "did you mean `Process`?"]),
    (r#"GropBy "{comm}""#, &["GropBy", "did you mean `GroupBy`?"]),
    ("CollectFileHandle false", &["CollectFileHandle", "did you mean `CollectFileHandles`?"]),
    (
        "<Match \"m\">\n  Cmdlin \"x\"\n</Match>",
        &["Cmdlin", "inside <Match>", "did you mean `Cmdline`?"],
    ),
    (r#"Comm "^x""#, &["Comm", "\"^x\"", "criterion of a <Match"]),
    (
        r#"OwnerSource "kernel""#,
        &["OwnerSource", "\"kernel\"", "\"auto\", \"ebpf\" or \"proc\""],
    ),
    (
        "<Matc \"m\">\n  Comm \"x\"\n</Matc>",
        &["Matc", "\"m\"", "did you mean `Match`?"],
    ),
    // Wrong types and arity.
    (r#"MaxInstances "x""#, &["MaxInstances", "\"x\"", "integer"]),
    (r#"CollectIO "maybe""#, &["CollectIO", "\"maybe\"", "true or false"]),
    ("Notifications 1", &["Notifications", "1", "true or false"]),
    ("MetaData true false", &["MetaData", "true false", "true or false"]),
    (r#"Process "a" "b""#, &["Process", "\"a\" \"b\"", "exactly one"]),
    ("Process 5", &["Process", "5", "quoted string"]),
    (r#"ProcessMatch "a""#, &["ProcessMatch", "\"a\"", "two quoted strings"]),
    ("GroupBy true", &["GroupBy", "true", "quoted string"]),
    ("<Match \"m\">\n  User true\n</Match>", &["User", "true", "user name"]),
    ("<GroupBy \"x\">\n  Foo 1\n</GroupBy>", &["GroupBy", "\"x\"", "not a block"]),
    // Bad regexes and BPF filters.
    (r#"ProcessMatch "a" "(""#, &["ProcessMatch", "\"(\"", "regular expression"]),
    ("<Match \"m\">\n  Exe \"[\"\n</Match>", &["Exe", "\"[\"", "regular expression"]),
    (
        "<Match \"m\">\n  Cgroup \"docker-(\"\n</Match>",
        &["Cgroup", "docker-(", "regular expression"],
    ),
    (r#"BPFFilter "tcp prot 80""#, &["BPFFilter", "tcp prot 80", "does not compile"]),
    // Absurd numbers.
    ("MaxInstances 0", &["MaxInstances", "0", "from 1 to 1000000"]),
    ("MaxInstances -5", &["MaxInstances", "-5", "from 1 to 1000000"]),
    ("MaxInstances 2.5", &["MaxInstances", "2.5", "integer"]),
    ("MaxInstances 1e300", &["MaxInstances", "from 1 to 1000000"]),
    (r#"MaxInstances "NaN""#, &["MaxInstances", "nan", "integer"]),
    ("SnapLen 40", &["SnapLen", "40", "from 96 to 65535"]),
    ("SnapLen 99999999999", &["SnapLen", "99999999999", "from 96 to 65535"]),
    ("BufferSize -1", &["BufferSize", "-1", "from 65536"]),
    // Interfaces.
    (r#"Interface "nonexistent0""#, &["Interface", "nonexistent0", "no such network interface"]),
    (r#"Interface "a/b""#, &["Interface", "a/b", "interface name"]),
    ("Interface \"lo\"\nInterface \"lo\"", &["Interface", "\"lo\"", "given twice"]),
    // Templates: unknown placeholders, illegal or empty names.
    (r#"GroupBy "{nonsense}""#, &["GroupBy", "{nonsense}", "unknown placeholder"]),
    (r#"GroupBy "/""#, &["GroupBy", "\"/\"", "`/`"]),
    (r#"GroupBy "{comm""#, &["GroupBy", "{comm", "unclosed"]),
    (r#"GroupBy "  ""#, &["GroupBy", "not blank"]),
    (r#"ProcessMatch "" "x""#, &["ProcessMatch", "non-empty instance name"]),
    (
        "ProcessMatch \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" \"x\"",
        &["ProcessMatch", "at most 63 bytes"],
    ),
    // Reserved names.
    (r#"ProcessMatch "self" "x""#, &["ProcessMatch", "\"self\"", "reserved"]),
    ("<Match \"unattributed\">\n  Comm \"x\"\n</Match>", &["Match", "\"unattributed\"", "reserved"]),
    (r#"GroupBy "forwarded""#, &["GroupBy", "\"forwarded\"", "reserved"]),
    // Duplicate group names, empty blocks, a <Match> without criteria.
    (
        "ProcessMatch \"w\" \"a\"\nProcess \"w\"",
        &["Process", "\"w\"", "earlier `ProcessMatch` rule"],
    ),
    (
        "<Match \"db\">\n  Comm \"pg\"\n</Match>\nProcessMatch \"db\" \"mysql\"",
        &["ProcessMatch", "\"db\"", "earlier `Match` rule"],
    ),
    ("<Match \"m\">\n</Match>", &["Match", "\"m\"", "at least one criterion"]),
    ("<Match \"m\">\n  Comm \"a\"\n  comm \"b\"\n</Match>", &["comm", "\"b\"", "given twice"]),
    (
        "Process \"a\"\nProcess \"b\"\nMaxInstances 1",
        &["MaxInstances", "1", "more than MaxInstances allows"],
    ),
];

/// How many collectds run at once: each is light (the capture plugin refused, `load` and csv
/// only, a few MiB), and a batch takes about as long as one: two batches took 10 s on a quiet
/// 2-core machine, three of 16 up to 50 s on one loaded by parallel test runs.
const BATCH: usize = 24;

/// Every malformed configuration of [`HOSTILE`], each in its own real collectd (a batch at a
/// time): the capture plugin logs exactly one error line naming the option and what is wrong,
/// reports nothing, and collectd goes on writing its other plugins' values.
#[test]
fn every_hostile_configuration_is_refused_with_one_clear_error() {
    assert!(HOSTILE.len() >= 25);
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for batch in HOSTILE.chunks(BATCH) {
        let outcomes: Vec<Result<Option<String>, String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = batch
                .iter()
                .map(|(block, needles)| {
                    scope.spawn(move || check_refused(block, needles, |b| Collectd::start(Some(b))))
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| {
                    thread.join().unwrap_or_else(|panic| {
                        Err(panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into()))
                    })
                })
                .collect()
        });
        for ((block, _), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(Some(line)) => refused.push(line),
                Ok(None) => return, // skipped: not root, or no collectd
                Err(problem) => failures.push(format!("--- config:\n{block}\n--- {problem}")),
            }
        }
    }
    for line in &refused {
        eprintln!("refused: {line}");
    }
    eprintln!(
        "{} hostile configurations through collectd in {:.1} s",
        HOSTILE.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile configurations were not refused as they should be:\n{}",
        failures.len(),
        HOSTILE.len(),
        failures.join("\n")
    );
}

/// Starts collectd with `block`, and checks that the capture plugin refused it: exactly one
/// error line of the plugin, containing every one of `needles` (ignoring case); collectd still
/// running, with `load` still being written; no capture instance at all. `Ok(None)` when the
/// tests are skipped here, `Ok(Some(line))` with the error line, `Err` with what went wrong.
fn check_refused(
    block: &str,
    needles: &[&str],
    start: impl FnOnce(&str) -> Option<Collectd>,
) -> Result<Option<String>, String> {
    let Some(mut collectd) = start(block) else {
        return Ok(None);
    };
    let started = now();
    // Three intervals of `load` rows: collectd kept reading, and the plugin had the time to
    // write something if it (wrongly) started.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let load_rows = || {
        let rows = collectd.rows_of_plugin("load", "load");
        rows.iter().filter(|row| row.epoch >= started).count()
    };
    while load_rows() < 3 {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "collectd wrote {} load rows in {TIMEOUT:?}\n{}",
                load_rows(),
                collectd.log()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Some(status) = collectd.exit_status() {
        return Err(format!("collectd exited ({status})\n{}", collectd.log()));
    }
    let instances = collectd.instances();
    if !instances.is_empty() {
        return Err(format!("the plugin reported instances {instances:?}"));
    }
    let errors = collectd.plugin_log_lines("error");
    let [line] = errors.as_slice() else {
        return Err(format!(
            "expected exactly one `[error] capture: ` line, got {errors:#?}\n{}",
            collectd.log()
        ));
    };
    let lower = line.to_lowercase();
    let missing: Vec<&&str> = needles
        .iter()
        .filter(|needle| !lower.contains(&needle.to_lowercase()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("the error line lacks {missing:?}: {line}"));
    }
    Ok(Some(line.clone()))
}

/// `OwnerSource "ebpf"` where the programs cannot load (collectd as nobody without CAP_BPF and
/// CAP_PERFMON) refuses to start, naming why; `auto` there starts on /proc and says why once.
#[test]
fn an_explicit_ebpf_owner_source_that_cannot_load_refuses_to_start() {
    let as_nobody = |block: &str| Collectd::start_as_nobody(Some(block), &["net_raw"]);
    match check_refused(
        r#"OwnerSource "ebpf""#,
        &[
            "OwnerSource",
            "\"ebpf\"",
            "the eBPF programs did not load",
            "CAP_BPF and CAP_PERFMON are missing",
            "\"auto\" falls back to /proc",
        ],
        as_nobody,
    ) {
        Ok(Some(line)) => eprintln!("refused: {line}"),
        Ok(None) => return,
        Err(problem) => panic!("{problem}"),
    }
    let Some(collectd) = Collectd::start_as_nobody(Some(r#"OwnerSource "auto""#), &["net_raw"])
    else {
        return;
    };
    collectd.wait_rows("self", "duration-sampler", "a sampler row", |rows| {
        !rows.is_empty()
    });
    let fallbacks: Vec<String> = collectd
        .plugin_log_lines("warning")
        .into_iter()
        .filter(|l| l.contains("owner source: /proc and sock_diag; the eBPF programs did not load"))
        .collect();
    assert_eq!(fallbacks.len(), 1, "{}", collectd.log());
    assert!(
        collectd.plugin_log_lines("error").is_empty(),
        "{}",
        collectd.log()
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
  ExitRecords false
  CollectMemoryDetails true
  CollectContextSwitch true
  CollectMemoryMaps true
  CollectDelayAccounting true
  OwnerSource "proc"
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
    // The collections turned off are not reported, those turned on are.
    for off in ["file_handles", "io_octets", "disk_octets", "io_ops"] {
        assert!(
            collectd.rows(&me, off).is_empty(),
            "{off} is reported although its collection is off"
        );
    }
    for on in [
        "ps_data",
        "contextswitch-voluntary",
        "file_handles-mapped",
        "delay_rate-delay-cpu",
    ] {
        collectd.wait_rows(&me, on, "a row", |rows| !rows.is_empty());
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
