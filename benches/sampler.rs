//! Cost of one sampler cycle over the live /proc, with every collection on, at the host's own
//! process count and with `CAPTURE_BENCH_PROCESSES` (default 1000) extra sleeping processes;
//! plus the /proc/<pid>/stat parser against procfs-core's, which justified writing our own.
//!
//! Two floors, programs that make the system calls a cycle cannot do without and nothing else
//! (no parsing, grouping, accounting): `floor_kept` lists /proc and, per process, `pread`s its
//! kept `stat` and `io` and `fstat`s its kept `fd` directory — the calls the sampler makes;
//! `floor_open` opens, reads and closes `stat` and `io` and `statx`es `fd` per process, the
//! least a reader that keeps nothing open must do.
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

    let floor_kept_time = floor_kept(c, processes);
    let floor_open_time = floor_open(c, processes);
    println!(
        "floors: kept files {:.2} ms, open/read/close {:.2} ms per cycle; sampler / kept floor \
         = {:.2}x, sampler / open floor = {:.2}x",
        floor_kept_time * 1e3,
        floor_open_time * 1e3,
        per_cycle / floor_kept_time,
        per_cycle / floor_open_time,
    );

    for child in &mut sleepers {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Seconds per pass of `pass`, timed after the criterion run of it.
fn timed(c: &mut Criterion, name: &str, mut pass: impl FnMut()) -> f64 {
    c.bench_function(name, |b| b.iter(&mut pass));
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        pass();
    }
    started.elapsed().as_secs_f64() / rounds as f64
}

fn floor_kept(c: &mut Criterion, processes: u64) -> f64 {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let kept: Vec<(std::fs::File, std::fs::File, std::fs::File)> = pids()
        .into_iter()
        .filter_map(|pid| {
            let dir = format!("/proc/{pid}");
            Some((
                std::fs::File::open(format!("{dir}/stat")).ok()?,
                std::fs::File::open(format!("{dir}/io")).ok()?,
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                    .open(format!("{dir}/fd"))
                    .ok()?,
            ))
        })
        .collect();
    let mut buf = vec![0u8; 4096];
    timed(c, &format!("floor_kept_{processes}_processes"), || {
        black_box(pids().len());
        for (stat, io, fd) in &kept {
            let _ = black_box(stat.read_at(&mut buf, 0));
            let _ = black_box(io.read_at(&mut buf, 0));
            let _ = black_box(fd.metadata());
        }
    })
}

fn floor_open(c: &mut Criterion, processes: u64) -> f64 {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    timed(c, &format!("floor_open_{processes}_processes"), || {
        for pid in pids() {
            for name in ["stat", "io"] {
                if let Ok(mut file) = std::fs::File::open(format!("/proc/{pid}/{name}")) {
                    let _ = black_box(file.read(&mut buf));
                }
            }
            let _ = black_box(std::fs::metadata(format!("/proc/{pid}/fd")));
        }
    })
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
