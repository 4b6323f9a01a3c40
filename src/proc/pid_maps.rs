//! `/proc/<pid>/maps`: only its line count is taken, the number of memory mappings a process
//! has (`CollectMemoryMaps`, the processes plugin's `file_handles-mapped`): a process near
//! `vm.max_map_count` (65,530 by default) fails its next `mmap`, which a JVM or an allocator
//! with many arenas reaches long before it runs out of memory.
//!
//! The file is produced a line per mapping, each with its path, and has no size bound (one
//! line per mapping, up to the limit above: megabytes), so it is read to its end in chunks of
//! the scratch buffer and counted, never kept whole. The kernel takes the process's mmap lock
//! to produce it: that, and its length, make it the most costly file the sampler can read,
//! which is why it is an option.

use super::ProcRoot;
use std::fs::File;
use std::io::{self, Read};

/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// How many mappings the process `pid` has.
pub fn count(proc: &mut ProcRoot, pid: u32) -> io::Result<u64> {
    proc.path(Some(pid), "maps");
    let file = File::open(&proc.path)?;
    count_lines(file, &mut proc.buf)
}

/// The newlines `reader` yields until its end, read through `buf`.
pub fn count_lines(mut reader: impl Read, buf: &mut Vec<u8>) -> io::Result<u64> {
    buf.clear();
    buf.resize(CHUNK, 0);
    let mut lines = 0u64;
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_chunks() {
        let text = "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x\n".repeat(5_000);
        let mut buf = Vec::new();
        assert_eq!(count_lines(text.as_bytes(), &mut buf).unwrap(), 5_000);
        assert_eq!(count_lines(&b""[..], &mut buf).unwrap(), 0);
    }

    #[test]
    fn mappings_of_this_process() {
        let mut proc = ProcRoot::system();
        let me = std::process::id();
        let before = count(&mut proc, me).unwrap();
        let expected = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count() as u64;
        // Other test threads may map or unmap between the two reads.
        assert!(
            before > 5 && before.abs_diff(expected) < 50,
            "{before} vs {expected}"
        );
    }
}
