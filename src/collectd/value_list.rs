//! Value lists handed straight to `plugin_dispatch_values`.
//!
//! collectd-plugin's `ValueListBuilder::submit` allocates a `meta_data_t` for every value list
//! and never frees it (collectd clones the meta data it is given and leaves the original to
//! the caller), which leaks about 64 bytes per value list — gigabytes a month for a plugin that
//! dispatches a thousand value lists a second. It also builds a hash map per call. This writer
//! fills one `value_list_t` in place and reuses it for every dispatch; the meta data of an
//! instance ([`set_meta`](ValueListWriter::set_meta)) is built once for all its value lists and
//! destroyed when the next instance's replaces it or the writer is dropped — collectd clones
//! what it keeps during `plugin_dispatch_values`.

use crate::snapshot::MetaData;
use collectd_plugin::bindings::{
    meta_data_add_string, meta_data_add_unsigned_int, meta_data_create, meta_data_destroy,
    meta_data_t, plugin_dispatch_values, value_list_t, value_t,
};
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::time::{SystemTime, UNIX_EPOCH};

/// A value of one data source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Gauge(f64),
    Derive(u64),
}

impl Value {
    fn raw(self) -> value_t {
        match self {
            Value::Gauge(gauge) => value_t { gauge },
            // collectd's derive_t is signed; counters beyond i64::MAX are not reachable.
            Value::Derive(v) => value_t {
                derive: i64::try_from(v).unwrap_or(i64::MAX),
            },
        }
    }
}

pub struct ValueListWriter {
    list: value_list_t,
    values: [value_t; 2],
    /// Value lists collectd refused since the writer was made.
    pub failures: usize,
}

impl ValueListWriter {
    /// A writer for `plugin`, stamping every value with `time`. Host and interval are left
    /// for collectd to fill in (the global host name, the plugin's interval).
    pub fn new(plugin: &str, time: SystemTime) -> Self {
        // SAFETY: value_list_t is plain C data; all-zero is its documented empty state
        // (VALUE_LIST_INIT), with a null `values` pointer set before each dispatch.
        let mut list: value_list_t = unsafe { std::mem::zeroed() };
        copy_name(&mut list.plugin, plugin);
        list.time = to_cdtime(time);
        ValueListWriter {
            list,
            values: [value_t { gauge: 0.0 }; 2],
            failures: 0,
        }
    }

    pub fn set_instance(&mut self, plugin_instance: &str) {
        copy_name(&mut self.list.plugin_instance, plugin_instance);
    }

    /// The meta data every value list dispatched from now on carries (none with `None`).
    pub fn set_meta(&mut self, meta: Option<&MetaData>) {
        self.free_meta();
        let Some(meta) = meta else {
            return;
        };
        // SAFETY: meta_data_create allocates an empty set that we own (null when out of
        // memory, or in the test stub).
        let md = unsafe { meta_data_create() };
        if md.is_null() {
            return;
        }
        for (key, value) in [(c"pid", meta.pid), (c"uid", meta.uid)] {
            if let Some(value) = value {
                // SAFETY: `md` is our live set, `key` a NUL-terminated string; collectd copies it.
                unsafe { meta_data_add_unsigned_int(md, key.as_ptr(), u64::from(value)) };
            }
        }
        for (key, value) in [
            (c"user", &meta.user),
            (c"comm", &meta.comm),
            (c"exe", &meta.exe),
            (c"cmdline", &meta.cmdline),
        ] {
            if let Some(value) = value {
                add_string(md, key, value);
            }
        }
        self.list.meta = md;
    }

    fn free_meta(&mut self) {
        if !self.list.meta.is_null() {
            // SAFETY: a non-null `meta` is the set set_meta created and nothing else holds:
            // collectd cloned what it kept.
            unsafe { meta_data_destroy(self.list.meta) };
            self.list.meta = std::ptr::null_mut();
        }
    }

    /// Dispatches one or two values of `type_` (`type_instance` may be empty).
    pub fn dispatch(&mut self, type_: &str, type_instance: &str, values: &[Value]) {
        let count = values.len().min(self.values.len());
        for (slot, value) in self.values.iter_mut().zip(values) {
            *slot = value.raw();
        }
        copy_name(&mut self.list.type_, type_);
        copy_name(&mut self.list.type_instance, type_instance);
        self.list.values = self.values.as_mut_ptr();
        self.list.values_len = count;
        // SAFETY: `list` is a valid value list: NUL-terminated names, `values` points to
        // `count` initialised values that outlive the call, `meta` null or a set we own.
        // collectd copies what it keeps.
        let status = unsafe { plugin_dispatch_values(&self.list) };
        self.list.values = std::ptr::null_mut();
        if status != 0 {
            self.failures += 1;
        }
    }
}

impl Drop for ValueListWriter {
    fn drop(&mut self) {
        self.free_meta();
    }
}

fn add_string(md: *mut meta_data_t, key: &CStr, value: &str) {
    // Meta strings have no control characters, NUL included (names::sanitize_meta).
    let Ok(value) = CString::new(value) else {
        return;
    };
    // SAFETY: `md` is a live set we own; key and value are NUL-terminated and collectd copies
    // both.
    unsafe { meta_data_add_string(md, key.as_ptr(), value.as_ptr()) };
}

/// Copies a name into one of collectd's fixed-size fields (128 bytes for names, 256 for a
/// notification's message), cut on a character boundary so that the last byte stays NUL.
/// Instance names are at most 63 bytes already.
pub(super) fn copy_name(field: &mut [c_char], name: &str) {
    let Some(room) = field.len().checked_sub(1) else {
        return;
    };
    let mut len = name.len().min(room);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    field.fill(0);
    for (dst, &src) in field.iter_mut().zip(&name.as_bytes()[..len]) {
        *dst = src as c_char;
    }
}

/// collectd's `cdtime_t`: 2^-30 seconds since the epoch.
pub(super) fn to_cdtime(time: SystemTime) -> u64 {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since_epoch.as_secs() << 30) | ((u64::from(since_epoch.subsec_nanos()) << 30) / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cdtime() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(to_cdtime(t), (1 << 30) + (1 << 29));
    }

    #[test]
    fn names_are_cut_and_terminated() {
        let mut field = [1 as c_char; 128];
        copy_name(&mut field, "sshd");
        assert_eq!(
            &field[..5],
            &[
                b's' as c_char,
                b's' as c_char,
                b'h' as c_char,
                b'd' as c_char,
                0
            ]
        );
        copy_name(&mut field, &"é".repeat(100));
        assert_eq!(field[127], 0);
        assert_eq!(field[126], 0, "a two-byte character is not split");
    }
}
