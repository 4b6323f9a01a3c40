//! uid -> user name, for the `User` criterion and the `{user}` placeholder. Names come from the
//! system's user database (getpwuid_r, so LDAP/sssd users resolve as they do for `ps`) and are
//! cached: the lookup may be slow, and it happens on the sampler thread only, never in
//! collectd's read path.

use std::collections::HashMap;
use std::ffi::CStr;

#[derive(Default)]
pub struct UserNames {
    cache: HashMap<u32, Option<String>>,
}

impl UserNames {
    /// The name of `uid`, or `None` when the user database has no entry for it.
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.cache
            .entry(uid)
            .or_insert_with(|| lookup(uid))
            .as_deref()
    }
}

fn lookup(uid: u32) -> Option<String> {
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
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root_and_unknown_is_none() {
        let mut users = UserNames::default();
        assert_eq!(users.name(0), Some("root"));
        assert_eq!(users.name(4_000_000_000), None);
        assert_eq!(users.name(0), Some("root"));
    }
}
