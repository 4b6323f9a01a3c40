//! The Debian package (docs/packaging.md): `cargo deb` builds it, its files and control fields
//! are what the README promises, and, installed for real, collectd loads the plugin from where
//! the package put it — as root, and as `nobody` with the capabilities of the shipped systemd
//! drop-in — until the package is removed again.
//!
//! The package is built once per test binary with `CARGO_TARGET_DIR=target/deb`: the other
//! tests build the plugin in `target/it`, and the outer `cargo test` holds `target/`'s own lock.
//!
//! Installing modifies the machine (`/usr/lib/collectd`, `/etc/collectd/collectd.conf.d`), so
//! [`installed_package_loads_in_collectd`] installs only as root and when `CI` is set (CI
//! machines are throwaway) or `CAPTURE_TEST_INSTALL=1` asks for it; otherwise it says `SKIP:`.
//! It never touches a `capture.so` the package did not install nor a `collectd-capture`
//! already installed: it skips instead.

mod common;

use common::prometheus::skip;
use common::{install_executable, spawn_retrying, unique_comm, wait_for, INTERVAL, TIMEOUT};
use std::collections::BTreeSet;
use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PACKAGE: &str = "collectd-capture";
const PLUGIN: &str = "/usr/lib/collectd/capture.so";
const SNIPPET: &str = "/etc/collectd/collectd.conf.d/capture.conf";
const DROP_IN: &str = "/usr/share/collectd-capture/systemd/collectd-unprivileged.conf";
const COLLECTD: &str = "/usr/sbin/collectd";
/// The environment variable that lets the install test modify a machine that is not CI.
const OPT_IN: &str = "CAPTURE_TEST_INSTALL";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn on_ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `program args`, returning its output; panics if it cannot be started.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// Like [`run`], and panics with its output unless it succeeded; returns its stdout.
fn run_ok(program: &str, args: &[&str]) -> String {
    checked(&format!("{program} {}", args.join(" ")), run(program, args))
}

/// The stdout of a command that must have succeeded; panics with its output otherwise.
fn checked(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "`{what}` failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ------------------------------------------------------------------------------------------------
// Building

/// The .deb and the dbgsym .ddeb built beside it.
struct Built {
    deb: PathBuf,
    ddeb: PathBuf,
}

/// `Err(reason)` when the package cannot be built here: no `cargo deb` or no `dpkg-deb`. With
/// `CI` set that panics: scripts/test.sh installs cargo-deb.
fn build_tools() -> Result<(), String> {
    let cargo_deb = Command::new(env!("CARGO"))
        .args(["deb", "--version"])
        .output();
    let reason = match cargo_deb {
        Ok(output) if output.status.success() => {
            if Path::new("/usr/bin/dpkg-deb").exists() {
                return Ok(());
            }
            "dpkg-deb is missing (not a Debian system)".to_string()
        }
        _ => "`cargo deb` is missing (cargo install cargo-deb)".to_string(),
    };
    assert!(!on_ci(), "{reason}; CI is set, so this is a failure");
    Err(reason)
}

/// Builds the package once per test binary (the first caller waits for cargo).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = root().join("target/deb");
        let out = target.join("debian");
        // A stale package of another version must not be picked up below.
        let _ = fs::remove_dir_all(&out);
        let started = Instant::now();
        let output = Command::new(env!("CARGO"))
            .arg("deb")
            .arg("--output")
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root())
            .output()
            .expect("running cargo deb");
        assert!(
            output.status.success(),
            "cargo deb failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "built the package in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let version = env!("CARGO_PKG_VERSION");
        let arch = run_ok("dpkg", &["--print-architecture"]).trim().to_string();
        let built = Built {
            deb: out.join(format!("{PACKAGE}_{version}_{arch}.deb")),
            ddeb: out.join(format!("{PACKAGE}-dbgsym_{version}_{arch}.ddeb")),
        };
        for file in [&built.deb, &built.ddeb] {
            assert!(
                file.is_file(),
                "cargo deb succeeded but {} is missing; {} holds {:?}",
                file.display(),
                out.display(),
                fs::read_dir(&out).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            );
        }
        built
    })
}

/// The packaged files (`./usr/lib/...`), directories left out, with their mode string.
fn package_files(deb: &Path) -> Vec<(String, String)> {
    let listing = run_ok("dpkg-deb", &["--contents", &deb.to_string_lossy()]);
    listing
        .lines()
        .filter(|line| !line.starts_with('d'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields.last().expect("a path on each line").to_string();
            (path, fields[0].to_string())
        })
        .collect()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, prefix, out);
        } else {
            out.push(
                path.strip_prefix(prefix)
                    .expect("under prefix")
                    .to_path_buf(),
            );
        }
    }
}

/// Whether an ELF file still has DWARF debug sections: their names live in the section header
/// string table, which `strip` rewrites without them.
fn has_debug_info(elf: &[u8]) -> bool {
    elf.windows(b".debug_info\0".len())
        .any(|w| w == b".debug_info\0")
}

/// The README's configuration that turns the plugin on: the lines of the ```apache block after
/// "Turning it on takes three lines". The tests run it as it is written there.
fn readme_configuration() -> String {
    let readme = fs::read_to_string(root().join("README.md")).expect("reading README.md");
    let after = readme
        .split_once("Turning it on takes three lines")
        .map(|(_, after)| after)
        .expect("README.md no longer has \"Turning it on takes three lines\"");
    let block = after
        .split_once("```apache\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("README.md: no ```apache block after \"Turning it on takes three lines\"");
    assert!(
        block.lines().filter(|l| !l.trim().is_empty()).count() == 3,
        "README.md's configuration is no longer three lines:\n{block}"
    );
    block.to_string()
}

/// The package names of a Depends/Recommends field, alternatives and versions dropped:
/// `a (>= 1), b | c` gives a, b and c.
fn field_packages(field: &str) -> BTreeSet<String> {
    field
        .split([',', '|'])
        .filter_map(|item| item.split_whitespace().next())
        .map(|name| name.split(':').next().unwrap_or(name).to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The packages `shared_object` needs, as Debian's `dpkg-shlibdeps` computes them from its
/// NEEDED entries and the installed libraries' shlibs/symbols files.
fn shared_library_packages(shared_object: &Path) -> Result<BTreeSet<String>, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    // dpkg-shlibdeps reads debian/control in its working directory: an empty one will do.
    fs::create_dir(scratch.path().join("debian")).map_err(|e| e.to_string())?;
    fs::write(scratch.path().join("debian/control"), "").map_err(|e| e.to_string())?;
    let output = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(shared_object)
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("dpkg-shlibdeps (dpkg-dev) cannot run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let depends = stdout
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .ok_or_else(|| {
            format!(
                "dpkg-shlibdeps -O {} printed no shlibs:Depends ({}): {}{}",
                shared_object.display(),
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(field_packages(depends))
}

/// Every library package that a stock plugin of the README's configuration needs is pulled in
/// by installing this package: collectd-core only *suggests* them (write_prometheus needs
/// libprotobuf-c1 and libmicrohttpd12), so without this the README's lines fail to load.
fn assert_recommends_what_the_readme_needs(depends: &str, recommends: &str) {
    let core_depends = run(
        "dpkg-query",
        &["--show", "--showformat=${Depends}", "collectd-core"],
    );
    if !core_depends.status.success() {
        let reason = "collectd-core is not installed: its plugins' libraries cannot be checked";
        assert!(!on_ci(), "{reason}; CI is set, so this is a failure");
        return skip(reason);
    }
    let pulled_in: BTreeSet<String> = field_packages(depends)
        .into_iter()
        .chain(field_packages(recommends))
        .chain(field_packages(&String::from_utf8_lossy(
            &core_depends.stdout,
        )))
        .collect();
    for line in readme_configuration().lines() {
        let Some(plugin) = line.trim().strip_prefix("LoadPlugin ") else {
            continue;
        };
        let plugin = plugin.trim();
        if plugin == "capture" {
            continue;
        }
        let path = PathBuf::from(format!("/usr/lib/collectd/{plugin}.so"));
        let needed = match shared_library_packages(&path) {
            Ok(needed) => needed,
            Err(reason) => {
                assert!(!on_ci(), "{reason}; CI is set, so this is a failure");
                skip(&reason);
                continue;
            }
        };
        let missing: Vec<&String> = needed.difference(&pulled_in).collect();
        assert!(
            missing.is_empty(),
            "the README's `LoadPlugin {plugin}` needs {missing:?}, which neither this package \
             (Depends {depends:?}, Recommends {recommends:?}) nor collectd-core pulls in"
        );
    }
}

#[test]
fn package_has_the_files_and_fields_the_readme_promises() {
    if let Err(reason) = build_tools() {
        return skip(&reason);
    }
    let built = built();
    let deb = built.deb.to_string_lossy().into_owned();
    let files = package_files(&built.deb);
    let paths: BTreeSet<&str> = files.iter().map(|(p, _)| p.as_str()).collect();

    // The plugin, where collectd's PluginDir is, readable and not executable (as Debian installs
    // its own plugins), and the files the README names.
    let mode = |path: &str| {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .unwrap_or_else(|| panic!("{path} is not in the package: {paths:#?}"))
    };
    assert_eq!(mode("./usr/lib/collectd/capture.so"), "-rw-r--r--");
    for path in [
        "./etc/collectd/collectd.conf.d/capture.conf",
        "./usr/share/doc/collectd-capture/examples/collectd.conf.example",
        "./usr/share/doc/collectd-capture/README.md",
        "./usr/share/doc/collectd-capture/copyright",
        "./usr/share/collectd-capture/systemd/collectd-unprivileged.conf",
    ] {
        assert_eq!(mode(path), "-rw-r--r--", "{path}");
    }
    // Every file of contrib/ (prometheus, grafana, collectd, systemd: whatever is there) is
    // packaged under /usr/share/collectd-capture/, its directories kept.
    let mut contrib = Vec::new();
    files_under(
        &root().join("contrib"),
        &root().join("contrib"),
        &mut contrib,
    );
    assert!(!contrib.is_empty(), "contrib/ is empty");
    for file in &contrib {
        let packaged = format!("./usr/share/collectd-capture/{}", file.display());
        assert!(
            paths.contains(packaged.as_str()),
            "contrib/{} is not packaged as {packaged}: {paths:#?}",
            file.display()
        );
    }
    // Nothing lands outside the package's places.
    let places = [
        "./usr/lib/collectd/capture.so",
        "./etc/collectd/collectd.conf.d/capture.conf",
        "./usr/share/doc/collectd-capture/",
        "./usr/share/collectd-capture/",
    ];
    for path in &paths {
        assert!(
            places.iter().any(|place| path.starts_with(place)),
            "{path} is outside the package's places {places:?}"
        );
    }

    // Control fields.
    let field = |name: &str| {
        run_ok("dpkg-deb", &["--field", &deb, name])
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        field("Architecture"),
        run_ok("dpkg", &["--print-architecture"]).trim()
    );
    let depends = field("Depends");
    for needed in ["collectd-core (>= 5.12)", "libpcap0.8", "libc6"] {
        assert!(
            depends.contains(needed),
            "Depends {depends:?} lacks {needed}"
        );
    }
    assert!(!field("Maintainer").is_empty());
    assert!(!field("Description").is_empty());
    assert_recommends_what_the_readme_needs(&depends, &field("Recommends"));

    // The snippet is a conffile (kept on upgrade, removed on purge) and turns nothing on.
    let control = tempfile::tempdir().expect("a temporary directory");
    run_ok(
        "dpkg-deb",
        &["--control", &deb, &control.path().to_string_lossy()],
    );
    let conffiles = fs::read_to_string(control.path().join("conffiles")).unwrap_or_default();
    assert_eq!(conffiles.trim(), SNIPPET, "conffiles");
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(
            !control.path().join(script).exists(),
            "the package has a {script}: it must not restart or configure collectd"
        );
    }
    let snippet = fs::read_to_string(root().join("contrib/collectd/capture.conf"))
        .expect("reading contrib/collectd/capture.conf");
    assert!(
        snippet.contains("#LoadPlugin capture")
            && !snippet
                .lines()
                .any(|l| l.trim_start().starts_with("LoadPlugin")),
        "the packaged snippet must leave the plugin off:\n{snippet}"
    );

    // The packaged plugin is stripped; its symbols are in the dbgsym package.
    let extracted = tempfile::tempdir().expect("a temporary directory");
    run_ok(
        "dpkg-deb",
        &["--extract", &deb, &extracted.path().to_string_lossy()],
    );
    let plugin = fs::read(extracted.path().join("usr/lib/collectd/capture.so"))
        .expect("reading the extracted plugin");
    assert_eq!(&plugin[..4], b"\x7fELF", "capture.so is not an ELF file");
    assert!(
        !has_debug_info(&plugin),
        "the packaged capture.so still has debug info ({} bytes)",
        plugin.len()
    );
    let ddeb = package_files(&built.ddeb);
    assert!(
        ddeb.iter()
            .any(|(p, _)| p.starts_with("./usr/lib/debug/.build-id/") && p.ends_with(".debug")),
        "the dbgsym package holds no .build-id/*.debug file: {ddeb:?}"
    );
    eprintln!(
        "package: {} bytes, {} files; capture.so {} bytes",
        fs::metadata(&built.deb).map(|m| m.len()).unwrap_or(0),
        files.len(),
        plugin.len()
    );
}

// ------------------------------------------------------------------------------------------------
// Installing

/// `Err(reason)` when the install test must not modify this machine.
fn may_install() -> Result<(), String> {
    if !is_root() {
        return Err("not root: installing a package needs root".into());
    }
    if !on_ci() && std::env::var_os(OPT_IN).is_none_or(|v| v != "1") {
        return Err(format!(
            "installing the package modifies this machine; it runs on CI (CI set) or with \
             {OPT_IN}=1"
        ));
    }
    if !Path::new(COLLECTD).exists() {
        let reason = format!("{COLLECTD} is missing (install collectd-core)");
        assert!(!on_ci(), "{reason}; CI is set, so this is a failure");
        return Err(reason);
    }
    let status = run("dpkg-query", &["--show", "--showformat=${Status}", PACKAGE]);
    let status = String::from_utf8_lossy(&status.stdout);
    if status.contains("installed") || status.contains("config-files") {
        return Err(format!(
            "{PACKAGE} is already on this machine ({status}): not touching it"
        ));
    }
    if Path::new(PLUGIN).exists() {
        return Err(format!(
            "{PLUGIN} exists and the package did not install it: not overwriting it"
        ));
    }
    Ok(())
}

/// `apt-get -y args`, waiting for the dpkg lock rather than failing when something else holds
/// it.
fn apt_command(args: &[&str]) -> Command {
    let mut command = Command::new("apt-get");
    command
        .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    command
}

/// Like [`apt_command`], and panics with apt's output unless it succeeded.
fn apt(args: &[&str]) {
    let output = apt_command(args).output().expect("running apt-get");
    checked(&format!("apt-get {}", args.join(" ")), output);
}

/// The installed package; dropping it purges the package (also when the test fails).
struct Installed {
    purged: bool,
}

impl Installed {
    fn install(deb: &Path) -> Installed {
        apt(&["install", &deb.to_string_lossy()]);
        Installed { purged: false }
    }

    fn purge(&mut self) {
        if !self.purged {
            self.purged = true;
            apt(&["purge", PACKAGE]);
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            self.purged = true;
            let _ = Command::new("apt-get")
                .args([
                    "-y",
                    "-q",
                    "-o",
                    "DPkg::Lock::Timeout=300",
                    "purge",
                    PACKAGE,
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// Who a collectd runs as.
enum RunAs<'a> {
    Root,
    /// `nobody`, with these capabilities (`net_raw` ...) ambient and in the bounding set only.
    Nobody(&'a [String]),
}

/// A collectd loading the installed plugin from `/usr/lib/collectd`, in a temporary directory
/// (owned by `nobody` for an unprivileged one). Dropping it stops collectd.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

const HOST: &str = "pkgtest";

impl Daemon {
    fn start(run_as: &RunAs<'_>) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("capture-pkg-")
            .tempdir()
            .expect("a temporary directory");
        let root = dir.path().display().to_string();
        let config = format!(
            "# Generated by tests/package.rs\n{}\nLoadPlugin capture\n",
            common::base_config(dir.path(), Path::new("/usr/lib/collectd"), HOST, INTERVAL)
        );
        fs::write(dir.path().join("collectd.conf"), config).expect("writing collectd.conf");
        let config_path = format!("{root}/collectd.conf");
        let mut command = match run_as {
            RunAs::Root => Command::new(COLLECTD),
            RunAs::Nobody(caps) => {
                let (uid, gid) = (65534, 65534);
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                    .expect("chown the directory to nobody");
                fs::set_permissions(
                    dir.path().join("collectd.conf"),
                    fs::Permissions::from_mode(0o644),
                )
                .expect("chmod collectd.conf");
                let plus: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
                let plus = plus.join(",");
                let mut setpriv = Command::new("setpriv");
                setpriv
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups");
                if !caps.is_empty() {
                    setpriv
                        .arg(format!("--inh-caps={plus}"))
                        .arg(format!("--ambient-caps={plus}"));
                }
                setpriv
                    .arg(format!(
                        "--bounding-set=-all{}{plus}",
                        if caps.is_empty() { "" } else { "," }
                    ))
                    .arg("--")
                    .arg(COLLECTD);
                setpriv
            }
        };
        let child = command
            .args(["-f", "-C", &config_path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {COLLECTD}: {e}"));
        let mut daemon = Daemon { child, dir };
        wait_for("collectd to enter its read loop", TIMEOUT, || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("collectd exited ({status}):\n{}", daemon.log());
            }
            daemon
                .log()
                .contains("Initialization complete, entering read-loop")
                .then_some(())
        });
        daemon
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("collectd.log")).unwrap_or_default()
    }

    /// The capture plugin's warnings and errors, numbers blanked (`/proc/1/io` and
    /// `/proc/17/io` are the same complaint).
    fn complaints(&self) -> BTreeSet<String> {
        self.log()
            .lines()
            .filter(|l| {
                (l.contains("[warning] capture: ") || l.contains("[error] capture: "))
                    && !l.contains("capture: no process")
            })
            .map(|l| {
                let message = &l[l.find("capture: ").expect("filtered on it")..];
                message
                    .chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect()
            })
            .collect()
    }

    /// The last row of `capture-<instance>/<name>-<date>` as numbers (epoch first), once one
    /// is written at or after `epoch`.
    fn wait_row(&self, instance: &str, name: &str, epoch: f64) -> Vec<f64> {
        let dir = self
            .dir
            .path()
            .join(format!("csv/{HOST}/capture-{instance}"));
        let what = format!("a row of {instance}/{name} at or after {epoch:.0}");
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(&what, TIMEOUT, || {
                last_row(&dir, name).filter(|r| r[0] >= epoch)
            })
        }));
        found.unwrap_or_else(|_| {
            panic!(
                "no {what}; instances: {:?}\n--- log ---\n{}",
                fs::read_dir(self.dir.path().join(format!("csv/{HOST}")))
                    .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
                self.log()
            )
        })
    }

    /// Whether `capture-<instance>/<name>-<date>` exists.
    fn has(&self, instance: &str, name: &str) -> bool {
        last_row(
            &self
                .dir
                .path()
                .join(format!("csv/{HOST}/capture-{instance}")),
            name,
        )
        .is_some()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) of our own child, not reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last complete line of the csv file `dir/<name>-YYYY-MM-DD`, as numbers.
fn last_row(dir: &Path, name: &str) -> Option<Vec<f64>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_prefix(name))
                .is_some_and(|rest| rest.len() == 11 && rest.starts_with('-'))
        })
        .collect();
    files.sort();
    let text = fs::read_to_string(files.last()?).ok()?;
    let line = text
        .split_inclusive('\n')
        .skip(1)
        .filter(|l| l.ends_with('\n'))
        .last()?;
    line.trim().split(',').map(|f| f.parse().ok()).collect()
}

fn now() -> f64 {
    common::now()
}

/// write_prometheus's default port, which the README promises.
const README_PORT: u16 = 9103;

/// Runs collectd on `config` (the README's lines, unchanged: syslog, the installed plugin and
/// write_prometheus on its default port) and waits until `collectd_capture_*` series are served
/// on 127.0.0.1:9103. Skips (fails on CI) when something else holds the port.
fn assert_readme_configuration_serves_metrics(config: &Path) {
    if let Err(e) = std::net::TcpListener::bind(("0.0.0.0", README_PORT)) {
        let reason = format!("port {README_PORT} is taken ({e}): the README's lines cannot serve");
        assert!(!on_ci(), "{reason}; CI is set, so this is a failure");
        return skip(&reason);
    }
    let dir = config.parent().expect("the configuration's directory");
    let out = fs::File::create(dir.join("collectd.out")).expect("creating collectd.out");
    let mut daemon = Command::new(COLLECTD)
        .arg("-f")
        .arg("-C")
        .arg(config)
        .arg("-P")
        .arg(dir.join("collectd.pid"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("duplicating a descriptor"))
        .stderr(out)
        .spawn()
        .expect("starting collectd");
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], README_PORT));
    // collectd's default Interval is 10 s: the first series come with its second read.
    let deadline = Instant::now() + Duration::from_secs(90);
    let failure = loop {
        if let Ok(Some(status)) = daemon.try_wait() {
            break Some(format!("collectd exited ({status})"));
        }
        let served = common::prometheus::http_get(address, "/metrics").is_ok_and(|(_, body)| {
            body.lines()
                .any(|line| line.starts_with("collectd_capture_"))
        });
        if served {
            break None;
        }
        if Instant::now() >= deadline {
            break Some(format!(
                "no collectd_capture_* series on :{README_PORT} in 90 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    if let Some(reason) = failure {
        let output = fs::read_to_string(dir.join("collectd.out")).unwrap_or_default();
        panic!("the README's configuration: {reason}:\n{output}");
    }
}

/// A root-owned process named `comm` (a copy of `sleep`) that lives until dropped.
struct Sleeper {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sleeper {
    fn start(comm: &str) -> Sleeper {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let binary = dir.path().join(comm);
        install_executable(Path::new("/bin/sleep"), &binary);
        let child = spawn_retrying(
            Command::new(&binary).arg("120").stdin(Stdio::null()),
            &binary,
        );
        Sleeper { child, _dir: dir }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `count` datagrams of 100 bytes over 127.0.0.1 between two sockets of this (root)
/// process, 20 ms apart; returns the sockets, to be kept open until the traffic is checked.
fn loopback_datagrams(count: usize) -> (UdpSocket, UdpSocket) {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
    sender
        .connect(receiver.local_addr().expect("local address"))
        .expect("connecting");
    for _ in 0..count {
        sender.send(&[0u8; 100]).expect("sending a datagram");
        std::thread::sleep(Duration::from_millis(20));
    }
    (receiver, sender)
}

/// The capabilities of the installed drop-in's `AmbientCapabilities=`, as setpriv names them
/// (`net_raw` ...), checked equal to its `CapabilityBoundingSet=`.
fn drop_in_capabilities() -> Vec<String> {
    let text = fs::read_to_string(DROP_IN).unwrap_or_else(|e| panic!("reading {DROP_IN}: {e}"));
    let setting = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{DROP_IN} has no {key} line"));
        let mut caps: Vec<String> = line
            .split_whitespace()
            .map(|c| {
                c.strip_prefix("CAP_")
                    .unwrap_or_else(|| panic!("{c:?} in {DROP_IN} is not a CAP_ name"))
                    .to_ascii_lowercase()
            })
            .collect();
        caps.sort();
        caps
    };
    let ambient = setting("AmbientCapabilities=");
    assert_eq!(
        ambient,
        setting("CapabilityBoundingSet="),
        "{DROP_IN}: the bounding set must be the ambient capabilities, nothing more"
    );
    ambient
}

#[test]
fn installed_package_loads_in_collectd() {
    if let Err(reason) = build_tools().and_then(|()| may_install()) {
        return skip(&reason);
    }
    let started = Instant::now();
    let built = built();
    let mut installed = Installed::install(&built.deb);
    let owner = run_ok("dpkg-query", &["--search", PLUGIN]);
    assert!(
        owner.starts_with(&format!("{PACKAGE}:")),
        "{PLUGIN} owned by {owner:?}"
    );
    assert!(Path::new(SNIPPET).is_file(), "{SNIPPET} not installed");

    // The README's three lines are a whole collectd.conf: collectd's compiled-in PluginDir
    // finds the plugin (-t parses the file and loads the plugins, then exits).
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let three = scratch.path().join("collectd.conf");
    fs::write(&three, readme_configuration()).expect("writing the three lines");
    run_ok(COLLECTD, &["-t", "-C", &three.to_string_lossy()]);
    // Run as written, they serve the plugin's series on :9103.
    assert_readme_configuration_serves_metrics(&three);

    // As root: the installed plugin reports a process we run.
    let comm = unique_comm("pk_sleep_");
    let _sleeper = Sleeper::start(&comm);
    let as_root = Daemon::start(&RunAs::Root);
    let settled = now() + 2.0;
    let count = as_root.wait_row(&comm, "ps_count", settled);
    assert_eq!(count[1], 1.0, "ps_count processes of {comm}: {count:?}");
    let root_complaints = as_root.complaints();
    drop(as_root);

    // As nobody with the drop-in's capabilities: what root reads of a root-owned process — its
    // I/O counters, its traffic — and no complaint root does not also have.
    if Command::new("setpriv").arg("--version").output().is_err() {
        assert!(
            !on_ci(),
            "setpriv is missing; CI is set, so this is a failure"
        );
        skip("setpriv is missing (util-linux): the unprivileged run is left out");
    } else {
        let caps = drop_in_capabilities();
        let unprivileged = Daemon::start(&RunAs::Nobody(&caps));
        let self_comm = fs::read_to_string("/proc/self/comm").expect("reading /proc/self/comm");
        let self_comm = self_comm.trim();
        let settled = now() + 2.0;
        let sockets = loopback_datagrams(40);
        let io = unprivileged.wait_row(&comm, "io_octets", settled);
        assert!(io[1] > 0.0, "rchar of {comm} as nobody: {io:?}");
        let packets = unprivileged.wait_row(self_comm, "if_packets", now() + 2.0);
        assert!(
            packets[1] >= 40.0 && packets[2] >= 40.0,
            "loopback datagrams of this root process as nobody with {caps:?} (rx, tx): {packets:?}"
        );
        drop(sockets);
        let extra: Vec<String> = unprivileged
            .complaints()
            .difference(&root_complaints)
            .cloned()
            .collect();
        assert!(
            extra.is_empty(),
            "as nobody with {caps:?} the plugin complains of what root does not: {extra:#?}\n\
             --- log ---\n{}",
            unprivileged.log()
        );
        drop(unprivileged);

        // The same without any capability: the test above has teeth.
        let bare = Daemon::start(&RunAs::Nobody(&[]));
        let settled = now() + 2.0;
        let count = bare.wait_row(&comm, "ps_count", settled);
        assert_eq!(count[1], 1.0, "ps_count as nobody without capabilities");
        assert!(
            !bare.has(&comm, "io_octets"),
            "nobody without capabilities read {comm}'s /proc/PID/io"
        );
        let said = bare.complaints();
        assert!(
            said.iter().any(|c| c.contains("CAP_NET_RAW")),
            "no warning naming CAP_NET_RAW without capabilities: {said:#?}"
        );
    }

    // Removed, the plugin is gone and the snippet stays (a conffile); purged, it goes too.
    apt(&["remove", PACKAGE]);
    assert!(
        !Path::new(PLUGIN).exists(),
        "{PLUGIN} left after apt remove"
    );
    assert!(
        Path::new(SNIPPET).exists(),
        "{SNIPPET} removed with the package, not purged"
    );
    installed.purge();
    assert!(
        !Path::new(SNIPPET).exists(),
        "{SNIPPET} left after apt purge"
    );
    eprintln!(
        "install, three collectd runs, removal: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The shipped drop-in is one systemd reads without complaint, on top of Debian's
/// collectd.service (unknown keys or sections would be ignored silently at run time).
#[test]
fn systemd_drop_in_is_read_without_complaint() {
    const SERVICE: &str = "/lib/systemd/system/collectd.service";
    if !Path::new(SERVICE).exists() {
        return skip(&format!("{SERVICE} is missing (install collectd-core)"));
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("systemd-analyze is missing");
    }
    let units = tempfile::tempdir().expect("a temporary directory");
    let drop_ins = units.path().join("collectd.service.d");
    fs::create_dir(&drop_ins).expect("creating the drop-in directory");
    fs::copy(SERVICE, units.path().join("collectd.service")).expect("copying the unit");
    fs::copy(
        root().join("contrib/systemd/collectd-unprivileged.conf"),
        drop_ins.join("capture.conf"),
    )
    .expect("copying the drop-in");
    let unit = units.path().join("collectd.service");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        // The trailing colon appends the default search path (systemd's own units).
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.path().display()))
        .output()
        .expect("running systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !said.contains("capture.conf"),
        "systemd-analyze verify with the drop-in ({}):\n{said}",
        output.status
    );
}
