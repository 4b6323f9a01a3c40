//! uid -> user name, for the `User` criterion and the `{user}` placeholder. Names come from the
//! system's user database (getpwuid_r, so LDAP/sssd users resolve as they do for `ps`) and are
//! cached: the lookup may be slow, and it happens on the sampler thread only, never in
//! collectd's read path.
//!
//! What is cached depends on what the database said. A name is kept. "No such user" is kept
//! for [`NO_SUCH_USER_FOR`], so a user created later (or a directory that answered "not found"
//! while it was still starting) is found within minutes. An error (sssd or LDAP not up yet at
//! boot, no memory, too many open files) is not an answer: the uid is asked again after
//! [`RETRY_FIRST`], then at doubling intervals up to [`RETRY_MAX`], so a directory that is down
//! costs one lookup per uid per few minutes, not one per process per cycle.

use std::collections::HashMap;
use std::ffi::CStr;
use std::time::{Duration, Instant};

/// How long "no such user" is believed.
pub const NO_SUCH_USER_FOR: Duration = Duration::from_secs(600);
/// After a failed lookup, the first retry comes this much later...
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// ...and the interval doubles up to this.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// At most this many uids are remembered; past it the cache starts over (each entry is asked
/// again once), so a host cycling through user namespaces' uids cannot grow it without end.
const MAX_ENTRIES: usize = 16_384;

/// What the user database said about one uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    NoSuchUser,
    /// The database could not answer (the errno getpwuid_r returned).
    Failed(i32),
}

#[derive(Debug)]
enum Entry {
    Found(String),
    NoSuchUser {
        until: Instant,
    },
    Failed {
        retry_at: Instant,
        backoff: Duration,
    },
}

pub struct UserNames {
    cache: HashMap<u32, Entry>,
    lookup: fn(u32) -> Lookup,
}

impl Default for UserNames {
    fn default() -> Self {
        UserNames::with_lookup(getpwuid)
    }
}

impl UserNames {
    /// A cache over another user database than the system's (tests).
    pub fn with_lookup(lookup: fn(u32) -> Lookup) -> UserNames {
        UserNames {
            cache: HashMap::new(),
            lookup,
        }
    }

    /// The name of `uid`, or `None` when the user database has no entry for it or cannot say.
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.name_at(uid, Instant::now())
    }

    /// [`name`](Self::name) as of `now`.
    pub fn name_at(&mut self, uid: u32, now: Instant) -> Option<&str> {
        let backoff = match self.cache.get(&uid) {
            Some(Entry::Found(_)) => None,
            Some(Entry::NoSuchUser { until }) if now < *until => None,
            Some(Entry::Failed { retry_at, .. }) if now < *retry_at => None,
            Some(Entry::Failed { backoff, .. }) => Some(Some(*backoff)),
            Some(Entry::NoSuchUser { .. }) | None => Some(None),
        };
        if let Some(previous_backoff) = backoff {
            if self.cache.len() >= MAX_ENTRIES && !self.cache.contains_key(&uid) {
                self.cache.clear();
            }
            let entry = match (self.lookup)(uid) {
                Lookup::Found(name) => Entry::Found(name),
                Lookup::NoSuchUser => Entry::NoSuchUser {
                    until: now + NO_SUCH_USER_FOR,
                },
                Lookup::Failed(errno) => {
                    let backoff = previous_backoff.map_or(RETRY_FIRST, |b| (b * 2).min(RETRY_MAX));
                    if previous_backoff.is_none() {
                        log::debug!(
                            "user database lookup of uid {uid} failed ({}); asked again in {} s",
                            std::io::Error::from_raw_os_error(errno),
                            backoff.as_secs()
                        );
                    }
                    Entry::Failed {
                        retry_at: now + backoff,
                        backoff,
                    }
                }
            };
            self.cache.insert(uid, entry);
        }
        match self.cache.get(&uid) {
            Some(Entry::Found(name)) => Some(name.as_str()),
            _ => None,
        }
    }
}

/// The system's user database, through getpwuid_r.
fn getpwuid(uid: u32) -> Lookup {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, `buf` outlives the reads of `pwd` below.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return match rc {
            // getpwuid_r(3): 0 with no result is "not found"; so are ENOENT, ESRCH, EBADF and
            // EPERM, which some NSS modules return for it.
            0 if result.is_null() || pwd.pw_name.is_null() => Lookup::NoSuchUser,
            0 => {
                // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
                let name = unsafe { CStr::from_ptr(pwd.pw_name) };
                Lookup::Found(name.to_string_lossy().into_owned())
            }
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Lookup::NoSuchUser,
            errno => Lookup::Failed(errno),
        };
    }
}

#[cfg(test)]
mod tests;
