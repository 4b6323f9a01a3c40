//! One live process's taskstats record, asked for: a generic-netlink socket of its own (not
//! registered for exits, so nothing but answers comes to it), sending `TASKSTATS_CMD_GET` with
//! a tgid and reading the answer, for the delay accounting /proc does not show whole (the waits
//! for block I/O, swap-in and memory reclaim). It owns that socket and the request's framing;
//! the record's parsing is [`super`]'s, the family's id [`super::family`]'s. Blocking, with the
//! receive timeout `Socket::open` sets once: for the sampler thread, never the packet path.
//!
//! Kernel behaviour relied on (kernel/taskstats.c, `taskstats_user_cmd` → `cmd_attr_tgid` →
//! `fill_stats_for_tgid`; kernel/delayacct.c `delayacct_add_tsk`), Linux 2.6.19 or later with
//! `CONFIG_TASKSTATS`:
//! - `TASKSTATS_CMD_GET` is `GENL_ADMIN_PERM`: `EPERM` without `CAP_NET_ADMIN` (an
//!   `io::ErrorKind::PermissionDenied` here, for the caller to say once). The family is not
//!   namespace-aware: only the initial network namespace has it (`ENOENT` from the controller
//!   elsewhere, `NotFound` here), and the tgid is the caller's pid namespace's.
//! - `TASKSTATS_CMD_ATTR_TGID` (u32) is answered by one `TASKSTATS_CMD_NEW` message, no
//!   acknowledgement, whose `TASKSTATS_TYPE_AGGR_TGID` nest holds `TASKSTATS_TYPE_TGID` (the id
//!   asked) and `TASKSTATS_TYPE_STATS`; `ESRCH` when no such task is left (or only its
//!   zombie, reaped of its signal handlers). A thread's id finds its whole process.
//! - The record is the process's: the signal struct's record, to which every thread that has
//!   exited added its part at exit (`fill_tgid_exit`, from a process's second thread on), plus
//!   each live thread's (`delayacct_add_tsk`). So the delays, their counts and
//!   `cpu_run_*_total` (so [`Taskstats::cpu_us`]) include exited threads and do not go
//!   backwards while the process lives; except that a thread half-way through its exit may be
//!   counted twice for a moment (it is still in the thread list after adding itself), so a
//!   value may step back once by that much. `ac_utime`, `ac_stime`, `nvcsw` and `nivcsw`
//!   include exited threads only on kernels with "taskstats: retain dead thread stats in TGID
//!   queries" (this machine's 6.18 does: measured, 56 ms of user time for a process whose live
//!   threads had used 4); older ones sum them over live threads. The identity fields
//!   (`ac_pid`, `ac_comm`, `ac_uid`...) are not filled: zeros.
//! - The delays of block I/O, swap-in, reclaim, thrashing and compaction are counted only while
//!   `/proc/sys/kernel/task_delayacct` is 1 (the `delayacct` boot option sets it); otherwise
//!   they read 0. The CPU delay (`cpu_delay_total`, the scheduler's run-queue wait) and
//!   `cpu_run_virtual_total` are filled either way. See [`delay_accounting_enabled`].

use super::family::{family_id, genl_header, genl_payload};
use super::{
    parse_process, Taskstats, TASKSTATS_CMD_ATTR_TGID, TASKSTATS_CMD_GET, TASKSTATS_CMD_NEW,
};
use crate::net::netlink::socket::{
    exact_answer, message, put_attribute, RecvBuffer, Socket, NLM_F_REQUEST,
};
use std::io;

/// An answer is one message of about 600 bytes on 6.18 (a 560-byte record in its nest); a
/// datagram larger than this is refused, not read in part.
const ANSWER_BUFFER: usize = 8192;

/// Where the kernel says whether delay accounting is on.
const TASK_DELAYACCT: &str = "/proc/sys/kernel/task_delayacct";

/// A socket asking the kernel for live processes' taskstats records, one at a time.
pub struct TaskstatsQuery {
    socket: Socket,
    family: u16,
}

impl TaskstatsQuery {
    /// A `NETLINK_GENERIC` socket with the family's id resolved. `NotFound` without taskstats
    /// in the kernel (or outside the initial network namespace). Needs no privilege: a missing
    /// `CAP_NET_ADMIN` shows at the first [`TaskstatsQuery::process`].
    pub fn open() -> io::Result<TaskstatsQuery> {
        let mut socket = Socket::open(
            Some(rustix::net::netlink::GENERIC),
            RecvBuffer::Fixed(ANSWER_BUFFER),
        )?;
        let family = family_id(&mut socket)?;
        Ok(TaskstatsQuery { socket, family })
    }

    /// The record of process `tgid` (see the module's comment for what it sums); `Ok(None)`
    /// when no such process is left. `PermissionDenied` without `CAP_NET_ADMIN`; `InvalidData`
    /// for an answer that does not parse; `WouldBlock` when the kernel did not answer within
    /// the receive timeout (a late answer is skipped by the next call).
    pub fn process(&mut self, tgid: u32) -> io::Result<Option<Taskstats>> {
        let family = self.family;
        let seq = self
            .socket
            .send(|out, seq| request(out, family, seq, tgid))?;
        let answer = self
            .socket
            .receive_until(|datagram| answer(datagram, family, seq, tgid));
        match answer {
            Ok(stats) => Ok(Some(stats)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Writes into `out` the whole request for process `tgid`: the `nlmsghdr` (type `family`, a
/// plain request, sequence `seq`), the generic-netlink header for `TASKSTATS_CMD_GET`, and the
/// u32 attribute `TASKSTATS_CMD_ATTR_TGID`.
pub(crate) fn request(out: &mut Vec<u8>, family: u16, seq: u32, tgid: u32) {
    message(out, family, NLM_F_REQUEST, seq, |out| {
        genl_header(out, TASKSTATS_CMD_GET);
        put_attribute(out, TASKSTATS_CMD_ATTR_TGID, &tgid.to_ne_bytes());
    });
}

/// What one datagram says to the request `seq` for `tgid`: `None` when nothing (an earlier,
/// abandoned request's answer): wait for the next; the record; or the kernel's error (`ESRCH`:
/// no such process). A datagram that answers without a record is malformed.
pub(crate) fn answer(
    datagram: &[u8],
    family: u16,
    seq: u32,
    tgid: u32,
) -> io::Result<Option<Taskstats>> {
    let answered = exact_answer(datagram, seq, family, |payload| {
        match genl_payload(payload) {
            Some((TASKSTATS_CMD_NEW, attributes)) => parse_process(attributes, tgid),
            _ => Err(malformed("an answer that is not TASKSTATS_CMD_NEW")),
        }
    })?;
    match answered {
        None => Ok(None),
        Some(Some(stats)) => Ok(Some(stats)),
        Some(None) => Err(malformed("an acknowledgement without a record")),
    }
}

/// Whether the kernel counts the delays of block I/O, swap-in and memory reclaim
/// (`/proc/sys/kernel/task_delayacct`, Linux 5.14 or later); `None` when it does not say.
/// Read, never changed: turning it on is the operator's choice.
pub fn delay_accounting_enabled() -> Option<bool> {
    parse_switch(&std::fs::read_to_string(TASK_DELAYACCT).ok()?)
}

/// A sysctl's integer as a switch: non-zero is on.
fn parse_switch(text: &str) -> Option<bool> {
    text.trim().parse::<i64>().ok().map(|value| value != 0)
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
