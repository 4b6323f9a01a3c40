//! collectd-capture: per-process CPU, memory, file descriptors, I/O and network traffic,
//! reported through collectd.
//!
//! Layers, from the kernel up:
//! - [`proc`]: readers for the /proc files, one module per file;
//! - [`sampler`]: one cycle over /proc, grouping into instances and the accounting that keeps
//!   counters right across exits, pid reuse and exec;
//! - [`snapshot`]: what a cycle produced, plain data;
//! - [`notifications`]: which watched groups lost their last process or got one back;
//! - [`runtime`]: the sampler thread and the latest snapshot it publishes;
//! - [`supervise`]: the registry of the plugin's threads and the guard that keeps each going
//!   past a panic; [`faults`]: the test-only panics that prove it;
//! - [`config`]: the validated configuration;
//! - `collectd`: the thin adapter, the only module that talks to collectd.
//!
//! `unsafe` is used only at FFI and kernel boundaries, each block with a `// SAFETY:` comment
//! giving its reason (README, "Security").

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod ebpf;
pub mod exits;
pub mod faults;
pub mod maps;
pub mod names;
pub mod net;
pub mod notifications;
pub mod proc;
pub mod runtime;
pub mod sampler;
pub mod snapshot;
pub mod supervise;
pub mod taskstats;
pub mod users;

mod collectd;
