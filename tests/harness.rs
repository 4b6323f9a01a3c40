//! The harness's own guarantees, checked where they can break: executables placed and started
//! while other threads fork (the ETXTBSY race, see tests/common/executables.rs), and the
//! package names a missing library is reported with.

mod common;

use common::stock_plugins::debian_package;
use common::{install_executable, wait_for};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Places `/bin/true` under 150 names in `dir` and starts each at once with a plain `spawn`
/// (no retry), while four threads fork and exec without pause. Any descriptor open for writing
/// that a fork inherits shows as "Text file busy" here.
fn place_and_start_while_forking(dir: &Path) {
    let stop = Arc::new(AtomicBool::new(false));
    let forks = Arc::new(AtomicU32::new(0));
    let forkers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, forks) = (Arc::clone(&stop), Arc::clone(&forks));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .status();
                    forks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // The forkers are running before the first placement.
    wait_for(
        "the forking threads to start",
        Duration::from_secs(30),
        || (forks.load(Ordering::Relaxed) >= 4).then_some(()),
    );
    let mut failures = Vec::new();
    for i in 0..150 {
        let binary = dir.join(format!("placed_{i}"));
        install_executable(Path::new("/bin/true"), &binary);
        match Command::new(&binary).stdin(Stdio::null()).status() {
            Ok(status) if status.success() => {}
            Ok(status) => failures.push(format!("{}: {status}", binary.display())),
            Err(e) => failures.push(format!("{}: {e}", binary.display())),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for forker in forkers {
        forker.join().expect("a forking thread");
    }
    assert!(
        failures.is_empty(),
        "{} of 150 placed executables failed to start beside {} forks: {failures:#?}",
        failures.len(),
        forks.load(Ordering::Relaxed)
    );
}

#[test]
fn executables_placed_on_the_same_file_system_start_beside_forks() {
    let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it/tmp");
    std::fs::create_dir_all(&parent).expect("creating target/it/tmp");
    let dir = tempfile::tempdir_in(&parent).expect("a temporary directory");
    place_and_start_while_forking(dir.path());
}

#[test]
fn executables_copied_across_file_systems_start_beside_forks() {
    // /dev/shm is a tmpfs on Linux: a hard link from /bin cannot reach it, so this takes the
    // copying path.
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return common::prometheus::skip("/dev/shm is not writable here");
    };
    place_and_start_while_forking(dir.path());
}

#[test]
fn missing_libraries_are_named_with_their_debian_package() {
    for (soname, package) in [
        ("libprotobuf-c.so.1", "libprotobuf-c1"),
        ("libmicrohttpd.so.12", "libmicrohttpd12"),
        ("libyajl.so.2", "libyajl2"),
        ("libgcrypt.so.20", "libgcrypt20"),
        ("liblua5.3.so.0", "liblua5.3-0"),
    ] {
        assert_eq!(debian_package(soname).as_deref(), Some(package), "{soname}");
    }
    assert_eq!(debian_package("libfoo.so"), None);
}
