//! The `TASKSTATS` family on generic netlink: its id, asked of the generic-netlink controller by
//! name, and the generic-netlink header (`struct genlmsghdr`) that frames every message to and
//! from it. The one place that resolves and frames for both users of the family, the exit
//! listener ([`crate::exits::source`]) and the live query ([`super::query`]); the socket is
//! theirs, the netlink plumbing [`crate::net::netlink::socket`]'s.
//!
//! Kernel behaviour relied on (net/netlink/genetlink.c): the controller has the fixed id
//! `GENL_ID_CTRL`; `CTRL_CMD_GETFAMILY` with `CTRL_ATTR_FAMILY_NAME` is answered, without
//! privilege, by one message whose `CTRL_ATTR_FAMILY_ID` (u16) is the family's id, or by
//! `ENOENT` when no such family is registered (a kernel without `CONFIG_TASKSTATS`). The id is
//! given at registration and stays while the kernel runs.

use super::FAMILY_NAME;
use crate::net::netlink::socket::{attributes, exact_answer, put_attribute, Socket, NLM_F_REQUEST};
use std::io;

/// Generic netlink's controller, which names families (linux/genetlink.h).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// `struct genlmsghdr`: command, version, reserved.
pub(crate) const GENL_HDRLEN: usize = 4;
/// `TASKSTATS_GENL_VERSION`, and the controller's version 1 too.
const GENL_VERSION: u8 = 1;

/// Appends `struct genlmsghdr` for `cmd`, version 1.
pub(crate) fn genl_header(out: &mut Vec<u8>, cmd: u8) {
    out.extend_from_slice(&[cmd, GENL_VERSION, 0, 0]);
}

/// A generic-netlink message's command and attributes (what follows its header); `None` when
/// the payload is shorter than the header.
pub(crate) fn genl_payload(payload: &[u8]) -> Option<(u8, &[u8])> {
    Some((*payload.first()?, payload.get(GENL_HDRLEN..)?))
}

/// The taskstats family's id, from the generic-netlink controller: `NotFound` when the kernel
/// has none.
pub(crate) fn family_id(socket: &mut Socket) -> io::Result<u16> {
    let mut name = FAMILY_NAME.as_bytes().to_vec();
    name.push(0);
    let seq = socket.request(GENL_ID_CTRL, NLM_F_REQUEST, |out| {
        genl_header(out, CTRL_CMD_GETFAMILY);
        put_attribute(out, CTRL_ATTR_FAMILY_NAME, &name);
    })?;
    let answer = socket.receive_until(|datagram| {
        exact_answer(datagram, seq, GENL_ID_CTRL, |payload| {
            let attrs = genl_payload(payload).map_or(&[][..], |(_, attrs)| attrs);
            for attribute in attributes(attrs) {
                let (kind, value) = attribute?;
                if kind == CTRL_ATTR_FAMILY_ID {
                    if let Some(id) = value.get(..2) {
                        return Ok(Some(u16::from_ne_bytes([id[0], id[1]])));
                    }
                }
            }
            Ok(None)
        })
    });
    let missing = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the generic-netlink controller named no TASKSTATS family",
        )
    };
    match answer {
        Ok(answer) => answer.flatten().ok_or_else(missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(missing()),
        Err(e) => Err(e),
    }
}
