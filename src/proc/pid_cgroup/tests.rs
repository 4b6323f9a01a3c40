//! Unit tests of [`super`] (pid_cgroup).

use super::*;

const ID: &str = "3f4e2b1c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
const SHORT: &str = "3f4e2b1c9a8d";

fn chosen(content: &str) -> Option<&str> {
    parse(content.as_bytes()).map(|p| std::str::from_utf8(p).unwrap())
}

#[test]
fn pure_v2() {
    assert_eq!(
        chosen("0::/system.slice/nginx.service\n"),
        Some("/system.slice/nginx.service")
    );
    assert_eq!(chosen("0::/\n"), Some("/"));
    assert_eq!(
        chosen("0::/user.slice/user-1000.slice/session-3.scope\n"),
        Some("/user.slice/user-1000.slice/session-3.scope")
    );
}

#[test]
fn pure_v1() {
    let v1 = "12:pids:/system.slice/cron.service\n\
                  11:cpu,cpuacct:/system.slice/cron.service\n\
                  5:memory:/system.slice/cron.service\n\
                  1:name=systemd:/system.slice/cron.service\n";
    assert_eq!(chosen(v1), Some("/system.slice/cron.service"));
    // Docker's cgroupfs driver on a v1 host without systemd: every controller, no systemd.
    let docker = format!("4:memory:/docker/{ID}\n3:cpuset:/docker/{ID}\n2:cpu:/docker/{ID}\n");
    assert_eq!(chosen(&docker), Some(format!("/docker/{ID}").as_str()));
    // Only the systemd line is deeper than the root.
    assert_eq!(
        chosen("3:memory:/\n1:name=systemd:/system.slice/a.service\n"),
        Some("/system.slice/a.service")
    );
    assert_eq!(chosen("3:memory:/\n1:name=systemd:/\n"), Some("/"));
}

#[test]
fn hybrid_prefers_a_non_root_v2_path_then_systemd_then_the_first_v1() {
    let systemd_service = "9:name=systemd:/system.slice/ssh.service\n\
                               4:memory:/system.slice/ssh.service\n\
                               0::/system.slice/ssh.service\n";
    assert_eq!(chosen(systemd_service), Some("/system.slice/ssh.service"));
    // v2 deeper than systemd's v1 view: v2 wins wherever its line is.
    let moved = "9:name=systemd:/\n4:memory:/\n0::/capture-test-7-0\n";
    assert_eq!(chosen(moved), Some("/capture-test-7-0"));
    // v2 at the root: systemd's path.
    let v2_root = "9:name=systemd:/user.slice/x.scope\n4:memory:/other\n0::/\n";
    assert_eq!(chosen(v2_root), Some("/user.slice/x.scope"));
    // v2 and systemd at the root (this project's own build machine): the first deeper v1.
    let this_box = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/c0a6b2f834e4030b\n\
                        3:cpuset:/elsewhere\n1:cpu:/\n0::/\n";
    assert_eq!(chosen(this_box), Some("/process_api/c0a6b2f834e4030b"));
    // Root everywhere.
    assert_eq!(chosen("9:name=systemd:/\n4:memory:/\n0::/\n"), Some("/"));
}

#[test]
fn odd_but_valid_lines() {
    // No newline at the end, blank lines, a colon inside the path, a deleted v2 cgroup.
    assert_eq!(chosen("0::/a.slice/b"), Some("/a.slice/b"));
    assert_eq!(chosen("\n0::/x\n\n"), Some("/x"));
    assert_eq!(
        chosen("0::/machine.slice/a:b\n"),
        Some("/machine.slice/a:b")
    );
    assert_eq!(chosen("0::/gone.scope (deleted)\n"), Some("/gone.scope"));
    // A cgroup namespace shows ancestors outside it as `..`.
    assert_eq!(chosen("0::/../../sibling\n"), Some("/../../sibling"));
    // Names that are not UTF-8 come back as bytes.
    assert_eq!(parse(b"0::/caf\xe9\n"), Some(&b"/caf\xe9"[..]));
}

#[test]
fn very_long_lines() {
    let deep = format!("/{}", vec!["a".repeat(200); 20].join("/"));
    let content = format!("5:memory:{deep}\n0::{deep}/leaf\n");
    assert_eq!(chosen(&content), Some(format!("{deep}/leaf").as_str()));
    let huge = format!("0::/{}\n", "x".repeat(READ_LIMIT * 2));
    assert_eq!(
        parse(huge.as_bytes()).map(<[u8]>::len),
        Some(READ_LIMIT * 2 + 1)
    );
    // What a read cut at READ_LIMIT leaves: a line without its end, still a path.
    assert_eq!(
        parse(&huge.as_bytes()[..READ_LIMIT]).map(<[u8]>::len),
        Some(READ_LIMIT - 3)
    );
}

#[test]
fn empty_and_garbage() {
    for bad in [
        "",
        "\n",
        "\n\n",
        "garbage",
        "0:/x\n",
        "0::x\n",
        "0::\n",
        "::/x\n",
        "a::/x\n",
        "-1::/x\n",
        "0::/x\nnot a line\n",
        "\u{0}\u{0}\u{0}",
    ] {
        assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
    }
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert_eq!(parse(&binary), None);
}

#[test]
fn last_components() {
    assert_eq!(
        last_component("/system.slice/nginx.service"),
        "nginx.service"
    );
    assert_eq!(last_component("/docker"), "docker");
    assert_eq!(last_component("/"), "");
    assert_eq!(last_component(""), "");
}

#[test]
fn container_ids_of_every_runtime() {
    let cases = [
        // Docker: cgroupfs driver (v1), systemd driver (v1 and v2), rootless.
        format!("/docker/{ID}"),
        format!("/system.slice/docker-{ID}.scope"),
        format!("/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope"),
        // Docker in Docker, cgroupfs driver: the innermost container.
        format!("/docker/{}/docker/{ID}", "a".repeat(64)),
        // Podman: systemd cgroup manager (root and rootless), cgroupfs, --cgroups=split.
        format!("/machine.slice/libpod-{ID}.scope"),
        format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
        format!("/libpod_parent/libpod-{ID}"),
        format!("/machine.slice/libpod-{ID}.scope/container"),
        format!(
            "/machine.slice/machine-libpod_pod_{}.slice/libpod-{ID}.scope",
            "b".repeat(64)
        ),
        // containerd / Kubernetes: systemd driver, cgroupfs driver.
        format!(
            "/kubepods.slice/kubepods-burstable.slice/\
                 kubepods-burstable-pod9b2a3c4d_1e2f_4a5b_8c7d_0e1f2a3b4c5d.slice/\
                 cri-containerd-{ID}.scope"
        ),
        format!("/system.slice/cri-containerd-{ID}.scope"),
        format!("/kubepods/burstable/pod9b2a3c4d-1e2f-4a5b-8c7d-0e1f2a3b4c5d/{ID}"),
        format!("/kubepods/besteffort/pod9b2a3c4d-1e2f-4a5b-8c7d-0e1f2a3b4c5d/{ID}"),
        format!("/kubepods/{ID}"),
        // Kubernetes with Docker (dockershim), systemd driver.
        format!(
            "/kubepods.slice/kubepods-pod9b2a3c4d_1e2f_4a5b_8c7d_0e1f2a3b4c5d.slice/\
                 docker-{ID}.scope"
        ),
        // CRI-O: systemd driver, cgroupfs driver.
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/\
                 kubepods-besteffort-pod9b2a3c4d_1e2f_4a5b_8c7d_0e1f2a3b4c5d.slice/\
                 crio-{ID}.scope"
        ),
        format!("/kubepods/pod9b2a3c4d-1e2f-4a5b-8c7d-0e1f2a3b4c5d/{ID}"),
        // systemd running inside a container: a sub-cgroup of the container's.
        format!("/system.slice/docker-{ID}.scope/init.scope"),
        format!("/system.slice/docker-{ID}.scope/system.slice/nginx.service"),
        format!("/docker/{ID}/init.scope"),
        // Plain last component, any parent.
        format!("/{ID}"),
    ];
    for path in &cases {
        assert_eq!(container_id(path), Some(SHORT), "{path}");
    }
    // Upper case is not what runtimes write, but it is still the id.
    let upper = ID.to_ascii_uppercase();
    assert_eq!(
        container_id(&format!("/docker/{upper}")),
        Some(&upper[..12])
    );
}

#[test]
fn no_container_id() {
    let cases = [
        "/".to_string(),
        String::new(),
        "/system.slice/nginx.service".into(),
        "/system.slice/docker.service".into(),
        "/system.slice/containerd.service".into(),
        "/user.slice/user-1000.slice/session-2.scope".into(),
        "/init.scope".into(),
        // Monitors beside the container, not in it.
        format!("/machine.slice/libpod-conmon-{ID}.scope"),
        format!(
            "/kubepods.slice/kubepods-burstable.slice/\
                 kubepods-burstable-pod9b2a3c4d_1e2f_4a5b_8c7d_0e1f2a3b4c5d.slice/\
                 crio-conmon-{ID}.scope"
        ),
        "/libpod_parent/conmon".into(),
        // A Podman pod's own cgroup (named after the pod id) and what runs beside its
        // containers.
        format!("/libpod_parent/{ID}/conmon"),
        format!("/machine.slice/machine-libpod_pod_{ID}.slice"),
        // Kubernetes pod cgroups: the pod's uid is not a container id.
        "/kubepods/burstable/pod9b2a3c4d-1e2f-4a5b-8c7d-0e1f2a3b4c5d".into(),
        // Too short, too long, not hex, other runtimes' prefixes.
        format!("/docker/{}", &ID[..63]),
        format!("/docker/{ID}0"),
        format!("/docker/{}g", &ID[..63]),
        format!("/system.slice/docker-{}.scope", &ID[..32]),
        format!("/system.slice/rkt-{ID}.scope"),
        format!("/system.slice/{ID}.scope"),
        format!("/docker-{ID}.slice"),
        // 32 hex digits: not a container id.
        "/process_api/c0a6b2f834e4030bfa92f74daf17cfc5".into(),
        // Multi-byte characters where the id would be: no slicing panic.
        format!("/docker/{}", "é".repeat(32)),
    ];
    for path in &cases {
        assert_eq!(container_id(path), None, "{path}");
    }
}

/// Every live /proc/PID/cgroup parses, and agrees with procfs-core's reading of it.
#[test]
fn agrees_with_procfs_on_live_processes() {
    use procfs_core::FromRead;
    let mut compared = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(content) = std::fs::read(entry.path().join("cgroup")) else {
            continue;
        };
        let Ok(theirs) = procfs_core::ProcessCGroups::from_read(&content[..]) else {
            continue;
        };
        let ours = parse(&content).expect("a live /proc/PID/cgroup parses");
        let deeper = |g: &&procfs_core::ProcessCGroup| g.pathname != "/";
        let expected = theirs
            .0
            .iter()
            .filter(deeper)
            .find(|g| g.hierarchy == 0)
            .or_else(|| {
                theirs
                    .0
                    .iter()
                    .filter(deeper)
                    .find(|g| g.controllers.iter().any(|c| c == "name=systemd"))
            })
            .or_else(|| theirs.0.iter().filter(deeper).find(|g| g.hierarchy != 0))
            .map_or("/", |g| g.pathname.as_str());
        assert_eq!(String::from_utf8_lossy(ours), expected);
        compared += 1;
    }
    assert!(compared > 0);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-zA-Z0-9_.@:-]{1,16}", 1..6)
            .prop_map(|c| format!("/{}", c.join("/")))
    }

    proptest! {
        /// The unified (v2) path is chosen over any v1 controller's, in any line order,
        /// with its ` (deleted)` suffix dropped.
        #[test]
        fn unified_path_comes_back(
            unified in path(),
            deleted in any::<bool>(),
            v1 in prop::collection::vec((1u32..14, "[a-z_,]{1,20}", path()), 0..6),
            at in any::<prop::sample::Index>(),
        ) {
            let mut lines: Vec<String> = v1
                .iter()
                .map(|(id, controllers, p)| format!("{id}:{controllers}:{p}"))
                .collect();
            let suffix = if deleted { " (deleted)" } else { "" };
            lines.insert(at.index(lines.len() + 1), format!("0::{unified}{suffix}"));
            let content = lines.join("\n") + "\n";
            prop_assert_eq!(parse(content.as_bytes()), Some(unified.as_bytes()));
        }

        /// A container's scope anywhere below any parent gives the short id; the last
        /// component never holds a `/`.
        #[test]
        fn container_ids_come_back(
            parent in path(),
            id in "[0-9a-f]{64}",
            runtime in prop::sample::select(RUNTIME_PREFIXES.to_vec()),
            scope in any::<bool>(),
            child in prop::option::of("[a-z]{1,8}"),
        ) {
            let mut path = format!("{parent}/{runtime}{id}{}", if scope { ".scope" } else { "" });
            if let Some(child) = &child {
                path = format!("{path}/{child}");
            }
            prop_assert_eq!(container_id(&path), Some(&id[..SHORT_ID_LEN]));
            let last = last_component(&path);
            prop_assert!(!last.contains('/') && path.ends_with(last));
        }

        /// Any bytes: no panic; a path is absolute and one line of the input.
        #[test]
        fn arbitrary_bytes(content in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Some(path) = parse(&content) {
                prop_assert!(path.starts_with(b"/") && !path.contains(&b'\n'));
                let text = String::from_utf8_lossy(path);
                if let Some(id) = container_id(&text) {
                    prop_assert!(id.len() == SHORT_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()));
                }
            }
        }
    }
}
