//! The collectd ABI this plugin writes into, checked twice: at compile time, that the bindings
//! it was built with lay out `value_list_t` and `notification_t` as collectd 5.9–5.12's
//! plugin.h does (the plugin fills both by hand); and at init, that the daemon it is loaded
//! into is such a collectd. Runs on collectd's init callback, once.
//!
//! Why at init: a plugin built against one collectd loads into another without complaint, and
//! the difference shows only as memory read wrongly. Before 5.9 `hostname_g` was a
//! `char[128]`, since then a `char *`: read as a pointer, a 5.7/5.8 host name crashes collectd
//! at the first notification. collectd 6 replaced value lists with metric families. Both are
//! told apart from the daemon's own dynamic symbols, without calling anything of it.

use collectd_plugin::bindings::{notification_t, value_list_t};
use std::ffi::{c_void, CStr};
use std::mem::{offset_of, size_of};

// collectd 5.9–5.12, src/daemon/plugin.h, on a 64-bit target: the offsets of every field the
// plugin writes, and the sizes. A change of the bindings (another collectd-plugin release, or
// bindings generated from other headers) fails the build here instead of corrupting memory.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(offset_of!(value_list_t, values) == 0);
    assert!(offset_of!(value_list_t, values_len) == 8);
    assert!(offset_of!(value_list_t, time) == 16);
    assert!(offset_of!(value_list_t, interval) == 24);
    assert!(offset_of!(value_list_t, host) == 32);
    assert!(offset_of!(value_list_t, plugin) == 160);
    assert!(offset_of!(value_list_t, plugin_instance) == 288);
    assert!(offset_of!(value_list_t, type_) == 416);
    assert!(offset_of!(value_list_t, type_instance) == 544);
    assert!(offset_of!(value_list_t, meta) == 672);
    assert!(size_of::<value_list_t>() == 680);
    assert!(offset_of!(notification_t, severity) == 0);
    assert!(offset_of!(notification_t, time) == 8);
    assert!(offset_of!(notification_t, message) == 16);
    assert!(offset_of!(notification_t, host) == 272);
    assert!(offset_of!(notification_t, plugin) == 400);
    assert!(offset_of!(notification_t, plugin_instance) == 528);
    assert!(offset_of!(notification_t, type_) == 656);
    assert!(offset_of!(notification_t, type_instance) == 784);
    assert!(offset_of!(notification_t, meta) == 912);
    assert!(size_of::<notification_t>() == 920);
};

/// The collectd versions the plugin is built for (the bindings are pinned to them in
/// `.cargo/config.toml`).
pub const BUILT_FOR: &str = "collectd 5.9 to 5.12";

/// A symbol only collectd 6 exports (its metric-family dispatch).
const COLLECTD6_SYMBOL: &CStr = c"plugin_dispatch_metric_family";

/// What the daemon's dynamic symbols say about its ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonSymbols {
    /// The size of the `hostname_g` object (`None`: not exported, or its size unknown).
    pub hostname_size: Option<u64>,
    pub has_collectd6_symbol: bool,
}

/// Reads the symbols of the process this library is loaded into.
pub fn daemon_symbols() -> DaemonSymbols {
    DaemonSymbols {
        hostname_size: symbol_size(c"hostname_g"),
        has_collectd6_symbol: symbol(COLLECTD6_SYMBOL).is_some(),
    }
}

/// `Err` (one sentence naming what was found) when the daemon is not a collectd this plugin
/// was built for.
pub fn check(symbols: DaemonSymbols) -> Result<(), String> {
    if symbols.has_collectd6_symbol {
        return Err(format!(
            "this collectd is 6.x (it exports {}); collectd-capture is built for {BUILT_FOR}: \
             plugin not started",
            COLLECTD6_SYMBOL.to_string_lossy()
        ));
    }
    match symbols.hostname_size {
        Some(size) if size == size_of::<*const u8>() as u64 => Ok(()),
        Some(128) => Err(format!(
            "this collectd is 5.7 or 5.8 (its hostname_g is a 128-byte array, a pointer since \
             5.9); collectd-capture is built for {BUILT_FOR}: plugin not started"
        )),
        Some(size) => Err(format!(
            "this collectd's hostname_g is {size} bytes, not a pointer as in {BUILT_FOR}: \
             plugin not started"
        )),
        None => Err(format!(
            "the program loading this plugin exports no hostname_g: it is not {BUILT_FOR}; \
             plugin not started"
        )),
    }
}

fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with a NUL-terminated name only looks the symbol up.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

/// `RTLD_DL_SYMENT` of <dlfcn.h>: dladdr1 returns the symbol table entry.
const RTLD_DL_SYMENT: libc::c_int = 1;

#[cfg(target_pointer_width = "64")]
type ElfSymbol = libc::Elf64_Sym;
#[cfg(target_pointer_width = "32")]
type ElfSymbol = libc::Elf32_Sym;

/// The size of the data object `name` in the dynamic symbol table that defines it.
fn symbol_size(name: &CStr) -> Option<u64> {
    let address = symbol(name)?;
    // SAFETY: all-zero is a valid Dl_info (null pointers).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut entry: *mut ElfSymbol = std::ptr::null_mut();
    // SAFETY: `address` came from dlsym; `info` and `entry` are valid for writing; with
    // RTLD_DL_SYMENT the extra argument receives a pointer to the symbol's ELF entry.
    let found = unsafe {
        libc::dladdr1(
            address,
            &mut info,
            (&mut entry as *mut *mut ElfSymbol).cast(),
            RTLD_DL_SYMENT,
        )
    };
    if found == 0 || entry.is_null() {
        return None;
    }
    // SAFETY: on success `entry` points into the loaded object's symbol table, which stays
    // mapped while the object is loaded.
    let size = unsafe { (*entry).st_size };
    #[allow(clippy::useless_conversion)] // st_size is a u32 on 32-bit targets
    Some(u64::from(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(hostname_size: Option<u64>, has_collectd6_symbol: bool) -> DaemonSymbols {
        DaemonSymbols {
            hostname_size,
            has_collectd6_symbol,
        }
    }

    #[test]
    fn collectd_5_9_to_5_12_is_accepted() {
        assert_eq!(check(symbols(Some(8), false)), Ok(()));
    }

    #[test]
    fn other_collectds_are_refused_naming_what_was_found() {
        let old = check(symbols(Some(128), false)).unwrap_err();
        assert!(old.contains("5.7 or 5.8"), "{old}");
        let six = check(symbols(Some(8), true)).unwrap_err();
        assert!(six.contains("6.x"), "{six}");
        let odd = check(symbols(Some(64), false)).unwrap_err();
        assert!(odd.contains("64 bytes"), "{odd}");
        let none = check(symbols(None, false)).unwrap_err();
        assert!(none.contains("no hostname_g"), "{none}");
        for message in [old, six, odd, none] {
            assert!(message.contains(BUILT_FOR), "{message}");
        }
    }

    /// The test binary is no collectd: no hostname_g, no collectd 6 symbol.
    #[test]
    fn this_process_is_not_collectd() {
        assert_eq!(daemon_symbols(), symbols(None, false));
    }
}
