//! Snapshot -> collectd value lists, following the contract in DESIGN.md: one value list per
//! type (and type instance) per instance, plugin `capture`, plugin_instance = instance name.

use super::value_list::{Value, ValueListWriter};
use crate::notifications::GroupWatch;
use crate::snapshot::{InstanceReport, Snapshot, ThreadHealth, Traffic};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Dispatch errors are logged at most once a minute: a writer queue that is full refuses every
/// value, and one line says as much as thousands.
static LAST_ERROR_LOG: Mutex<Option<Instant>> = Mutex::new(None);

pub fn snapshot(plugin: &str, snapshot: &Snapshot) {
    let mut out = ValueListWriter::new(plugin, snapshot.time);
    for inst in &snapshot.instances {
        instance(inst, &mut out);
    }
    let t = &snapshot.telemetry;
    out.set_meta(None);
    out.set_instance("self");
    out.dispatch("duration", "sampler", &[Value::Gauge(t.sampler_seconds)]);
    out.dispatch("count", "processes", &[Value::Gauge(t.processes as f64)]);
    out.dispatch("count", "instances", &[Value::Gauge(t.instances as f64)]);
    out.dispatch(
        "count",
        "instances_dropped",
        &[Value::Gauge(t.instances_dropped as f64)],
    );
    for (type_, type_instance, value) in thread_health(&t.threads) {
        out.dispatch(type_, &type_instance, &[value]);
    }
    if let Some(share) = t.cpu_accounted_percent {
        out.dispatch("percent", "cpu_accounted", &[Value::Gauge(share)]);
    }
    if let Some(exits) = &t.exits {
        for (name, value) in [
            ("exit_records", exits.records),
            ("exit_records_lost", exits.lost),
            ("exited_settled", exits.settled),
            ("exited_placed", exits.placed),
            ("exited_undecidable", exits.undecidable),
            ("exited_undecidable_cpu_us", exits.undecidable_cpu_us),
        ] {
            out.dispatch("derive", name, &[Value::Derive(value)]);
        }
    }
    if let Some(net) = &snapshot.network {
        out.set_instance("unattributed");
        traffic(&mut out, &net.unattributed);
        out.set_instance("forwarded");
        traffic(&mut out, &net.forwarded);
        out.set_instance("self");
        out.dispatch("count", "flows", &[Value::Gauge(net.flows as f64)]);
        out.dispatch(
            "count",
            "namespaces",
            &[Value::Gauge(net.namespaces as f64)],
        );
        out.dispatch("derive", "flow_lookups", &[Value::Derive(net.lookups)]);
        out.dispatch(
            "derive",
            "flow_unresolved",
            &[Value::Derive(net.unresolved)],
        );
        out.dispatch(
            "bytes",
            "pending",
            &[Value::Gauge(net.pending_bytes as f64)],
        );
        traffic_of(&mut out, "shed", &net.shed);
        for (name, value) in [
            ("flows_shed", net.flows_shed),
            ("flow_lookups_from_memory", net.lookups_from_memory),
            ("flow_lookups_over_budget", net.lookups_over_budget),
            ("flow_lookups_unowned", net.lookups_unowned),
            ("flow_second_chances", net.second_chances),
            ("flow_second_chances_found", net.second_chances_found),
            ("owner_records", net.records_received),
            ("owner_records_lost", net.records_lost),
            ("flow_lookups_by_record", net.lookups_by_record),
            (
                "flow_lookups_by_closed_record",
                net.lookups_by_closed_record,
            ),
            ("processes_from_records", net.processes_placed_from_records),
            ("processes_undecidable", net.processes_undecidable),
        ] {
            out.dispatch("derive", name, &[Value::Derive(value)]);
        }
        for (name, value) in [
            ("index_passes", net.index_passes),
            ("index_listings", net.index_listings),
            ("index_fd_reads", net.index_fd_reads),
        ] {
            out.dispatch("derive", name, &[Value::Derive(value)]);
        }
        out.dispatch(
            "count",
            "index_sockets",
            &[Value::Gauge(net.index_sockets as f64)],
        );
        out.dispatch(
            "count",
            "owner_records",
            &[Value::Gauge(net.records_kept as f64)],
        );
        for iface in &net.interfaces {
            let name = crate::names::sanitize(&iface.name);
            for (counter, value) in [
                ("packets_captured", iface.captured),
                ("pcap_received", iface.received),
                ("pcap_dropped", iface.dropped),
                ("pcap_if_dropped", iface.if_dropped),
            ] {
                out.dispatch(
                    "derive",
                    &format!("{counter}-{name}"),
                    &[Value::Derive(value)],
                );
            }
        }
    }
    if out.failures > 0 {
        let mut last = LAST_ERROR_LOG.lock();
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            *last = Some(Instant::now());
            log::error!(
                "collectd refused {} value list(s) of this interval",
                out.failures
            );
        }
    }
}

/// Raises the notifications of watched groups that lost their last process or got one back
/// in this snapshot. A refusal is logged, at most once a minute with the value lists'.
pub fn notifications(plugin: &str, snapshot: &Snapshot, watch: &mut GroupWatch) {
    for n in watch.update(&snapshot.instances) {
        if !super::notification::dispatch(plugin, snapshot.time, &n) {
            let mut last = LAST_ERROR_LOG.lock();
            if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                *last = Some(Instant::now());
                log::error!("collectd refused the notification {:?}", n.message);
            }
        }
    }
}

/// The values of the threads' health, as (type, type instance, value): `gauge-alive-<thread>`
/// (1 alive, 0 ended) and `derive-panics-<thread>` (panics caught), thread names sanitized as
/// instance names are.
fn thread_health(
    threads: &[ThreadHealth],
) -> impl Iterator<Item = (&'static str, String, Value)> + '_ {
    threads.iter().flat_map(|thread| {
        let name = crate::names::sanitize(&thread.name);
        let alive = if thread.alive { 1.0 } else { 0.0 };
        [
            ("gauge", format!("alive-{name}"), Value::Gauge(alive)),
            (
                "derive",
                format!("panics-{name}"),
                Value::Derive(thread.panics),
            ),
        ]
    })
}

fn traffic(out: &mut ValueListWriter, t: &Traffic) {
    traffic_of(out, "", t);
}

/// `if_octets-<type_instance>` and `if_packets-<type_instance>` of `t`.
fn traffic_of(out: &mut ValueListWriter, type_instance: &str, t: &Traffic) {
    out.dispatch(
        "if_octets",
        type_instance,
        &[Value::Derive(t.rx_bytes), Value::Derive(t.tx_bytes)],
    );
    out.dispatch(
        "if_packets",
        type_instance,
        &[Value::Derive(t.rx_packets), Value::Derive(t.tx_packets)],
    );
}

fn instance(inst: &InstanceReport, out: &mut ValueListWriter) {
    out.set_instance(&inst.name);
    out.set_meta(inst.meta.as_deref());
    out.dispatch(
        "ps_cputime",
        "",
        &[
            Value::Derive(inst.cpu_user_us),
            Value::Derive(inst.cpu_system_us),
        ],
    );
    if let Some(p) = inst.cpu_percent {
        out.dispatch("percent", "cpu", &[Value::Gauge(p)]);
    }
    out.dispatch(
        "ps_pagefaults",
        "",
        &[
            Value::Derive(inst.minor_faults),
            Value::Derive(inst.major_faults),
        ],
    );
    out.dispatch("ps_rss", "", &[Value::Gauge(inst.rss_bytes as f64)]);
    out.dispatch("ps_vm", "", &[Value::Gauge(inst.vm_bytes as f64)]);
    if let Some(p) = inst.memory_percent {
        out.dispatch("percent", "memory", &[Value::Gauge(p)]);
    }
    out.dispatch(
        "ps_count",
        "",
        &[
            Value::Gauge(inst.processes as f64),
            Value::Gauge(inst.threads as f64),
        ],
    );
    if let Some(fds) = inst.file_handles {
        out.dispatch("file_handles", "", &[Value::Gauge(fds as f64)]);
    }
    if let Some(limit) = inst.file_handles_limit {
        out.dispatch("file_handles", "limit", &[Value::Gauge(limit as f64)]);
    }
    if let Some(p) = inst.file_handles_percent {
        out.dispatch("percent", "file_handles", &[Value::Gauge(p)]);
    }
    if let Some(maps) = inst.memory_maps {
        out.dispatch("file_handles", "mapped", &[Value::Gauge(maps as f64)]);
    }
    if let Some(m) = inst.memory {
        out.dispatch("ps_code", "", &[Value::Gauge(m.code_bytes as f64)]);
        out.dispatch("ps_data", "", &[Value::Gauge(m.data_bytes as f64)]);
        out.dispatch("ps_stacksize", "", &[Value::Gauge(m.stack_bytes as f64)]);
    }
    if let Some(switches) = inst.context_switches {
        for (type_instance, n) in [
            ("voluntary", switches.voluntary),
            ("involuntary", switches.involuntary),
        ] {
            out.dispatch("contextswitch", type_instance, &[Value::Derive(n)]);
        }
    }
    if let Some(d) = inst.delays {
        for (type_instance, rate) in [
            ("delay-cpu", d.cpu),
            ("delay-blkio", d.blkio),
            ("delay-swapin", d.swapin),
            ("delay-freepages", d.reclaim),
        ] {
            out.dispatch("delay_rate", type_instance, &[Value::Gauge(rate)]);
        }
    }
    if let Some(t) = &inst.network {
        traffic(out, t);
    }
    if let Some(io) = inst.io {
        out.dispatch(
            "io_octets",
            "",
            &[Value::Derive(io.rchar), Value::Derive(io.wchar)],
        );
        out.dispatch(
            "io_ops",
            "",
            &[Value::Derive(io.syscr), Value::Derive(io.syscw)],
        );
        out.dispatch(
            "disk_octets",
            "",
            &[Value::Derive(io.read_bytes), Value::Derive(io.write_bytes)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_reports_whether_it_is_alive_and_its_panics() {
        let threads = [
            ThreadHealth {
                name: "sampler".into(),
                alive: true,
                panics: 0,
            },
            ThreadHealth {
                name: "capture_br/0".into(),
                alive: false,
                panics: 3,
            },
        ];
        let values: Vec<_> = thread_health(&threads).collect();
        assert_eq!(
            values,
            [
                ("gauge", "alive-sampler".to_string(), Value::Gauge(1.0)),
                ("derive", "panics-sampler".to_string(), Value::Derive(0)),
                ("gauge", "alive-capture_br_0".to_string(), Value::Gauge(0.0)),
                (
                    "derive",
                    "panics-capture_br_0".to_string(),
                    Value::Derive(3)
                ),
            ]
        );
    }
}
