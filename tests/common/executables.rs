//! Executables the tests place under a name of their own (the command name the plugin sees)
//! and start, without the "text file busy" race of copying and starting in a threaded process.
//!
//! The race: `execve` fails with ETXTBSY while any descriptor open for writing on the file
//! exists. A test thread that copies an executable holds one until it closes it; a `fork` by any
//! other test thread in that window hands the child a duplicate, which lives until the child
//! execs or exits (close-on-exec does not close it any sooner), and on a loaded machine that can
//! be long after the copying thread closed its own. Writing to a temporary name and renaming does
//! not help: the rename keeps the inode and its writers.
//!
//! So an executable is placed by [`install_executable`]:
//! - a hard link to the source when the two are on one file system (the usual case: the
//!   workloads and the tests' directories all live under `target/`). Nothing is ever open for
//!   writing, so nothing can be inherited;
//! - otherwise a copy written by a `cp` child process under a temporary name, then renamed: the
//!   descriptor open for writing exists only in `cp`, never in this process, so no fork of a
//!   test thread inherits it, and it is gone when `cp` has exited.
//!
//! [`spawn_retrying`] retries ETXTBSY for a bounded time as well: the file being started may
//! also be written by something outside the test's control (a concurrent `cargo build` of a
//! shared source, say).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`spawn_retrying`] keeps retrying "text file busy".
const TEXT_BUSY_PATIENCE: Duration = Duration::from_secs(10);

/// Places the executable `from` at `to` (see the module comment), unless `to` exists already.
/// Panics when neither a hard link nor a copy can be made.
pub fn install_executable(from: &Path, to: &Path) {
    if to.exists() {
        return;
    }
    let linked = fs::hard_link(from, to);
    if linked.is_ok() || to.exists() {
        return;
    }
    let file_name = to.file_name().unwrap_or_default().to_string_lossy();
    let temporary = to.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let status = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(&temporary)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running cp {} {}: {e}", from.display(), to.display()));
    assert!(
        status.success(),
        "cannot place {} at {}: hard link failed ({}), cp failed ({status})",
        from.display(),
        to.display(),
        linked.err().map(|e| e.to_string()).unwrap_or_default()
    );
    if let Err(e) = fs::rename(&temporary, to) {
        let _ = fs::remove_file(&temporary);
        assert!(to.exists(), "renaming the copy to {}: {e}", to.display());
    }
}

/// Spawns `command` (which starts `binary`), retrying for a bounded time while the kernel says
/// "text file busy"; panics on any other error, naming `binary`.
pub fn spawn_retrying(command: &mut Command, binary: &Path) -> Child {
    let deadline = Instant::now() + TEXT_BUSY_PATIENCE;
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("starting {}: {e}", binary.display()),
        }
    }
}
