//! Workload program for the integration tests in `tests/` (owned by the integration tests).
//!
//! A tiny std-only program whose resource use is known exactly, so the tests can check the
//! numbers collectd-capture reports for it. The tests copy the built binary under a unique short
//! name, so its kernel command name (comm) identifies the processes of one test.
//!
//! ```text
//! capture_workload burn SECS                  burn one core for SECS seconds, then exit
//! capture_workload fds N SECS                 open /dev/null N times, hold the files SECS seconds
//! capture_workload write MB PATH SECS [sync]  write MB×10^6 bytes to PATH with write(2) in 1 MiB
//!                                             chunks, fsync when `sync` is given, sleep SECS
//! capture_workload touch MIB SECS             allocate MIB MiB, write every page, hold SECS
//! capture_workload threads N SECS             run N threads (this one included), sleep SECS
//! capture_workload sleep SECS                 sleep SECS seconds
//! capture_workload parent SECS -- CMD ARGS... run CMD as a child, wait for it (print `reaped`),
//!                                             then sleep SECS: a parent that reaps a child
//! ```
//!
//! Protocol: after its setup (files opened, data written, memory touched, threads started; right
//! away for `burn` and `sleep`) the program prints `ready` on stdout. `burn` prints
//! `done` when it stops burning. With the environment variable `CW_WAIT_STDIN` set, the program
//! first prints `waiting` and reads one line from stdin before its setup, so a test can let the
//! plugin see the process before it does anything.

use std::fs::File;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: capture_workload burn SECS | fds N SECS | write MB PATH SECS [sync] \
                     | touch MIB SECS | threads N SECS | sleep SECS | parent SECS -- CMD ARGS...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("capture_workload: {message}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["burn", secs] => {
            let secs = seconds(secs)?;
            wait_for_go()?;
            say("ready");
            burn(secs);
            say("done");
        }
        ["fds", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs)?;
            wait_for_go()?;
            let files = (0..n)
                .map(|_| File::open("/dev/null"))
                .collect::<Result<Vec<File>, _>>()
                .map_err(|e| format!("opening /dev/null {n} times: {e}"))?;
            say("ready");
            std::thread::sleep(secs);
            drop(files);
        }
        ["write", mb, path, secs, rest @ ..] => {
            let bytes = number::<u64>(mb, "MB")? * 1_000_000;
            let secs = seconds(secs)?;
            let sync = match rest {
                [] => false,
                ["sync"] => true,
                _ => return Err(format!("unexpected arguments after SECS: {rest:?}")),
            };
            wait_for_go()?;
            write_file(path, bytes, sync)?;
            say("ready");
            std::thread::sleep(secs);
        }
        ["parent", secs, "--", command, child_args @ ..] => {
            let secs = seconds(secs)?;
            wait_for_go()?;
            // The child inherits stdout, so its own `ready` reaches the test too.
            let status = std::process::Command::new(command)
                .args(child_args)
                .status()
                .map_err(|e| format!("running {command}: {e}"))?;
            if !status.success() {
                return Err(format!("{command} failed: {status}"));
            }
            say("reaped");
            std::thread::sleep(secs);
        }
        ["touch", mib, secs] => {
            let len = number::<usize>(mib, "MIB")? << 20;
            let secs = seconds(secs)?;
            wait_for_go()?;
            let mut memory = vec![0u8; len];
            // vec![0; n] maps zero pages lazily: writing one byte per page makes each resident.
            for page in memory.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&mut memory);
            say("ready");
            std::thread::sleep(secs);
            std::hint::black_box(&memory);
        }
        ["threads", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs)?;
            if n == 0 {
                return Err("N must be at least 1 (the main thread)".into());
            }
            wait_for_go()?;
            let deadline = Instant::now() + secs;
            let others: Vec<_> = (1..n)
                .map(|_| {
                    std::thread::spawn(move || {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()))
                    })
                })
                .collect();
            say("ready");
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            for thread in others {
                thread.join().map_err(|_| "a sleeping thread panicked")?;
            }
        }
        ["sleep", secs] => {
            let secs = seconds(secs)?;
            wait_for_go()?;
            say("ready");
            std::thread::sleep(secs);
        }
        _ => return Err(format!("bad arguments {args:?}")),
    }
    Ok(())
}

/// Spins on the CPU, in user space, for `duration` of wall time.
fn burn(duration: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < duration {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
}

/// Writes `bytes` bytes to a new file at `path` with one write(2) per MiB (std's `write_all`
/// on a `File` calls write(2) directly, without buffering).
fn write_file(path: &str, bytes: u64, sync: bool) -> Result<(), String> {
    let chunk = vec![0x5au8; 1 << 20];
    let mut file = File::create(path).map_err(|e| format!("creating {path}: {e}"))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])
            .map_err(|e| format!("writing {path}: {e}"))?;
        left -= n as u64;
    }
    if sync {
        file.sync_all()
            .map_err(|e| format!("fsync of {path}: {e}"))?;
    }
    Ok(())
}

/// With `CW_WAIT_STDIN` set: prints `waiting`, then blocks until stdin gives a line (or ends).
fn wait_for_go() -> Result<(), String> {
    if std::env::var_os("CW_WAIT_STDIN").is_some() {
        say("waiting");
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
    }
    Ok(())
}

/// Prints one line on stdout and flushes it (stdout is a pipe in the tests).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A test that stopped reading is no reason to stop the workload.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|e| format!("SECS {text:?} is not a number: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("SECS {text:?}: {e}"))
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| format!("{what} {text:?} is not a valid number: {e}"))
}
