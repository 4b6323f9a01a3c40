//! Notifications handed straight to `plugin_dispatch_notification`, filled in place like the
//! value lists (see `value_list`): no meta data, nothing for collectd to free.

use super::value_list::{copy_name, to_cdtime};
use crate::notifications::{Notification, Severity};
use collectd_plugin::bindings::notification_t;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::time::SystemTime;

/// collectd's `NOTIF_FAILURE` and `NOTIF_OKAY` (plugin.h); the bindings do not export them.
const NOTIF_FAILURE: c_int = 1;
const NOTIF_OKAY: c_int = 4;

/// The notification as collectd takes it. The host is collectd's own (`Hostname`, or the
/// machine's name): unlike value lists, collectd does not fill in a notification's host, and
/// receivers (network, exec, notify_*) need it.
pub fn fill(plugin: &str, time: SystemTime, host: &str, n: &Notification) -> notification_t {
    // SAFETY: notification_t is plain C data; all-zero is empty names, time 0 and no meta data.
    let mut raw: notification_t = unsafe { std::mem::zeroed() };
    raw.severity = match n.severity {
        Severity::Failure => NOTIF_FAILURE,
        Severity::Okay => NOTIF_OKAY,
    };
    raw.time = to_cdtime(time);
    copy_name(&mut raw.message, &n.message);
    copy_name(&mut raw.host, host);
    copy_name(&mut raw.plugin, plugin);
    copy_name(&mut raw.plugin_instance, &n.instance);
    copy_name(&mut raw.type_, "ps_count");
    raw
}

/// Hands `n` to collectd's notification plugins; false when collectd refused it.
pub fn dispatch(plugin: &str, time: SystemTime, n: &Notification) -> bool {
    let raw = fill(plugin, time, &host_name(), n);
    // SAFETY: `raw` is a complete notification (NUL-terminated fields, no meta data) that
    // outlives the call; collectd's callbacks only read it.
    unsafe { collectd_plugin::bindings::plugin_dispatch_notification(&raw) == 0 }
}

/// collectd's global host name (`hostname_g`, a `char *` the daemon exports and sets while
/// reading its configuration, before any plugin is initialised). Looked up by name at run time
/// rather than linked, so that the library links without collectd (tests, benchmarks); empty
/// when it cannot be found.
fn host_name() -> String {
    // SAFETY: dlsym with a NUL-terminated name only looks the symbol up.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"hostname_g".as_ptr()) };
    if symbol.is_null() {
        return String::new();
    }
    // SAFETY: in collectd 5.9 and later `hostname_g` is a `char *` (readelf: an 8-byte
    // object), which init checked (`abi::check` refuses to start otherwise); it is set before
    // init and not changed while plugins read.
    let name = unsafe { *symbol.cast::<*const c_char>() };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: a non-null hostname_g points to a NUL-terminated string owned by collectd.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn text(field: &[c_char]) -> String {
        // SAFETY: every field filled by copy_name ends in NUL within its length.
        unsafe { CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn fields_are_filled() {
        let n = Notification {
            severity: Severity::Failure,
            instance: "sshd".into(),
            message: "capture: no process left in group \"sshd\"".into(),
        };
        let raw = fill("capture", UNIX_EPOCH + Duration::from_secs(2), "web1", &n);
        assert_eq!(raw.severity, NOTIF_FAILURE);
        assert_eq!(raw.time, 2 << 30);
        assert_eq!(text(&raw.host), "web1");
        assert_eq!(text(&raw.plugin), "capture");
        assert_eq!(text(&raw.plugin_instance), "sshd");
        assert_eq!(text(&raw.type_), "ps_count");
        assert_eq!(text(&raw.type_instance), "");
        assert_eq!(text(&raw.message), n.message);
        assert!(raw.meta.is_null());
        let okay = Notification {
            severity: Severity::Okay,
            message: "é".repeat(300),
            ..n
        };
        let raw = fill("capture", UNIX_EPOCH, "", &okay);
        assert_eq!(raw.severity, NOTIF_OKAY);
        assert_eq!(
            text(&raw.message),
            "é".repeat(127),
            "cut to 255 bytes, whole chars"
        );
    }
}
