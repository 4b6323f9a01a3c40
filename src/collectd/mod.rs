//! The adapter: the only module that knows collectd. It turns collectd's configuration into
//! [`ConfigNode`]s, starts and stops the [`Runtime`], and dispatches snapshots as value lists
//! (with meta data when asked) and the notifications of watched groups.
//!
//! Configuration mistakes are not returned from the config callback — collectd 5 would exit
//! altogether. They are kept and returned from init instead: collectd then logs the error,
//! unloads this plugin and carries on with every other plugin.

mod abi;
mod dispatch;
mod notification;
mod value_list;

use crate::config::{Config, ConfigError, ConfigNode, ConfigValue};
use crate::notifications::GroupWatch;
use crate::runtime::Runtime;
use collectd_plugin::{
    collectd_plugin, CollectdLoggerBuilder, ConfigItem, Plugin, PluginCapabilities, PluginManager,
    PluginManagerCapabilities, PluginRegistration,
};
use log::LevelFilter;
use parking_lot::Mutex;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Between collectd's config, init, read and shutdown callbacks.
struct Lifecycle {
    config: Option<Result<Config, ConfigError>>,
    runtime: Option<Runtime>,
}

static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle {
    config: None,
    runtime: None,
});

/// Sequence number of the last snapshot dispatched: each is dispatched once.
static LAST_DISPATCHED: AtomicU64 = AtomicU64::new(0);

/// Watched groups as of the last dispatched snapshot (only collectd's read thread touches it,
/// behind the lock for the compiler's sake).
static WATCH: Mutex<Option<GroupWatch>> = Mutex::new(None);

pub struct CaptureManager;

impl PluginManager for CaptureManager {
    fn name() -> &'static str {
        "capture"
    }

    fn capabilities() -> PluginManagerCapabilities {
        PluginManagerCapabilities::INIT
    }

    fn plugins(config: Option<&[ConfigItem<'_>]>) -> Result<PluginRegistration, Box<dyn Error>> {
        let _ = CollectdLoggerBuilder::new()
            .prefix_plugin::<Self>()
            .filter_level(LevelFilter::Info)
            .format(|buf, record| write!(buf, "{}", record.args()))
            .try_init();
        let nodes: Vec<ConfigNode> = config.unwrap_or_default().iter().map(to_node).collect();
        LIFECYCLE.lock().config = Some(Config::from_nodes(&nodes));
        Ok(PluginRegistration::Single(Box::new(Reader)))
    }

    fn initialize() -> Result<(), Box<dyn Error>> {
        // Before anything is written into collectd's structures: the daemon must be the
        // collectd the bindings describe.
        abi::check(abi::daemon_symbols())?;
        let mut lifecycle = LIFECYCLE.lock();
        let config = match lifecycle.config.take() {
            Some(Ok(config)) => config,
            Some(Err(e)) => return Err(Box::new(Refused(e))),
            None => Config::default(),
        };
        let mut owner_records = None;
        if let Some(network) = &config.network {
            crate::net::validate(network).map_err(|e| Box::new(Refused(e)))?;
            owner_records =
                crate::net::load_owner_source(network).map_err(|e| Box::new(Refused(e)))?;
        }
        let exit_records = if config.exit_records {
            crate::exits::load()
        } else {
            log::info!("exit records: off (ExitRecords false)");
            None
        };
        let interval = plugin_interval();
        lifecycle.runtime = Some(Runtime::start(
            config,
            interval,
            owner_records,
            exit_records,
        )?);
        Ok(())
    }

    fn shutdown() -> Result<(), Box<dyn Error>> {
        let runtime = LIFECYCLE.lock().runtime.take();
        if let Some(mut runtime) = runtime {
            runtime.stop();
        }
        Ok(())
    }
}

/// The configuration error, worded for the log line collectd-plugin writes from init.
#[derive(Debug)]
struct Refused(ConfigError);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration, plugin not started: {}", self.0)
    }
}

impl Error for Refused {}

/// The read callback: dispatch the newest snapshot once, then ask for the next cycle.
struct Reader;

impl Plugin for Reader {
    fn capabilities(&self) -> PluginCapabilities {
        PluginCapabilities::READ
    }

    fn read_values(&self) -> Result<(), Box<dyn Error>> {
        let snapshot = {
            let lifecycle = LIFECYCLE.lock();
            let Some(runtime) = lifecycle.runtime.as_ref() else {
                return Ok(());
            };
            runtime.request_cycle();
            runtime.latest()
        };
        if let Some(snapshot) = snapshot {
            if LAST_DISPATCHED.fetch_max(snapshot.seq, Ordering::SeqCst) < snapshot.seq {
                dispatch::snapshot(Self::plugin_name(), &snapshot);
                let mut watch = WATCH.lock();
                let watch = watch.get_or_insert_with(GroupWatch::default);
                dispatch::notifications(Self::plugin_name(), &snapshot, watch);
            }
        }
        Ok(())
    }
}

impl Reader {
    fn plugin_name() -> &'static str {
        CaptureManager::name()
    }
}

/// The interval collectd gives this plugin (global `Interval` or `<LoadPlugin> Interval`).
fn plugin_interval() -> Duration {
    #[cfg(not(test))]
    {
        // SAFETY: plugin_get_interval only reads the calling thread's plugin context, which
        // collectd sets before it calls init.
        let raw = unsafe { collectd_plugin::bindings::plugin_get_interval() };
        let interval = cdtime_to_duration(raw);
        if interval > Duration::ZERO {
            return interval;
        }
    }
    Duration::from_secs(10)
}

/// collectd's `cdtime_t` counts 2^-30 seconds.
fn cdtime_to_duration(raw: u64) -> Duration {
    let seconds = raw >> 30;
    let nanos = ((raw & ((1 << 30) - 1)) * 1_000_000_000) >> 30;
    Duration::new(seconds, nanos as u32)
}

fn to_node(item: &ConfigItem<'_>) -> ConfigNode {
    ConfigNode {
        key: item.key.to_string(),
        values: item
            .values
            .iter()
            .map(|v| match v {
                collectd_plugin::ConfigValue::String(s) => ConfigValue::String(s.to_string()),
                collectd_plugin::ConfigValue::Number(n) => ConfigValue::Number(*n),
                collectd_plugin::ConfigValue::Boolean(b) => ConfigValue::Boolean(*b),
            })
            .collect(),
        children: item.children.iter().map(to_node).collect(),
    }
}

collectd_plugin!(CaptureManager);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdtime_conversion() {
        assert_eq!(cdtime_to_duration(10 << 30), Duration::from_secs(10));
        assert_eq!(cdtime_to_duration(1 << 29), Duration::from_millis(500));
    }
}
