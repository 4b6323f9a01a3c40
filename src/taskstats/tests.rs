//! Unit tests of [`super`] (the `struct taskstats` parser and exit notifications).

use super::*;
use crate::net::netlink::socket::{begin_nested, end_nested, put_attribute};

/// A record of `len` bytes, as a kernel of `version` fills it, with recognisable values.
fn record(version: u16, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len];
    let put64 = |r: &mut Vec<u8>, offset: usize, value: u64| {
        if offset + 8 <= r.len() {
            r[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        }
    };
    let put32 = |r: &mut Vec<u8>, offset: usize, value: u32| {
        if offset + 4 <= r.len() {
            r[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        }
    };
    r[..2].copy_from_slice(&version.to_ne_bytes());
    put32(&mut r, 4, 256); // exit(1)
    r[8] = AFORK;
    put64(&mut r, 16, 3);
    put64(&mut r, 24, 4_000);
    put64(&mut r, 32, 5);
    put64(&mut r, 40, 6_000);
    put64(&mut r, 48, 7);
    put64(&mut r, 56, 8_000);
    put64(&mut r, 72, 11_000_000);
    r[80..80 + 7].copy_from_slice(b"cc1plus");
    put32(&mut r, 120, 1000);
    put32(&mut r, 124, 100);
    put32(&mut r, 128, 4242);
    put32(&mut r, 132, 4200);
    put32(&mut r, 136, 1_796_000_000);
    put64(&mut r, 144, 1_500_000);
    put64(&mut r, 152, 10_000);
    put64(&mut r, 160, 2_500);
    put64(&mut r, 168, 900);
    put64(&mut r, 176, 2);
    put64(&mut r, 216, 11);
    put64(&mut r, 224, 1 << 20);
    put64(&mut r, 232, 13);
    put64(&mut r, 240, 14);
    put64(&mut r, 248, 4096);
    put64(&mut r, 256, 1 << 20);
    put64(&mut r, 264, 0);
    put64(&mut r, 272, 21);
    put64(&mut r, 280, 22);
    put64(&mut r, 312, 23);
    put64(&mut r, 320, 24_000);
    put32(&mut r, 368, 4240);
    r
}

#[test]
fn every_field_of_a_version_13_record() {
    let t = Taskstats::parse(&record(13, 416)).unwrap();
    assert_eq!(t.version, 13);
    assert_eq!(t.exit_code, 256);
    assert!(t.never_exec());
    assert_eq!(t.comm, b"cc1plus");
    assert_eq!((t.uid, t.gid, t.pid, t.ppid), (1000, 100, 4242, 4200));
    assert_eq!(t.start_secs, 1_796_000_000);
    assert_eq!(t.elapsed_us, 1_500_000);
    assert_eq!((t.user_us, t.system_us), (10_000, 2_500));
    assert_eq!(t.runtime_ns, 11_000_000);
    // 11 ms measured, split 4:1 as the ticks were.
    assert_eq!(t.cpu_us(), (8_800, 2_200));
    assert_eq!((t.minor_faults, t.major_faults), (900, 2));
    assert_eq!((t.read_chars, t.write_chars), (11, 1 << 20));
    assert_eq!((t.read_syscalls, t.write_syscalls), (13, 14));
    assert_eq!((t.read_bytes, t.write_bytes), (4096, 1 << 20));
    assert_eq!((t.cpu_delay_count, t.cpu_delay_ns), (3, 4_000));
    assert_eq!((t.blkio_delay_count, t.blkio_delay_ns), (5, 6_000));
    assert_eq!((t.swapin_delay_count, t.swapin_delay_ns), (7, 8_000));
    assert_eq!(t.voluntary_switches, Some(21));
    assert_eq!(t.involuntary_switches, Some(22));
    assert_eq!(t.reclaim_delay_count, Some(23));
    assert_eq!(t.reclaim_delay_ns, Some(24_000));
    assert_eq!(t.tgid, Some(4240));
}

#[test]
fn newer_and_longer_records_read_the_same_fields() {
    // This machine's 6.18 kernel sends 560 bytes; what it appended is not read.
    let mut long = record(16, 560);
    long[416..].fill(0xff);
    let t = Taskstats::parse(&long).unwrap();
    assert_eq!(t.version, 16);
    assert_eq!(t.pid, 4242);
    assert_eq!(t.tgid, Some(4240));
    assert_eq!(t.user_us, 10_000);
}

#[test]
fn fields_an_older_kernel_lacks_are_none() {
    // Version 8 ends after thrashing_delay_total (344 bytes): no thread group id.
    let t = Taskstats::parse(&record(8, 344)).unwrap();
    assert_eq!(t.tgid, None);
    assert_eq!(t.reclaim_delay_ns, Some(24_000));
    // The shortest accepted: no context switches either.
    let t = Taskstats::parse(&record(1, MIN_LEN)).unwrap();
    assert_eq!(t.voluntary_switches, None);
    assert_eq!(t.write_bytes, 1 << 20);
}

#[test]
fn cpu_time_with_no_tick_is_all_user_and_never_overflows() {
    let t = Taskstats {
        runtime_ns: 3_000_000,
        ..Taskstats::default()
    };
    assert_eq!(t.cpu_us(), (3_000, 0));
    let t = Taskstats {
        runtime_ns: u64::MAX,
        user_us: u64::MAX,
        system_us: u64::MAX,
        ..Taskstats::default()
    };
    let (user, system) = t.cpu_us();
    assert_eq!(user + system, u64::MAX / 1_000);
}

#[test]
fn short_records_and_version_0_are_refused() {
    assert!(Taskstats::parse(&record(13, MIN_LEN - 1)).is_err());
    assert!(Taskstats::parse(&[]).is_err());
    assert!(Taskstats::parse(&record(0, 416)).is_err());
}

#[test]
fn a_comm_without_nul_fills_its_32_bytes() {
    let mut r = record(13, 416);
    r[80..112].fill(b'x');
    assert_eq!(Taskstats::parse(&r).unwrap().comm, vec![b'x'; 32]);
}

/// The attributes of an exit notification: padding, the thread's aggregate, and, for the last
/// thread of a multi-threaded process, the group's.
fn exit_message(stats: &[u8], tgid: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    put_attribute(&mut out, 6, &[]); // TASKSTATS_TYPE_NULL
    let aggr = begin_nested(&mut out, 4);
    put_attribute(&mut out, 1, &4242u32.to_ne_bytes());
    put_attribute(&mut out, 3, stats);
    end_nested(&mut out, aggr);
    if let Some(tgid) = tgid {
        let aggr = begin_nested(&mut out, 5);
        put_attribute(&mut out, 2, &tgid.to_ne_bytes());
        put_attribute(&mut out, 3, stats);
        end_nested(&mut out, aggr);
    }
    out
}

#[test]
fn an_exit_notification_gives_the_thread_and_whether_its_process_ended() {
    let stats = record(13, 416);
    let exit = parse_exit(&exit_message(&stats, None)).unwrap();
    assert_eq!(exit.thread.as_ref().map(|t| t.pid), Some(4242));
    assert_eq!(exit.process_ended, None);
    let exit = parse_exit(&exit_message(&stats, Some(4240))).unwrap();
    assert_eq!(exit.process_ended, Some(4240));
}

#[test]
fn a_cut_notification_is_an_error_not_a_panic() {
    let message = exit_message(&record(13, 416), Some(4240));
    for len in 0..message.len() {
        let _ = parse_exit(&message[..len]);
    }
    assert!(parse_exit(&message[..100]).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
        let _ = Taskstats::parse(&bytes);
        let _ = parse_exit(&bytes);
    }
}
