//! Stock collectd plugins that need libraries of their own. Debian's collectd-core only
//! *suggests* them (write_prometheus needs libprotobuf-c1 and libmicrohttpd12, write_log
//! libyajl2, network libgcrypt20), so a plugin may be on disk and still fail to load. Without this
//! check a test sees only "collectd exited"; with it, it says which library and which package.

use std::path::Path;
use std::process::{Command, Stdio};

/// `Err(reason)` naming every library that `plugin` (a path to a collectd plugin) cannot find,
/// and the Debian package that usually provides it; `Ok` when `ldd` finds them all, or when
/// there is no `ldd` to ask (collectd's own error then tells).
pub fn missing_libraries(plugin: &Path) -> Result<(), String> {
    let Ok(output) = Command::new("ldd")
        .arg(plugin)
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<String> = text
        .lines()
        .filter(|line| line.contains("=> not found"))
        .filter_map(|line| line.split_whitespace().next())
        .map(|soname| match debian_package(soname) {
            Some(package) => format!("{soname} (apt-get install {package})"),
            None => soname.to_string(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} cannot be loaded, it needs {}",
        plugin.display(),
        missing.join(", ")
    ))
}

/// The package name Debian's policy (8.1) gives the runtime library `soname`:
/// `libfoo.so.3` is in `libfoo3`, `libfoo2.so.3` in `libfoo2-3`. Libraries renamed for the
/// 64-bit time_t transition (trixie, noble) add `t64`; the name given is the base one.
pub fn debian_package(soname: &str) -> Option<String> {
    let (name, version) = soname.split_once(".so.")?;
    let version = version.split('.').next().filter(|v| !v.is_empty())?;
    let separator = if name.ends_with(|c: char| c.is_ascii_digit()) {
        "-"
    } else {
        ""
    };
    Some(format!("{name}{separator}{version}"))
}
