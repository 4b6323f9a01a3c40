//! Which instance a process belongs to: the configured rules in order, then `GroupBy`. Facts
//! that cost a file read (command line, executable, uid, cgroup) are fetched only when a rule or
//! template asks for them, through [`ProcessFacts`].

use crate::config::{Config, Criteria, Field, Template, UserSpec};
use crate::names;
use crate::proc::pid_cgroup;

/// What grouping may ask about one process. Implemented over /proc by the sampler and over
/// plain values in tests.
pub trait ProcessFacts {
    fn pid(&self) -> u32;
    fn comm(&self) -> &str;
    fn kernel_thread(&self) -> bool;
    /// Arguments joined by spaces; empty for kernel threads and zombies.
    fn cmdline(&mut self) -> &str;
    /// Full path of the executable, when it can be read.
    fn exe(&mut self) -> Option<&str>;
    fn uid(&mut self) -> Option<u32>;
    fn user(&mut self) -> Option<&str>;
    /// The cgroup path that represents the process (`proc::pid_cgroup::parse`), when it can be
    /// read.
    fn cgroup(&mut self) -> Option<&str>;
}

/// The outcome of grouping one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Sanitized instance name.
    pub name: String,
    /// The name came from a rule with no placeholders: report it even with no process.
    pub fixed: bool,
}

pub fn assign(config: &Config, facts: &mut dyn ProcessFacts) -> Option<Assignment> {
    for rule in &config.rules {
        if matches(&rule.criteria, facts) {
            return Some(Assignment {
                name: expand(&rule.name, facts),
                fixed: rule.name.fixed().is_some(),
            });
        }
    }
    config.group_by.as_ref().map(|template| Assignment {
        name: expand(template, facts),
        fixed: false,
    })
}

fn matches(criteria: &Criteria, facts: &mut dyn ProcessFacts) -> bool {
    if let Some(comm) = &criteria.comm_exact {
        if facts.comm() != comm {
            return false;
        }
    }
    if let Some(re) = &criteria.comm {
        if !re.is_match(facts.comm()) {
            return false;
        }
    }
    if let Some(re) = &criteria.cmdline {
        let cmdline = facts.cmdline();
        let subject = if cmdline.is_empty() && criteria.cmdline_falls_back_to_comm {
            facts.comm().to_string()
        } else {
            cmdline.to_string()
        };
        if !re.is_match(&subject) {
            return false;
        }
    }
    if let Some(re) = &criteria.exe {
        match facts.exe() {
            Some(exe) if re.is_match(exe) => {}
            _ => return false,
        }
    }
    if let Some(user) = &criteria.user {
        let matched = match user {
            UserSpec::Uid(uid) => facts.uid() == Some(*uid),
            UserSpec::Name(name) => facts.user() == Some(name.as_str()),
        };
        if !matched {
            return false;
        }
    }
    if let Some(re) = &criteria.cgroup {
        match facts.cgroup() {
            Some(path) if re.is_match(path) => {}
            _ => return false,
        }
    }
    true
}

/// Expands a template. Every placeholder but `{container}` expands to something: `{exe}` falls
/// back to the comm (kernel threads have no executable), `{user}` to the uid, an unreadable uid
/// or cgroup to `?`, and `{cgroup}` of the root cgroup is [`ROOT_CGROUP`].
///
/// `{container}` is empty for a process outside any container, because there is no container
/// to name: `"{container}:{comm}"` gives `:sshd` on the host and `3f4e2b1c9a8d:nginx` in a
/// container, and a Prometheus relabel rule splitting on `:` yields an empty `container` label,
/// which Prometheus treats as no label — what a host process is. A stand-in such as `host`
/// would be indistinguishable from a container of that name in the split label. A template that
/// expands to nothing at all (a bare `"{container}"`) is made `_` by the sanitizing.
fn expand(template: &Template, facts: &mut dyn ProcessFacts) -> String {
    let raw = template.expand(|field| match field {
        Field::Comm => comm_for_name(facts).to_string(),
        Field::Pid => facts.pid().to_string(),
        Field::Exe => match facts.exe() {
            Some(path) => basename(path).to_string(),
            None => comm_for_name(facts).to_string(),
        },
        Field::Uid => facts
            .uid()
            .map_or_else(|| "?".to_string(), |u| u.to_string()),
        Field::User => match facts.user() {
            Some(name) => name.to_string(),
            None => facts
                .uid()
                .map_or_else(|| "?".to_string(), |u| u.to_string()),
        },
        Field::Cgroup => match facts.cgroup() {
            Some(path) => match pid_cgroup::last_component(path) {
                "" => ROOT_CGROUP.to_string(),
                last => last.to_string(),
            },
            None => "?".to_string(),
        },
        Field::Container => facts
            .cgroup()
            .and_then(pid_cgroup::container_id)
            .unwrap_or("")
            .to_string(),
    });
    names::sanitize(&raw)
}

/// `{cgroup}` of a process in the root cgroup (kernel threads, and everything on a host where
/// nothing manages cgroups): `-`, the name systemd gives the root slice (`-.slice`). Never
/// empty, so `"{cgroup}:{comm}"` keeps its shape.
pub const ROOT_CGROUP: &str = "-";

/// `{comm}` of a kernel thread is its kind, the part before the first `/`: per-CPU and
/// per-device threads (`ksoftirqd/3`, `kworker/0:1H`, `irq/24-acpi`) would otherwise make an
/// instance each — hundreds on a large host, a cost and a cardinality nobody asked for. Matching
/// (`Process`, `Comm`) still sees the whole name.
fn comm_for_name(facts: &dyn ProcessFacts) -> &str {
    let comm = facts.comm();
    if facts.kernel_thread() {
        comm.split('/')
            .next()
            .filter(|k| !k.is_empty())
            .unwrap_or(comm)
    } else {
        comm
    }
}

fn basename(path: &str) -> &str {
    // A deleted executable shows as "/path/prog (deleted)".
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{ConfigNode, ConfigValue};

    /// Facts given as plain values.
    #[derive(Default, Clone)]
    pub struct Fixed {
        pub pid: u32,
        pub comm: String,
        pub kernel_thread: bool,
        pub cmdline: String,
        pub exe: Option<String>,
        pub uid: Option<u32>,
        pub user: Option<String>,
        pub cgroup: Option<String>,
    }

    impl ProcessFacts for Fixed {
        fn pid(&self) -> u32 {
            self.pid
        }
        fn comm(&self) -> &str {
            &self.comm
        }
        fn kernel_thread(&self) -> bool {
            self.kernel_thread
        }
        fn cmdline(&mut self) -> &str {
            &self.cmdline
        }
        fn exe(&mut self) -> Option<&str> {
            self.exe.as_deref()
        }
        fn uid(&mut self) -> Option<u32> {
            self.uid
        }
        fn user(&mut self) -> Option<&str> {
            self.user.as_deref()
        }
        fn cgroup(&mut self) -> Option<&str> {
            self.cgroup.as_deref()
        }
    }

    fn config(lines: &[(&str, &[&str])], blocks: Vec<ConfigNode>) -> Config {
        let mut nodes: Vec<ConfigNode> = lines
            .iter()
            .map(|(k, vs)| {
                ConfigNode::new(
                    k,
                    vs.iter()
                        .map(|v| ConfigValue::String(v.to_string()))
                        .collect(),
                )
            })
            .collect();
        nodes.extend(blocks);
        Config::from_nodes(&nodes).unwrap()
    }

    fn nginx() -> Fixed {
        Fixed {
            pid: 812,
            comm: "nginx".into(),
            cmdline: "nginx: worker process".into(),
            exe: Some("/usr/sbin/nginx".into()),
            uid: Some(33),
            user: Some("www-data".into()),
            ..Fixed::default()
        }
    }

    fn name(c: &Config, f: &Fixed) -> Option<String> {
        assign(c, &mut f.clone()).map(|a| a.name)
    }

    #[test]
    fn default_groups_by_comm() {
        let c = Config::default();
        assert_eq!(name(&c, &nginx()).as_deref(), Some("nginx"));
    }

    #[test]
    fn first_matching_rule_wins() {
        let c = config(
            &[
                ("ProcessMatch", &["workers", "worker process"]),
                ("Process", &["nginx"]),
            ],
            vec![],
        );
        let a = assign(&c, &mut nginx()).unwrap();
        assert_eq!(
            a,
            Assignment {
                name: "workers".into(),
                fixed: true
            }
        );
    }

    #[test]
    fn match_block_requires_every_criterion() {
        let block = |user: &str| ConfigNode {
            key: "Match".into(),
            values: vec![ConfigValue::String("web-{user}".into())],
            children: vec![
                ConfigNode::new("Comm", vec![ConfigValue::String("^ngi".into())]),
                ConfigNode::new("Exe", vec![ConfigValue::String("/sbin/".into())]),
                ConfigNode::new("User", vec![ConfigValue::String(user.into())]),
            ],
        };
        let c = config(&[("GroupBy", &[""])], vec![block("www-data")]);
        let a = assign(&c, &mut nginx()).unwrap();
        assert_eq!(
            a,
            Assignment {
                name: "web-www-data".into(),
                fixed: false
            }
        );
        let c = config(&[("GroupBy", &[""])], vec![block("33")]);
        assert_eq!(name(&c, &nginx()).as_deref(), Some("web-www-data"));
        let c = config(&[("GroupBy", &[""])], vec![block("root")]);
        assert_eq!(name(&c, &nginx()), None, "GroupBy \"\" drops the unmatched");
    }

    #[test]
    fn process_match_falls_back_to_comm_for_kernel_threads() {
        let c = config(
            &[("ProcessMatch", &["kw", "^kworker"]), ("GroupBy", &[""])],
            vec![],
        );
        let kworker = Fixed {
            pid: 9,
            comm: "kworker/0:1".into(),
            kernel_thread: true,
            ..Fixed::default()
        };
        assert_eq!(name(&c, &kworker).as_deref(), Some("kw"));
    }

    #[test]
    fn placeholders_and_fallbacks() {
        let c = config(&[("GroupBy", &["{user}:{exe}:{uid}:{pid}"])], vec![]);
        assert_eq!(name(&c, &nginx()).as_deref(), Some("www-data:nginx:33:812"));
        let kthread = Fixed {
            pid: 2,
            comm: "kworker/u8:0".into(),
            kernel_thread: true,
            uid: Some(0),
            ..Fixed::default()
        };
        // No executable, no user name: the kernel thread's kind and the uid stand in.
        assert_eq!(name(&c, &kthread).as_deref(), Some("0:kworker:0:2"));
        // A user process keeps its whole comm, sanitized.
        let odd = Fixed {
            comm: "a/b".into(),
            ..nginx()
        };
        let c = config(&[("GroupBy", &["{comm}"])], vec![]);
        assert_eq!(name(&c, &odd).as_deref(), Some("a_b"));
        let deleted = Fixed {
            exe: Some("/opt/app/bin/server (deleted)".into()),
            ..nginx()
        };
        let c = config(&[("GroupBy", &["{exe}"])], vec![]);
        assert_eq!(name(&c, &deleted).as_deref(), Some("server"));
    }

    #[test]
    fn kernel_threads_are_named_by_kind_but_matched_by_full_name() {
        let ksoftirqd = Fixed {
            pid: 14,
            comm: "ksoftirqd/3".into(),
            kernel_thread: true,
            ..Fixed::default()
        };
        assert_eq!(
            name(&Config::default(), &ksoftirqd).as_deref(),
            Some("ksoftirqd")
        );
        let c = config(&[("Process", &["ksoftirqd/3"])], vec![]);
        assert_eq!(name(&c, &ksoftirqd).as_deref(), Some("ksoftirqd_3"));
    }

    const ID: &str = "8c2d2f4e7b1a03d9e6f5c4b3a2918070f6e5d4c3b2a190807f6e5d4c3b2a1908";

    fn in_cgroup(path: &str) -> Fixed {
        Fixed {
            cgroup: Some(path.into()),
            ..nginx()
        }
    }

    #[test]
    fn cgroup_and_container_placeholders() {
        let c = config(&[("GroupBy", &["{container}:{cgroup}:{comm}"])], vec![]);
        let docker = in_cgroup(&format!("/system.slice/docker-{ID}.scope"));
        // The scope's name is long; the sanitizing cuts the name at 63 bytes.
        assert_eq!(
            name(&c, &docker).as_deref(),
            Some(&*format!("8c2d2f4e7b1a:docker-{}", &ID[..43]))
        );
        let c = config(&[("GroupBy", &["{container}:{comm}"])], vec![]);
        assert_eq!(name(&c, &docker).as_deref(), Some("8c2d2f4e7b1a:nginx"));
        let k8s = in_cgroup(&format!("/kubepods/burstable/pod1234-5678/{ID}"));
        assert_eq!(name(&c, &k8s).as_deref(), Some("8c2d2f4e7b1a:nginx"));
        // Host processes: empty container, so the name starts with the separator.
        let service = in_cgroup("/system.slice/nginx.service");
        assert_eq!(name(&c, &service).as_deref(), Some(":nginx"));
        let conmon = in_cgroup(&format!("/machine.slice/libpod-conmon-{ID}.scope"));
        assert_eq!(name(&c, &conmon).as_deref(), Some(":nginx"));
        assert_eq!(name(&c, &nginx()).as_deref(), Some(":nginx"), "unreadable");
        // A bare {container} of a host process is sanitized to `_`, never empty.
        let c = config(&[("GroupBy", &["{container}"])], vec![]);
        assert_eq!(name(&c, &service).as_deref(), Some("_"));

        let c = config(&[("GroupBy", &["{cgroup}:{comm}"])], vec![]);
        assert_eq!(name(&c, &service).as_deref(), Some("nginx.service:nginx"));
        assert_eq!(name(&c, &in_cgroup("/")).as_deref(), Some("-:nginx"));
        assert_eq!(name(&c, &nginx()).as_deref(), Some("?:nginx"), "unreadable");
        let odd = in_cgroup("/a.slice/b\nc d");
        assert_eq!(name(&c, &odd).as_deref(), Some("b_c d:nginx"));
    }

    #[test]
    fn cgroup_criterion() {
        let block = |pattern: &str| ConfigNode {
            key: "Match".into(),
            values: vec![ConfigValue::String("containers".into())],
            children: vec![ConfigNode::new(
                "Cgroup",
                vec![ConfigValue::String(pattern.into())],
            )],
        };
        let c = config(
            &[("GroupBy", &[""])],
            vec![block(r"^/system\.slice/docker-")],
        );
        let docker = in_cgroup(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(name(&c, &docker).as_deref(), Some("containers"));
        assert_eq!(name(&c, &in_cgroup("/system.slice/cron.service")), None);
        assert_eq!(
            name(&c, &nginx()),
            None,
            "an unreadable cgroup matches nothing"
        );
        // The regex sees the whole path, not the last component alone.
        let c = config(&[("GroupBy", &[""])], vec![block("^docker-")]);
        assert_eq!(name(&c, &docker), None);
        // With other criteria, all must match.
        let both = ConfigNode {
            key: "Match".into(),
            values: vec![ConfigValue::String("web-{container}".into())],
            children: vec![
                ConfigNode::new("Comm", vec![ConfigValue::String("^nginx$".into())]),
                ConfigNode::new("Cgroup", vec![ConfigValue::String("docker".into())]),
            ],
        };
        let c = config(&[("GroupBy", &["{comm}"])], vec![both]);
        assert_eq!(name(&c, &docker).as_deref(), Some("web-8c2d2f4e7b1a"));
        let other = Fixed {
            comm: "redis".into(),
            ..docker.clone()
        };
        assert_eq!(name(&c, &other).as_deref(), Some("redis"));
    }
}
