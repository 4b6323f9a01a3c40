//! Integration-test harness (owned by the integration tests): builds the plugin, runs a real
//! collectd with it in a private temporary directory, reads back what collectd's csv writer
//! stored, and runs the `capture_workload` example under unique command names.
//!
//! Each test does:
//!
//! ```ignore
//! let Some(collectd) = Collectd::start(Some(r#"GroupBy "{comm}""#)) else { return };
//! let mut cpu = collectd.spawn(&unique_comm("cw_cpu_"), &["burn", "6"]);
//! cpu.expect_line("ready");
//! let rows = collectd.wait_rows(&cpu.comm, "ps_cputime", "a row", |rows| !rows.is_empty());
//! ```
//!
//! `Collectd::start` returns `None` (after printing `SKIP: <reason>` on stderr) when the tests
//! cannot run here: not root, or no `/usr/sbin/collectd`. With the environment variable `CI` set,
//! a missing collectd is a failure instead. Tests whose numbers need a whole core use
//! `Collectd::start_alone`: no other test of the same binary runs beside them.
//!
//! What collectd writes: the csv plugin stores every value list under
//! `<DataDir>/test/capture-<instance>/<type>[-<type_instance>]-YYYY-MM-DD`, a header line
//! `epoch,<ds1>[,<ds2>...]` and then one `epoch,value,...` line per dispatch (`StoreRates false`:
//! counters are written raw).
//!
//! Timing: collectd runs with `Interval 1`. A row of epoch `e` reports a sample the plugin's
//! sampler took at most about one interval before `e` (the read callback dispatches the latest
//! snapshot). So a row whose epoch is at least [`SETTLE`] seconds after a workload finished its
//! setup certainly describes the workload after its setup.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod executables;
pub mod netns;
pub mod prometheus;
pub mod stock_plugins;

pub use executables::{install_executable, spawn_retrying};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// collectd's `Interval`, in seconds.
pub const INTERVAL: f64 = 1.0;

/// Seconds after an event from which a row surely reports a sample taken after the event: one
/// interval for the sampler to run, one for the read callback to dispatch it.
pub const SETTLE: f64 = 2.0 * INTERVAL;

/// Default time to wait for something collectd should write within a few intervals.
pub const TIMEOUT: Duration = Duration::from_secs(15);

const COLLECTD: &str = "/usr/sbin/collectd";
const STOCK_PLUGINS: &str = "/usr/lib/collectd";
const TYPES_DB: &str = "/usr/share/collectd/types.db";

/// Stock plugins every test's collectd loads: the log, the csv writer and `load`, whose values
/// show that collectd keeps reading even when the capture plugin refused to start.
const STOCK: [&str; 3] = ["logfile", "csv", "load"];

// ------------------------------------------------------------------------------------------------
// Preconditions and the build

/// What the nested cargo builds, once per test binary.
struct Artifacts {
    /// `libcapture.so`, built without the dev-dependencies (see [`build`]).
    plugin: PathBuf,
    /// The `capture_workload` example.
    workload: PathBuf,
}

/// `Err(reason)` when the tests cannot run on this machine and should be skipped.
fn preconditions() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "not root: the capture plugin needs root to read every process's \
                    /proc/PID/io and fd directory"
                .into(),
        );
    }
    if !Path::new(COLLECTD).exists() {
        let reason = format!("{COLLECTD} is missing (install collectd-core)");
        if std::env::var_os("CI").is_some() {
            panic!("{reason}; CI is set, so this is a failure, not a skip");
        }
        return Err(reason);
    }
    Ok(())
}

/// The plugin built with the test-only cargo feature `fault-injection` (its `faults::inject`
/// points panic, and its lookups fail, as `CAPTURE_INJECT_FAULTS` says), in its own target directory
/// `target/it-faults`, once per test binary: the plain build of `target/it` never has it.
fn faulty_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it-faults");
        cargo(
            &[
                "build",
                "--release",
                "--lib",
                "--features",
                "fault-injection",
            ],
            &dir,
        );
        let plugin = dir.join("release/libcapture.so");
        assert!(
            plugin.is_file(),
            "the nested cargo build succeeded but did not produce {}",
            plugin.display()
        );
        plugin
    })
}

/// Builds the plugin and the workload once per test binary, or panics with cargo's output.
fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(build)
}

/// Runs the nested cargo builds.
///
/// The plugin is built alone (`--lib`) in `target/it`: building the example in the same cargo
/// invocation would enable the dev-dependencies, whose `collectd-plugin/stub` feature defines a
/// no-op `plugin_dispatch_values` inside the library, so the .so would dispatch nothing. The
/// example is therefore built in its own target directory, `target/it-workload`. Separate target
/// directories from the outer `cargo test` also keep the nested cargo off the outer build lock.
fn build() -> Artifacts {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plugin_dir = root.join("target/it");
    let workload_dir = root.join("target/it-workload");
    cargo(&["build", "--release", "--lib"], &plugin_dir);
    cargo(
        &["build", "--release", "--example", "capture_workload"],
        &workload_dir,
    );
    let artifacts = Artifacts {
        plugin: plugin_dir.join("release/libcapture.so"),
        workload: workload_dir.join("release/examples/capture_workload"),
    };
    for path in [&artifacts.plugin, &artifacts.workload] {
        assert!(
            path.is_file(),
            "the nested cargo build succeeded but did not produce {}",
            path.display()
        );
    }
    artifacts
}

fn cargo(args: &[&str], target_dir: &Path) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO"))
        .args(args)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running the nested cargo build");
    assert!(
        output.status.success(),
        "nested `cargo {} --target-dir {}` failed ({}):\n{}",
        args.join(" "),
        target_dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "built `cargo {}` in {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
}

/// Tests whose numbers depend on having a whole core run alone: they start collectd with
/// [`Collectd::start_alone`], which holds this lock for writing, while [`Collectd::start`] holds
/// it for reading. On the 2-core box, a parallel test's collectd writing hundreds of csv files
/// per second (plus its workload) otherwise takes a third of the burner's core.
static CPU_LOCK: RwLock<()> = RwLock::new(());

/// The hold on [`CPU_LOCK`] of a running collectd. Poisoning is ignored: a failed test must not
/// fail the next one.
enum CpuGuard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl CpuGuard {
    fn take(alone: bool) -> CpuGuard {
        if alone {
            CpuGuard::Alone(CPU_LOCK.write().unwrap_or_else(PoisonError::into_inner))
        } else {
            CpuGuard::Shared(CPU_LOCK.read().unwrap_or_else(PoisonError::into_inner))
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Names and small system facts

/// A command name that no other test (nor anything else on the box) uses: `prefix` followed by
/// four hex digits. The kernel keeps at most 15 bytes of a command name, so `prefix` must leave
/// room for them.
pub fn unique_comm(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .subsec_nanos();
    // Counter in the high byte (unique within this test binary), clock and pid in the low one
    // (distinct from a run of the same binary that left processes behind).
    let low = (nanos ^ (std::process::id() << 3)) as u8;
    let name = format!("{prefix}{:02x}{low:02x}", count as u8);
    assert!(
        name.len() <= 15,
        "command name {name:?} is longer than the kernel's 15 bytes"
    );
    name
}

/// The instance name the plugin must report for a command name: `/` and control characters
/// replaced by `_`, at most 63 bytes.
pub fn sanitized(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    while out.len() > 63 {
        out.pop();
    }
    out
}

/// Seconds since the epoch, the clock collectd stamps its values with.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs_f64()
}

/// A port free on `ip` for `udp` or TCP now: bound to port 0 and let go, for a test that needs
/// to know a workload's port before it starts (a capture filter on it, a port bound again).
pub fn free_port_on(ip: &str, udp: bool) -> u16 {
    let ip: std::net::IpAddr = ip.parse().expect("an IP address");
    let found = if udp {
        std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind((ip, 0)).and_then(|s| s.local_addr())
    };
    found
        .unwrap_or_else(|e| panic!("finding a free port on {ip}: {e}"))
        .port()
}

/// Online CPUs as the plugin's percent-cpu sees them: the `cpuN` lines of /proc/stat.
pub fn cpu_count() -> usize {
    let stat = fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    stat.lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .count()
}

/// MemTotal of /proc/meminfo, in bytes.
pub fn mem_total() -> f64 {
    let meminfo = fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .expect("no MemTotal line in /proc/meminfo");
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable /proc/meminfo line {line:?}"));
    kib * 1024.0
}

/// The file system type (`ext4`, `tmpfs`, `overlay` ...) of the mount holding `path`, from
/// /proc/self/mountinfo (the longest mount point that is a prefix of the canonical path).
pub fn fs_type(path: &Path) -> String {
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", path.display()));
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(mount_point), Some(dash)) =
            (fields.get(4), fields.iter().position(|f| *f == "-"))
        else {
            continue;
        };
        let mount_point = unescape_mountinfo(mount_point);
        let longer = match &best {
            Some((len, _)) => mount_point.len() >= *len,
            None => true,
        };
        if longer && path.starts_with(&mount_point) {
            if let Some(fs) = fields.get(dash + 1) {
                best = Some((mount_point.len(), fs.to_string()));
            }
        }
    }
    best.map(|(_, fs)| fs)
        .unwrap_or_else(|| panic!("no mount holds {}", path.display()))
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------------------------------------
// Rows written by the csv plugin

/// One line of a csv file: the epoch and the value of each data source.
#[derive(Clone, Debug)]
pub struct Row {
    pub epoch: f64,
    pub values: BTreeMap<String, f64>,
}

impl Row {
    /// The value of data source `ds`; panics naming the data sources the row has.
    pub fn get(&self, ds: &str) -> f64 {
        *self.values.get(ds).unwrap_or_else(|| {
            panic!(
                "row at {} has no data source {ds:?}, only {:?}",
                self.epoch,
                self.values.keys()
            )
        })
    }

    /// The value of a single-data-source type (GAUGE types: `value`).
    pub fn value(&self) -> f64 {
        self.get("value")
    }
}

/// The rows of `dir/<name>-YYYY-MM-DD` files (several when the date changed), in epoch order.
/// A last line still being written (no newline yet) is left out.
fn read_rows(dir: &Path, name: &str) -> Vec<Row> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(is_date)
        })
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let mut lines = text.split_inclusive('\n');
        let Some(header) = lines.next().filter(|h| h.ends_with('\n')) else {
            continue;
        };
        // collectd's csv plugin creates a file (`fopen "w"`, header) in one write thread while
        // another, which found it already there, may append a row first: on a loaded machine
        // with the write queue behind, two rows of one identifier are written at once. The
        // header then comes a moment later, over the start of that row. Until it has, the file
        // is not ready; afterwards what is left of the row (the first line after the header)
        // reads as an epoch before 2001, or has too few fields: it is left out.
        let columns: Vec<&str> = header.trim_end().split(',').collect();
        if columns.first() != Some(&"epoch") && header.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        assert_eq!(
            columns.first(),
            Some(&"epoch"),
            "{}: unexpected header {header:?}",
            file.display()
        );
        for (index, line) in lines.filter(|l| l.ends_with('\n')).enumerate() {
            let fields: Vec<&str> = line.trim_end().split(',').collect();
            let overwritten = |fields: &[&str]| {
                fields.len() != columns.len()
                    || fields[0].parse::<f64>().map_or(true, |epoch| epoch < 1e9)
            };
            if index == 0 && overwritten(&fields) {
                continue;
            }
            assert_eq!(
                fields.len(),
                columns.len(),
                "{}: line {line:?} does not match header {header:?}",
                file.display()
            );
            let number = |field: &str| -> f64 {
                field.parse().unwrap_or_else(|e| {
                    panic!("{}: bad number {field:?} in {line:?}: {e}", file.display())
                })
            };
            rows.push(Row {
                epoch: number(fields[0]),
                values: columns[1..]
                    .iter()
                    .zip(&fields[1..])
                    .map(|(column, field)| (column.to_string(), number(field)))
                    .collect(),
            });
        }
    }
    rows.sort_by(|a, b| a.epoch.total_cmp(&b.epoch));
    rows
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

// ------------------------------------------------------------------------------------------------
// collectd

/// A running collectd with the capture plugin, in its own temporary directory. Dropping it stops
/// collectd (SIGTERM, SIGKILL after 10 s) and removes the directory, unless the test is failing:
/// then the log and the list of written files go to stderr and the directory is kept.
pub struct Collectd {
    dir: Option<tempfile::TempDir>,
    child: Child,
    workload_binary: &'static Path,
    /// Released after collectd stopped (fields drop after `Drop::drop`).
    _cpu: CpuGuard,
}

impl Collectd {
    /// Starts collectd with `LoadPlugin capture` and, when given, `<Plugin capture>` with
    /// `capture_block` inside, and waits until collectd has entered its read loop (panicking
    /// with collectd's log if it exits instead). `None` when the tests are skipped here.
    /// Tests started this way run in parallel, but not beside one started with
    /// [`start_alone`](Self::start_alone).
    pub fn start(capture_block: Option<&str>) -> Option<Collectd> {
        Self::start_with(capture_block, false, Privileges::Root, &Extra::default())
    }

    /// Like [`start`](Self::start), with more of collectd: stock plugins copied and loaded,
    /// configuration appended, another host name, or no capture plugin at all (see [`Extra`]).
    pub fn start_extended(capture_block: Option<&str>, extra: &Extra<'_>) -> Option<Collectd> {
        Self::start_with(capture_block, false, Privileges::Root, extra)
    }

    /// Like [`start`](Self::start), with collectd started without the capabilities `drop`
    /// (e.g. `["net_raw"]`), through `setpriv --bounding-set`: root keeps every other one.
    pub fn start_without(capture_block: Option<&str>, drop: &[&str]) -> Option<Collectd> {
        Self::start_with(
            capture_block,
            false,
            Privileges::Without(drop),
            &Extra::default(),
        )
    }

    /// Like [`start`](Self::start), for a test whose numbers need a whole core: no other test
    /// of this test binary runs while the returned collectd lives.
    pub fn start_alone(capture_block: Option<&str>) -> Option<Collectd> {
        Self::start_with(capture_block, true, Privileges::Root, &Extra::default())
    }

    /// Like [`start`](Self::start), with collectd running as `nobody:nogroup` (no supplementary
    /// groups) holding exactly the capabilities `caps` (e.g. `["net_raw", "sys_ptrace"]`),
    /// ambient and in the bounding set, as the shipped systemd drop-in runs it. collectd's
    /// directory is handed to `nobody`; workloads still run as root.
    pub fn start_as_nobody(capture_block: Option<&str>, caps: &[&str]) -> Option<Collectd> {
        Self::start_with(
            capture_block,
            false,
            Privileges::Nobody(caps),
            &Extra::default(),
        )
    }

    /// Like [`start_alone`](Self::start_alone), with the plugin built with the feature
    /// `fault-injection` and collectd started with `CAPTURE_INJECT_FAULTS=inject` (e.g.
    /// `sampler-cycle@8`: a panic at the 8th call of that point; `lookups-fail-ms@6000`: every
    /// owner lookup fails for 6 s from the first; see src/faults.rs).
    pub fn start_injecting(capture_block: Option<&str>, inject: &str) -> Option<Collectd> {
        Self::start_full(
            capture_block,
            true,
            Privileges::Root,
            &Extra::default(),
            Some(inject),
        )
    }

    fn start_with(
        capture_block: Option<&str>,
        alone: bool,
        privileges: Privileges<'_>,
        extra: &Extra<'_>,
    ) -> Option<Collectd> {
        Self::start_full(capture_block, alone, privileges, extra, None)
    }

    /// [`start_with`](Self::start_with), and with `inject` the fault-injecting plugin and
    /// `CAPTURE_INJECT_FAULTS` (see [`start_injecting`](Self::start_injecting)).
    fn start_full(
        capture_block: Option<&str>,
        alone: bool,
        privileges: Privileges<'_>,
        extra: &Extra<'_>,
        inject: Option<&str>,
    ) -> Option<Collectd> {
        if let Err(reason) = preconditions() {
            // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
            return None;
        }
        for name in extra.plugins {
            let plugin = Path::new(STOCK_PLUGINS).join(format!("{name}.so"));
            if let Err(reason) = stock_plugins::missing_libraries(&plugin) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{reason}; CI is set, so this is a failure (scripts/test.sh installs it)"
                );
                let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
                return None;
            }
        }
        let artifacts = artifacts();
        let plugin = match inject {
            Some(_) => faulty_plugin(),
            None => artifacts.plugin.as_path(),
        };
        let cpu = CpuGuard::take(alone);

        // A directory on the same file system as the build, usually a real disk (the I/O test
        // needs block-layer accounting, which tmpfs lacks), and short enough for any path.
        let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it/tmp");
        fs::create_dir_all(&parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        let dir = tempfile::Builder::new()
            .prefix("cd-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| {
                panic!(
                    "creating a temporary directory in {}: {e}",
                    parent.display()
                )
            });
        let root = dir.path();

        // collectd refuses symlinked plugins: copy them.
        let plugins = root.join("plugins");
        fs::create_dir(&plugins).expect("creating the PluginDir");
        fs::copy(plugin, plugins.join("capture.so"))
            .unwrap_or_else(|e| panic!("copying {} to the PluginDir: {e}", plugin.display()));
        for name in STOCK.iter().chain(extra.plugins) {
            let from = Path::new(STOCK_PLUGINS).join(format!("{name}.so"));
            fs::copy(&from, plugins.join(format!("{name}.so")))
                .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
        fs::create_dir(root.join("bin")).expect("creating the workload directory");

        let config = config_text(root, capture_block, extra);
        let config_path = root.join("collectd.conf");
        fs::write(&config_path, &config).expect("writing collectd.conf");
        let output = fs::File::create(root.join("collectd.out")).expect("creating collectd.out");
        let mut command = match privileges {
            Privileges::Root => Command::new(COLLECTD),
            Privileges::Nobody(caps) => as_nobody(root, caps),
            Privileges::Without(drop) => {
                let caps: Vec<String> = drop.iter().map(|c| format!("-{c}")).collect();
                let mut setpriv = Command::new("setpriv");
                setpriv
                    .arg(format!("--bounding-set={}", caps.join(",")))
                    .arg(format!("--inh-caps={}", caps.join(",")))
                    .arg("--")
                    .arg(COLLECTD);
                setpriv
            }
        };
        if let Some(inject) = inject {
            command.env("CAPTURE_INJECT_FAULTS", inject);
        }
        let child = command
            .arg("-f")
            .arg("-C")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicating collectd.out"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {COLLECTD}: {e}"));
        let mut collectd = Collectd {
            dir: Some(dir),
            child,
            workload_binary: &artifacts.workload,
            _cpu: cpu,
        };
        wait_for("collectd to enter its read loop", TIMEOUT, || {
            if let Some(status) = collectd.exit_status() {
                panic!(
                    "collectd exited ({status}) while starting with this config:\n{config}\n\
                     --- log ---\n{}\n--- stdout/stderr ---\n{}",
                    collectd.log(),
                    collectd.output()
                );
            }
            collectd
                .log()
                .contains("Initialization complete, entering read-loop")
                .then_some(())
        });
        Some(collectd)
    }

    /// collectd's process id: the harness's child is the daemon itself (`collectd -f`, setpriv
    /// execs it), e.g. for its `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Builds `examples/<example>.rs` where the workload is built (`target/it-workload`, see
    /// [`build`]) and places it in this collectd's `bin/` as `name` (see
    /// [`install_executable`]), for the examples other than the workload.
    pub fn example_copy(&self, example: &str, name: &str) -> PathBuf {
        let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it-workload");
        cargo(&["build", "--release", "--example", example], &target_dir);
        let binary = self.dir().join("bin").join(name);
        install_executable(&target_dir.join("release/examples").join(example), &binary);
        binary
    }

    /// The temporary directory of this collectd.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory present until drop")
            .path()
    }

    /// `DataDir/test`: the csv writer's directory for host `test`.
    pub fn host_dir(&self) -> PathBuf {
        self.dir().join("csv/test")
    }

    /// The log written by the logfile plugin.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("collectd.log")).unwrap_or_default()
    }

    /// Whether the plugin loaded its exit program (it says so at start).
    pub fn has_exit_records(&self) -> bool {
        self.log().contains("exit records: eBPF")
    }

    /// This collectd when its exit program loaded; otherwise `None` after saying why (on CI,
    /// where it must load, the test fails instead).
    pub fn with_exit_records(self) -> Option<Collectd> {
        if !self.has_exit_records() {
            let reason = format!("the exit program did not load:\n{}", self.log());
            assert!(std::env::var_os("CI").is_none(), "{reason}");
            eprintln!("SKIP: {reason}");
            return None;
        }
        Some(self)
    }

    /// What collectd printed on stdout and stderr.
    pub fn output(&self) -> String {
        fs::read_to_string(self.dir().join("collectd.out")).unwrap_or_default()
    }

    /// The lines of the log that the capture plugin wrote at `severity` (`error`, `warning` ...):
    /// the plugin's messages start with `capture: `.
    pub fn plugin_log_lines(&self, severity: &str) -> Vec<String> {
        let tag = format!("[{severity}] capture: ");
        self.log()
            .lines()
            .filter(|line| line.contains(&tag))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM and waits (up to 10 s) for collectd to exit: how long it took, and how.
    pub fn terminate(&mut self) -> (Duration, Option<ExitStatus>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits in pid_t");
        let started = Instant::now();
        // SAFETY: plain kill(2) of our own child, which is not reaped yet, so the pid is ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.exit_status() {
                return (started.elapsed(), Some(status));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (started.elapsed(), None)
    }

    /// `Some(status)` once collectd has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling the collectd process")
    }

    /// The capture instances written so far: the `capture-<instance>` directories.
    pub fn instances(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.host_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("capture-").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// Rows of `name` (`ps_cputime`, `percent-cpu` ...) of capture instance `instance`.
    pub fn rows(&self, instance: &str, name: &str) -> Vec<Row> {
        read_rows(&self.host_dir().join(format!("capture-{instance}")), name)
    }

    /// The last row of every value of capture instance `instance`, a line each (`name: ds=v
    /// ...`): what a failing test prints of `self` or `unattributed` to say where bytes went.
    pub fn last_values(&self, instance: &str) -> String {
        let dir = self.host_dir().join(format!("capture-{instance}"));
        let Ok(entries) = fs::read_dir(&dir) else {
            return format!("(no {})", dir.display());
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let file = entry.ok()?.file_name().into_string().ok()?;
                // `<name>-YYYY-MM-DD`: the date is the last 11 characters.
                Some(file.get(..file.len().checked_sub(11)?)?.to_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        let mut out = String::new();
        for name in names {
            if let Some(row) = self.rows(instance, &name).last() {
                let values: Vec<String> = row
                    .values
                    .iter()
                    .map(|(ds, v)| format!("{ds}={v}"))
                    .collect();
                out.push_str(&format!("  {name} @{}: {}\n", row.epoch, values.join(" ")));
            }
        }
        out
    }

    /// Rows of `name` of a plugin without instance, e.g. `rows_of_plugin("load", "load")`.
    pub fn rows_of_plugin(&self, plugin: &str, name: &str) -> Vec<Row> {
        read_rows(&self.host_dir().join(plugin), name)
    }

    /// Polls the rows of `name` of `instance` until `done` accepts them; panics after
    /// [`TIMEOUT`] with the rows seen last and the description `what`.
    pub fn wait_rows(
        &self,
        instance: &str,
        name: &str,
        what: &str,
        done: impl Fn(&[Row]) -> bool,
    ) -> Vec<Row> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let rows = self.rows(instance, name);
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {what} in capture-{instance}/{name}; \
                 rows so far: {}",
                format_rows(&rows)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a row of `name` of `instance` with an epoch of at least `epoch` and returns
    /// all rows.
    pub fn wait_row_after(&self, instance: &str, name: &str, epoch: f64) -> Vec<Row> {
        self.wait_rows(
            instance,
            name,
            &format!("a row at or after {epoch:.3}"),
            |rows| rows.last().is_some_and(|row| row.epoch >= epoch),
        )
    }

    /// The value of data source `ds` in the last row of `name` of `instance`, once a row at or
    /// after `epoch` exists (see [`wait_row_after`](Self::wait_row_after)).
    pub fn last_after(&self, instance: &str, name: &str, ds: &str, epoch: f64) -> f64 {
        self.wait_row_after(instance, name, epoch)
            .last()
            .expect("a row")
            .get(ds)
    }

    /// The row of `name` of `instance` written for the dispatch at `epoch`, if written yet: the
    /// plugin gives every value list of a cycle the same time, so rows of one cycle of
    /// different instances share their epoch (within half an interval, to be safe).
    pub fn row_at(&self, instance: &str, name: &str, epoch: f64) -> Option<Row> {
        self.rows(instance, name)
            .into_iter()
            .find(|row| (row.epoch - epoch).abs() < INTERVAL / 2.0)
    }

    /// Data source `ds` of `name` of `instance` in the cycle at `epoch` (see
    /// [`row_at`](Self::row_at)); 0 when there is no such row but the instance's `ps_cputime`
    /// was written two intervals later (a counter never dispatched: nothing counted yet);
    /// `None` while neither is known.
    pub fn counter_at(&self, instance: &str, name: &str, ds: &str, epoch: f64) -> Option<f64> {
        if let Some(row) = self.row_at(instance, name, epoch) {
            return Some(row.get(ds));
        }
        let reported_later = self
            .rows(instance, "ps_cputime")
            .iter()
            .any(|row| row.epoch >= epoch + 2.0 * INTERVAL);
        reported_later.then_some(0.0)
    }

    /// [`counter_at`](Self::counter_at), waited for up to [`TIMEOUT`] (a cycle's rows are
    /// written one value list at a time).
    pub fn wait_counter_at(&self, instance: &str, name: &str, ds: &str, epoch: f64) -> f64 {
        wait_for(
            &format!("capture-{instance}/{name} {ds} in the cycle at {epoch:.3}"),
            TIMEOUT,
            || self.counter_at(instance, name, ds, epoch),
        )
    }

    /// The epoch of the first cycle at or after `after` in which the capture holds nothing for
    /// a lookup (`capture-self/bytes-pending` is 0) and `done(epoch)` holds, polled until
    /// `within`; e.g. a counter complete in that cycle (see [`row_at`](Self::row_at)).
    pub fn settled_cycle(
        &self,
        what: &str,
        after: f64,
        within: Duration,
        done: impl Fn(f64) -> bool,
    ) -> f64 {
        wait_for(
            &format!("a cycle after {after:.3} with nothing pending and {what}"),
            within,
            || {
                self.rows("self", "bytes-pending")
                    .iter()
                    .filter(|row| row.epoch >= after && row.value() == 0.0)
                    .map(|row| row.epoch)
                    .find(|&epoch| done(epoch))
            },
        )
    }

    /// Sends 50 UDP datagrams over 127.0.0.1 between two fresh workloads and checks that the
    /// receiver was credited exactly 50 packets: the capture is running and attributing.
    pub fn assert_loopback_udp_attributed(&self) {
        let mut receiver = self.spawn(&unique_comm("cw_lrx_"), &["udp-recv", "127.0.0.1", "8"]);
        let port = receiver.expect_line_starting("port ");
        let mut sender = self.spawn(
            &unique_comm("cw_ltx_"),
            &["udp-send", &format!("127.0.0.1:{port}"), "50", "100", "30"],
        );
        sender.expect_line("sent");
        let settled = now() + SETTLE + INTERVAL;
        let received = self.last_after(&receiver.comm, "if_packets", "rx", settled);
        assert_eq!(
            received, 50.0,
            "loopback datagrams credited to the receiver"
        );
    }

    /// Copies the workload binary into this collectd's directory as `comm` (the kernel takes a
    /// process's command name from the executable's file name) and starts it with `args`.
    pub fn spawn(&self, comm: &str, args: &[&str]) -> Workload {
        self.spawn_workload(comm, args, false)
    }

    /// Like [`spawn`](Self::spawn), but the workload prints `waiting` and does nothing until
    /// [`Workload::go`].
    pub fn spawn_gated(&self, comm: &str, args: &[&str]) -> Workload {
        self.spawn_workload(comm, args, true)
    }

    /// The workload binary placed in this collectd's directory as `comm` (a hard link, see
    /// [`install_executable`]), for a workload to start as its child.
    pub fn workload_copy(&self, comm: &str) -> PathBuf {
        let binary = self.dir().join("bin").join(comm);
        install_executable(self.workload_binary, &binary);
        binary
    }

    fn spawn_workload(&self, comm: &str, args: &[&str], gated: bool) -> Workload {
        let binary = self.workload_copy(comm);
        start_workload(Command::new(&binary), &binary, comm, args, gated)
    }
}

/// Starts `command` (the workload binary at `binary`, named `comm`) with `args`, its stdout
/// read line by line.
fn start_workload(
    mut command: Command,
    binary: &Path,
    comm: &str,
    args: &[&str],
    gated: bool,
) -> Workload {
    command
        .args(args)
        .stdin(if gated { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if gated {
        command.env("CW_WAIT_STDIN", "1");
    }
    let mut child = spawn_retrying(&mut command, binary);
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut workload = Workload {
        comm: comm.to_owned(),
        pid: child.id(),
        stdin: child.stdin.take(),
        child,
        lines,
    };
    if gated {
        workload.expect_line("waiting");
    }
    workload
}

/// What every test collectd's configuration starts with (after its comment line): the global
/// options (`BaseDir` `root`, the PID file there, `plugin_dir`, the stock types.db, `interval`,
/// `hostname`, no FQDN lookup), the log in `root/collectd.log` and the csv writer storing into
/// `root/csv` (`StoreRates false`). The harness loads `load` and the capture plugin after it,
/// tests/package.rs the installed plugin.
pub fn base_config(root: &Path, plugin_dir: &Path, hostname: &str, interval: f64) -> String {
    let root = root.display();
    let plugin_dir = plugin_dir.display();
    format!(
        r#"BaseDir "{root}"
PIDFile "{root}/collectd.pid"
PluginDir "{plugin_dir}"
TypesDB "{TYPES_DB}"
Interval {interval}
Hostname "{hostname}"
FQDNLookup false

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{root}/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>

LoadPlugin csv
<Plugin csv>
  DataDir "{root}/csv"
  StoreRates false
</Plugin>
"#
    )
}

/// The configuration of a harness collectd: [`base_config`] with its own PluginDir, then
/// `load`, the capture plugin (with `capture_block`) and what `extra` adds.
fn config_text(root: &Path, capture_block: Option<&str>, extra: &Extra<'_>) -> String {
    let hostname = extra.hostname.unwrap_or("test");
    let mut config = format!(
        "# Generated by tests/common/mod.rs\n{}\nLoadPlugin load\n",
        base_config(root, &root.join("plugins"), hostname, INTERVAL)
    );
    if !extra.without_capture {
        config.push_str("\nLoadPlugin capture\n");
        let block = with_owner_source(capture_block);
        if let Some(block) = block {
            writeln!(config, "<Plugin capture>\n{block}\n</Plugin>").expect("writing to a String");
        }
    }
    for name in extra.plugins {
        writeln!(config, "\nLoadPlugin {name}").expect("writing to a String");
    }
    if !extra.config.is_empty() {
        let text = extra.config.replace("{root}", &root.display().to_string());
        writeln!(config, "\n{text}").expect("writing to a String");
    }
    config
}

/// The owner source every harness collectd uses when the test run names one
/// (`CAPTURE_TEST_OWNER_SOURCE=proc`: scripts/test.sh runs the attribution tests again so, to
/// show /proc alone still does what it did): `capture_block` with `OwnerSource` added, unless
/// the test sets it itself.
fn with_owner_source(capture_block: Option<&str>) -> Option<String> {
    let Some(source) = forced_owner_source() else {
        return capture_block.map(str::to_owned);
    };
    match capture_block {
        Some(block) if block.contains("OwnerSource") => Some(block.to_owned()),
        Some(block) => Some(format!("{block}\nOwnerSource \"{source}\"")),
        None => Some(format!("OwnerSource \"{source}\"")),
    }
}

/// `CAPTURE_TEST_OWNER_SOURCE`, when set.
pub fn forced_owner_source() -> Option<String> {
    std::env::var("CAPTURE_TEST_OWNER_SOURCE")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Who collectd runs as, with which capabilities.
#[derive(Clone, Copy)]
enum Privileges<'a> {
    /// root, with every capability.
    Root,
    /// root without these capabilities (`setpriv --bounding-set`).
    Without(&'a [&'a str]),
    /// `nobody` with exactly these.
    Nobody(&'a [&'a str]),
}

/// `setpriv` running collectd as `nobody:nogroup` with exactly `caps` (ambient, inheritable
/// and bounding), after handing `root` (collectd's directory) to `nobody`.
fn as_nobody(root: &Path, caps: &[&str]) -> Command {
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(root, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|e| panic!("chown {} to nobody: {e}", root.display()));
    let plus: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    let mut setpriv = Command::new("setpriv");
    setpriv
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups");
    if !caps.is_empty() {
        setpriv
            .arg(format!("--inh-caps={}", plus.join(",")))
            .arg(format!("--ambient-caps={}", plus.join(",")));
    }
    let bounding: Vec<String> = std::iter::once("-all".to_string()).chain(plus).collect();
    setpriv
        .arg(format!("--bounding-set={}", bounding.join(",")))
        .arg("--")
        .arg(COLLECTD);
    setpriv
}

/// More of collectd for [`Collectd::start_extended`].
#[derive(Default)]
pub struct Extra<'a> {
    /// Stock plugins (from /usr/lib/collectd) to copy and `LoadPlugin`, e.g. `write_prometheus`.
    pub plugins: &'a [&'a str],
    /// Appended to the configuration (their `<Plugin>` blocks); `{root}` becomes collectd's
    /// temporary directory.
    pub config: &'a str,
    /// `Hostname` instead of "test".
    pub hostname: Option<&'a str>,
    /// No `LoadPlugin capture`: a collectd that only receives and writes (a central server).
    pub without_capture: bool,
}

impl Drop for Collectd {
    fn drop(&mut self) {
        stop(&mut self.child, "collectd", Duration::from_secs(10));
        if std::thread::panicking() {
            let dir = self.dir.take().expect("directory present until drop");
            let mut files = String::new();
            list_files(&dir.path().join("csv"), &mut files);
            eprintln!(
                "--- collectd log ({}) ---\n{}\n--- collectd stdout/stderr ---\n{}\n\
                 --- files written by csv ---\n{files}--- kept {} for inspection ---",
                dir.path().join("collectd.log").display(),
                fs::read_to_string(dir.path().join("collectd.log")).unwrap_or_default(),
                fs::read_to_string(dir.path().join("collectd.out")).unwrap_or_default(),
                dir.path().display(),
            );
            // Keep the directory: forgetting the TempDir skips its removal.
            std::mem::forget(dir);
        }
    }
}

fn list_files(dir: &Path, out: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            list_files(&path, out);
        } else {
            let lines = fs::read_to_string(&path)
                .map(|text| text.lines().count())
                .unwrap_or(0);
            let _ = writeln!(out, "{} ({lines} lines)", path.display());
        }
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`; always reaps it.
fn stop(child: &mut Child, what: &str, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: plain kill(2) of our own child, which is not reaped yet, so the pid is still ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{what} (pid {pid}) ignored SIGTERM for {grace:?}: killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Renders rows compactly for failure messages.
pub fn format_rows(rows: &[Row]) -> String {
    let mut out = String::from("[");
    for row in rows {
        let _ = write!(out, "\n  {:.3}", row.epoch);
        for (ds, value) in &row.values {
            let _ = write!(out, " {ds}={value}");
        }
    }
    out.push_str(if rows.is_empty() { "]" } else { "\n]" });
    out
}

// ------------------------------------------------------------------------------------------------
// Workloads

/// A running `capture_workload`. Dropping it kills and reaps the process.
pub struct Workload {
    /// Its command name (the file name it was started as).
    pub comm: String,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Workload {
    /// Waits (up to [`TIMEOUT`]) for the workload to print `want` on a line of its own.
    pub fn expect_line(&mut self, want: &str) {
        self.expect_line_with(want, "");
    }

    /// Waits for a line starting with `prefix` and returns the rest of it (e.g. the port of
    /// `port 41234`).
    pub fn expect_line_starting(&mut self, prefix: &str) -> String {
        self.expect_line_with("", prefix)
    }

    fn expect_line_with(&mut self, want: &str, prefix: &str) -> String {
        let want = if prefix.is_empty() { want } else { prefix };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if !prefix.is_empty() && line.starts_with(prefix) => {
                    return line[prefix.len()..].trim().to_string()
                }
                Ok(line) if prefix.is_empty() && line == want => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "workload {:?} did not print {want:?} within {TIMEOUT:?}",
                        self.comm
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "workload {:?} closed its stdout before printing {want:?} (exit: {:?})",
                    self.comm,
                    self.child.wait()
                ),
            }
        }
    }

    /// Lets a workload started with [`Collectd::spawn_gated`] go on with its setup.
    pub fn go(&mut self) {
        let mut stdin = self
            .stdin
            .take()
            .expect("go() on a workload that is not gated");
        stdin
            .write_all(b"go\n")
            .unwrap_or_else(|e| panic!("writing to workload {:?}: {e}", self.comm));
    }

    /// Waits until the process has exited but is not reaped (a zombie: its /proc entry still
    /// shows its final CPU times) and returns its user+system CPU time in µs.
    pub fn zombie_cputime_us(&self) -> f64 {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = wait_for(
            &format!("workload {:?} to exit", self.comm),
            TIMEOUT,
            || {
                let stat = fs::read_to_string(&path).ok()?;
                let fields = stat_fields(&stat);
                (fields.first() == Some(&"Z")).then_some(stat)
            },
        );
        let fields = stat_fields(&stat);
        // Fields after the comm, from the 3rd on: state=0 ... utime=11, stime=12 (clock ticks).
        let ticks = |i: usize| -> f64 {
            fields[i]
                .parse()
                .unwrap_or_else(|e| panic!("bad field {i} in {path}: {stat:?}: {e}"))
        };
        (ticks(11) + ticks(12)) * 1e6 / clock_ticks_per_second()
    }

    /// Reaps the process (it must have exited or be about to) and returns its status.
    pub fn wait(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for workload {:?}: {e}", self.comm))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of /proc/PID/stat after `(comm)`: the comm may contain `)` and spaces, so split
/// after the last `)`.
fn stat_fields(stat: &str) -> Vec<&str> {
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    after.split_whitespace().collect()
}

/// USER_HZ, the unit of the CPU times in /proc/PID/stat.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(hz > 0, "sysconf(_SC_CLK_TCK) failed");
    hz as f64
}

// ------------------------------------------------------------------------------------------------
// Control groups

/// The mount point of the cgroup v2 hierarchy, from /proc/self/mountinfo: `/sys/fs/cgroup` on a
/// pure v2 host, `/sys/fs/cgroup/unified` on a hybrid v1 + v2 one; `None` when there is none.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let mount_point = fields.get(4)?;
        (fields.get(dash + 1) == Some(&"cgroup2"))
            .then(|| PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

impl Collectd {
    /// Like [`spawn`](Self::spawn), but the child moves itself into the cgroup v2 directory
    /// `cgroup` (writes `0` to its `cgroup.procs`) between fork and exec: the plugin never sees
    /// the workload's command name outside the cgroup, so its grouping (made once per process
    /// and comm) is the one inside.
    pub fn spawn_in_cgroup(&self, comm: &str, args: &[&str], cgroup: &Path) -> Workload {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;
        let binary = self.workload_copy(comm);
        let procs = std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
            .expect("a cgroup path without NUL bytes");
        let mut command = Command::new(&binary);
        // SAFETY: between fork and exec only async-signal-safe calls are made (open, write,
        // close) on a path built before the fork; nothing allocates or takes a lock.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written == 1 {
                    Ok(())
                } else {
                    Err(error)
                }
            });
        }
        start_workload(command, &binary, comm, args, false)
    }
}
