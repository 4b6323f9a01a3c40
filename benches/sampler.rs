//! Cost of one sampler cycle over the live /proc, with every collection on, at the host's own
//! process count and with `CAPTURE_BENCH_PROCESSES` (default 1000) extra sleeping processes;
//! plus the /proc/<pid>/stat parser against procfs-core's, which justified writing our own.
//!
//! `cargo bench --bench sampler`; the per-process figure is printed after the run.

use capture::config::Config;
use capture::proc::pid_stat;
use capture::sampler::Sampler;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

fn spawn_sleepers(n: usize) -> Vec<Child> {
    (0..n)
        .filter_map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .ok()
        })
        .collect()
}

fn cycle(c: &mut Criterion) {
    let extra: usize = std::env::var("CAPTURE_BENCH_PROCESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut sleepers = spawn_sleepers(extra);
    let mut sampler = Sampler::new(Config::default());
    let never = || false;
    let processes = sampler.cycle(&never).map_or(0, |s| s.telemetry.processes);

    c.bench_function(&format!("sampler_cycle_{processes}_processes"), |b| {
        b.iter(|| black_box(sampler.cycle(&never)))
    });

    // One more timed pass for the per-process figure the docs quote.
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(sampler.cycle(&never));
    }
    let per_cycle = started.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "sampler cycle: {processes} processes, {:.2} ms per cycle, {:.2} µs per process",
        per_cycle * 1e3,
        per_cycle * 1e6 / processes.max(1) as f64
    );

    for child in &mut sleepers {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn parse_stat(c: &mut Criterion) {
    let content = std::fs::read("/proc/self/stat").unwrap_or_default();
    let mut group = c.benchmark_group("parse_pid_stat");
    group.bench_function("capture", |b| {
        b.iter(|| black_box(pid_stat::parse(black_box(&content))))
    });
    group.bench_function("procfs_core", |b| {
        b.iter(|| {
            black_box(
                <procfs_core::process::Stat as procfs_core::FromRead>::from_read(black_box(
                    &content[..],
                )),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = cycle, parse_stat
}
criterion_main!(benches);
