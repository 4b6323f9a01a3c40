//! Readers for the few /proc files the sampler needs, one module per file, in the spirit of the
//! `procfs` crate — but allocation-free and panic-free: every parser takes the bytes of the file
//! and returns `None` on anything it does not understand, because /proc is read while processes
//! come and go and a half-written or unexpected file must never take the plugin down.
//!
//! [`ProcRoot`] owns the location of /proc (a fixture directory in tests) and one reusable read
//! buffer, so a sampler cycle reads thousands of files without touching the allocator.

pub mod cmdline;
pub mod fd;
pub mod kept;
pub mod meminfo;
pub mod pid_cgroup;
pub mod pid_io;
pub mod pid_limits;
pub mod pid_maps;
pub mod pid_schedstat;
pub mod pid_stat;
pub mod pid_status;
pub mod stat;
pub mod system;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where /proc lives, plus the scratch buffer files are read into.
pub struct ProcRoot {
    root: PathBuf,
    path: PathBuf,
    buf: Vec<u8>,
}

impl ProcRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        ProcRoot {
            path: root.clone(),
            root,
            buf: Vec::with_capacity(8192),
        }
    }

    /// The live system's /proc.
    pub fn system() -> Self {
        Self::new("/proc")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the live system's /proc, where system calls about a pid describe the
    /// same process as its files (not so for a fixture directory).
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/proc")
    }

    /// Path of `/proc/<pid>/<name>` (or `/proc/<name>` when `pid` is `None`), built in a reused
    /// buffer.
    pub fn path(&mut self, pid: Option<u32>, name: &str) -> &Path {
        self.path.clear();
        self.path.push(&self.root);
        if let Some(pid) = pid {
            let mut digits = itoa_buf(pid);
            self.path.push(digits.as_str());
        }
        if !name.is_empty() {
            self.path.push(name);
        }
        &self.path
    }

    /// Reads at most `limit` bytes of `/proc/<pid>/<name>` into the scratch buffer.
    pub fn read(&mut self, pid: Option<u32>, name: &str, limit: usize) -> io::Result<&[u8]> {
        self.path(pid, name);
        let mut file = File::open(&self.path)?;
        self.buf.clear();
        read_limited(&mut file, &mut self.buf, limit)?;
        Ok(&self.buf)
    }

    /// Like [`read`](Self::read) for a process's `stat` or `io`, through a file `kept` open
    /// from earlier cycles (see [`kept`]).
    pub fn read_kept(
        &mut self,
        kept: &mut kept::KeptFiles,
        pid: u32,
        kind: kept::Kind,
        limit: usize,
    ) -> io::Result<&[u8]> {
        let name = match kind {
            kept::Kind::Stat => "stat",
            kept::Kind::Io => "io",
            kept::Kind::Status => "status",
            kept::Kind::Schedstat => "schedstat",
        };
        self.path(Some(pid), name);
        kept.read(pid, kind, &self.path, &mut self.buf, limit)?;
        Ok(&self.buf)
    }
}

/// [`read_limited`] with `pread` from offset 0, for a file kept open: each read of a /proc file
/// at offset 0 produces it afresh.
fn read_limited_at(file: &File, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    buf.clear();
    fill(buf, limit, |chunk, at| file.read_at(chunk, at))?;
    // A kept file of a process that is gone reads as an error, never as empty; an empty
    // /proc/PID file is not one the sampler reads.
    if buf.is_empty() {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(())
}

/// Reads until EOF or `limit` bytes. /proc files report size 0, so `read_to_end`'s size hint is
/// useless; this grows the buffer only when a file is larger than anything read before.
///
/// A short read that ends a line is taken as the whole file, sparing the read that would only
/// return 0: the text files read here (`stat`, `io`, `status`, `meminfo`) are produced whole in
/// the first read when it has room for them. `cmdline` ends in NUL, never in a newline, so it is
/// always read to EOF. One system call less per file is a quarter of the calls a process costs.
fn read_limited(file: &mut File, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    fill(buf, limit, |chunk, _| file.read(chunk))
}

/// The loop of [`read_limited`] and [`read_limited_at`]: `read` fills a chunk that starts at
/// the given offset of the file.
fn fill(
    buf: &mut Vec<u8>,
    limit: usize,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    loop {
        if buf.len() >= limit {
            buf.truncate(limit);
            return Ok(());
        }
        if buf.capacity() == buf.len() {
            buf.reserve(4096.min(limit - buf.len()).max(1));
        }
        let start = buf.len();
        let room = (buf.capacity() - start).min(limit - start);
        buf.resize(start + room, 0);
        match read(&mut buf[start..], start as u64) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(());
            }
            Ok(n) => {
                buf.truncate(start + n);
                if n < room && buf.last() == Some(&b'\n') {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Decimal digits of a pid without allocating.
struct DigitBuf {
    bytes: [u8; 10],
    start: usize,
}

impl DigitBuf {
    fn as_str(&mut self) -> &str {
        // Only ASCII digits are ever written into `bytes[start..]`.
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
    }
}

fn itoa_buf(mut n: u32) -> DigitBuf {
    let mut bytes = [0u8; 10];
    let mut i = bytes.len();
    loop {
        i -= 1;
        bytes[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    DigitBuf { bytes, start: i }
}

/// Parses an unsigned decimal number; `None` for empty input, other bytes or overflow.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses a possibly negative decimal number.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes.split_first() {
        Some((b'-', rest)) => parse_u64(rest)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n),
        _ => parse_u64(bytes).and_then(|n| i64::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_without_surprises() {
        let mut root = ProcRoot::new("/proc");
        assert_eq!(root.path(Some(0), "stat"), Path::new("/proc/0/stat"));
        assert_eq!(
            root.path(Some(4294967295), "io"),
            Path::new("/proc/4294967295/io")
        );
        assert_eq!(root.path(None, "meminfo"), Path::new("/proc/meminfo"));
        assert_eq!(root.path(Some(42), ""), Path::new("/proc/42"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"-"), None);
    }

    #[test]
    fn read_respects_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        std::fs::write(dir.path().join("7/cmdline"), vec![b'x'; 10_000]).unwrap();
        let mut root = ProcRoot::new(dir.path());
        assert_eq!(root.read(Some(7), "cmdline", 5000).unwrap().len(), 5000);
        assert_eq!(
            root.read(Some(7), "cmdline", 1 << 20).unwrap().len(),
            10_000
        );
        assert!(root.read(Some(8), "cmdline", 10).is_err());
    }
}
