//! [`ProcessFacts`] over /proc: each costly fact is read at most once per grouping, and only
//! if a rule or template asks for it.

use super::grouping::ProcessFacts;
use crate::names::sanitize_meta;
use crate::proc::{cmdline, pid_cgroup, pid_status, ProcRoot};
use crate::snapshot::MetaData;
use crate::users::UserNames;

pub struct ProcFacts<'a> {
    proc: &'a mut ProcRoot,
    users: &'a mut UserNames,
    pid: u32,
    comm: &'a str,
    kernel_thread: bool,
    cmdline: Option<String>,
    exe: Option<Option<String>>,
    uid: Option<Option<u32>>,
    cgroup: Option<Option<String>>,
}

impl<'a> ProcFacts<'a> {
    pub fn new(
        proc: &'a mut ProcRoot,
        users: &'a mut UserNames,
        pid: u32,
        comm: &'a str,
        kernel_thread: bool,
    ) -> Self {
        ProcFacts {
            proc,
            users,
            pid,
            comm,
            kernel_thread,
            cmdline: None,
            exe: None,
            uid: None,
            cgroup: None,
        }
    }
}

impl ProcFacts<'_> {
    /// The process's meta data: pid, uid, user, comm and exe, read now unless grouping already
    /// did; the command line only if grouping read it (the bool says so; kernel threads have
    /// none to read).
    pub fn meta_data(&mut self) -> (MetaData, bool) {
        let text = |s: &str| (!s.is_empty()).then(|| sanitize_meta(s).into());
        let uid = self.uid();
        let user = self.user().and_then(text);
        let exe = self.exe().and_then(text);
        let cmdline_read = self.kernel_thread || self.cmdline.is_some();
        let meta = MetaData {
            pid: Some(self.pid),
            uid,
            user,
            comm: text(self.comm),
            exe,
            cmdline: self.cmdline.as_deref().and_then(text),
        };
        (meta, cmdline_read)
    }
}

impl ProcessFacts for ProcFacts<'_> {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn comm(&self) -> &str {
        self.comm
    }

    fn kernel_thread(&self) -> bool {
        self.kernel_thread
    }

    fn cmdline(&mut self) -> &str {
        if self.cmdline.is_none() {
            let joined = if self.kernel_thread {
                String::new()
            } else {
                self.proc
                    .read(Some(self.pid), "cmdline", cmdline::READ_LIMIT)
                    .map(cmdline::join)
                    .unwrap_or_default()
            };
            self.cmdline = Some(joined);
        }
        self.cmdline.as_deref().unwrap_or("")
    }

    fn exe(&mut self) -> Option<&str> {
        if self.exe.is_none() {
            let target = if self.kernel_thread {
                None
            } else {
                let link = self.proc.path(Some(self.pid), "exe");
                std::fs::read_link(link)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            };
            self.exe = Some(target);
        }
        self.exe.as_ref().and_then(|e| e.as_deref())
    }

    fn uid(&mut self) -> Option<u32> {
        if self.uid.is_none() {
            let uid = self
                .proc
                .read(Some(self.pid), "status", 16 * 1024)
                .ok()
                .and_then(pid_status::parse_real_uid);
            self.uid = Some(uid);
        }
        self.uid.flatten()
    }

    fn user(&mut self) -> Option<&str> {
        let uid = self.uid()?;
        self.users.name(uid)
    }

    fn cgroup(&mut self) -> Option<&str> {
        if self.cgroup.is_none() {
            // Kernel threads too: most sit at the root, but cgroup v1 lets some be moved.
            let path = self
                .proc
                .read(Some(self.pid), "cgroup", pid_cgroup::READ_LIMIT)
                .ok()
                .and_then(pid_cgroup::parse)
                .map(|p| String::from_utf8_lossy(p).into_owned());
            self.cgroup = Some(path);
        }
        self.cgroup.as_ref().and_then(|c| c.as_deref())
    }
}
