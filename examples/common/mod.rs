//! What the programs in `examples/` share, included by each with `mod common;`: the guard on
//! every address they are given, the parsing of their arguments, `say` and `main`.
//!
//! Every address a program is given on its command line goes through [`ip`] or [`addr`], which
//! refuse anything outside what the program is [`Allowed`]: loopback (127.0.0.0/8, ::1), and for
//! the integration tests' workload also the ranges the tests give the network namespaces they
//! create themselves. A load generator never talks to the outside.

// Not every program uses every item.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// The addresses a program may send to or listen on.
#[derive(Clone, Copy, Debug)]
pub enum Allowed {
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// Loopback, or the ranges the integration tests give the network namespaces they create
    /// themselves: 10.203.0.0/16 and fd00:203::/32.
    LoopbackOrTestNamespaces,
}

impl Allowed {
    fn admits(self, ip: IpAddr) -> bool {
        let test_namespace = match ip {
            IpAddr::V4(v4) => v4.octets()[..2] == [10, 203],
            IpAddr::V6(v6) => v6.segments()[..2] == [0xfd00, 0x203],
        };
        match self {
            Allowed::Loopback => ip.is_loopback(),
            Allowed::LoopbackOrTestNamespaces => ip.is_loopback() || test_namespace,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Allowed::Loopback => "a loopback address (127.0.0.0/8, ::1)",
            Allowed::LoopbackOrTestNamespaces => {
                "a loopback address (127.0.0.0/8, ::1) or in a test namespace range \
                 (10.203.0.0/16, fd00:203::/32)"
            }
        }
    }
}

/// An IP address the program may use; anything else is refused.
pub fn ip(text: &str, allowed: Allowed) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))?;
    checked(ip, allowed)
}

/// An `IP:PORT` or `[IPv6]:PORT` the program may use; anything else is refused.
pub fn addr(text: &str, allowed: Allowed) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an address (IP:PORT, [IPv6]:PORT)"))?;
    checked(addr.ip(), allowed)?;
    Ok(addr)
}

fn checked(ip: IpAddr, allowed: Allowed) -> Result<IpAddr, String> {
    if allowed.admits(ip) {
        Ok(ip)
    } else {
        Err(format!("{ip} is not {}: refused", allowed.describe()))
    }
}

/// A whole number; `what` names the argument in the error.
pub fn number<T: FromStr>(text: &str, what: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse()
        .map_err(|e| format!("{what} must be a whole number, not `{text}`: {e}"))
}

/// A number of seconds (fractions allowed), from 0 to 10^7; `what` names the argument.
pub fn seconds(text: &str, what: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{what} must be a number of seconds, not `{text}`"))?;
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!(
            "{what}: {secs} seconds is out of range (0 to 10^7)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints one line on stdout and flushes it: stdout is a file or a pipe that a script or a test
/// watches for `ready` or `port N`. One that stopped reading is no reason to stop the program.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The `main` of every program: `run` gets the arguments after the program's name; an error is
/// printed as `PROGRAM: MESSAGE` with the usage, and the exit status is 2.
pub fn main(
    program: &str,
    usage: &str,
    run: impl FnOnce(&[String]) -> Result<(), String>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{program}: {message}");
            eprintln!("{usage}");
            ExitCode::from(2)
        }
    }
}
