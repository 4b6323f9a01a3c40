//! Unit tests of [`super`] (grouping).

use super::*;
use crate::config::{ConfigNode, ConfigValue};

/// The fixture under the name the tests use (`crate::config::tests` imports it too).
pub use super::FixedFacts as Fixed;

/// A configuration of these options (each with string values) and blocks (also used by
/// `sampler::recorded`'s tests).
pub(crate) fn config(lines: &[(&str, &[&str])], blocks: Vec<ConfigNode>) -> Config {
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
