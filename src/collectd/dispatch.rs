//! Snapshot -> collectd value lists, following the contract in DESIGN.md: one value list per
//! type (and type instance) per instance, plugin `capture`, plugin_instance = instance name.

use crate::snapshot::{InstanceReport, Snapshot};
use collectd_plugin::{Value, ValueListBuilder};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Dispatch errors are logged at most once a minute: a writer queue that is full refuses every
/// value, and one line says as much as thousands.
static LAST_ERROR_LOG: Mutex<Option<Instant>> = Mutex::new(None);

pub fn snapshot(plugin: &str, snapshot: &Snapshot) {
    let time = chrono::DateTime::<chrono::Utc>::from(snapshot.time);
    let mut failures = 0usize;
    let mut submit =
        |instance: &str, type_: &str, type_instance: Option<&str>, values: &[Value]| {
            let mut list = ValueListBuilder::new(plugin, type_)
                .plugin_instance(instance)
                .values(values)
                .time(time);
            if let Some(ti) = type_instance {
                list = list.type_instance(ti);
            }
            if list.submit().is_err() {
                failures += 1;
            }
        };
    for inst in &snapshot.instances {
        instance(inst, &mut submit);
    }
    let t = &snapshot.telemetry;
    submit(
        "self",
        "duration",
        Some("sampler"),
        &[Value::Gauge(t.sampler_seconds)],
    );
    submit(
        "self",
        "count",
        Some("processes"),
        &[Value::Gauge(t.processes as f64)],
    );
    submit(
        "self",
        "count",
        Some("instances"),
        &[Value::Gauge(t.instances as f64)],
    );
    submit(
        "self",
        "count",
        Some("instances_dropped"),
        &[Value::Gauge(t.instances_dropped as f64)],
    );
    if failures > 0 {
        let mut last = LAST_ERROR_LOG.lock();
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            *last = Some(Instant::now());
            log::error!("collectd refused {failures} value list(s) of this interval");
        }
    }
}

fn instance(inst: &InstanceReport, submit: &mut impl FnMut(&str, &str, Option<&str>, &[Value])) {
    let name = inst.name.as_str();
    let derive = |v: u64| Value::Derive(i64::try_from(v).unwrap_or(i64::MAX));
    submit(
        name,
        "ps_cputime",
        None,
        &[derive(inst.cpu_user_us), derive(inst.cpu_system_us)],
    );
    if let Some(p) = inst.cpu_percent {
        submit(name, "percent", Some("cpu"), &[Value::Gauge(p)]);
    }
    submit(name, "ps_rss", None, &[Value::Gauge(inst.rss_bytes as f64)]);
    submit(name, "ps_vm", None, &[Value::Gauge(inst.vm_bytes as f64)]);
    if let Some(p) = inst.memory_percent {
        submit(name, "percent", Some("memory"), &[Value::Gauge(p)]);
    }
    submit(
        name,
        "ps_count",
        None,
        &[
            Value::Gauge(inst.processes as f64),
            Value::Gauge(inst.threads as f64),
        ],
    );
    if let Some(fds) = inst.file_handles {
        submit(name, "file_handles", None, &[Value::Gauge(fds as f64)]);
    }
    if let Some(io) = inst.io {
        submit(
            name,
            "io_octets",
            None,
            &[derive(io.rchar), derive(io.wchar)],
        );
        submit(name, "io_ops", None, &[derive(io.syscr), derive(io.syscw)]);
        submit(
            name,
            "disk_octets",
            None,
            &[derive(io.read_bytes), derive(io.write_bytes)],
        );
    }
}
