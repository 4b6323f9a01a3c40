//! `/proc/<pid>/cgroup`: the control group a process is in, for the `{cgroup}` and
//! `{container}` placeholders and the `Cgroup` criterion. [`parse`] picks the one path that
//! represents the process; [`container_id`] finds a container runtime's id in such a path.
//!
//! The file has one `hierarchy-id:controllers:path` line per mounted hierarchy: a single
//! `0::/path` line on a pure cgroup v2 host, one line per v1 hierarchy (`4:memory:/path`,
//! `1:name=systemd:/path`) plus, on a hybrid host, the `0::` line of the v2 hierarchy. Paths are
//! relative to the reader's cgroup namespace, so a collectd inside a container with its own
//! cgroup namespace sees `/` for everything in it.
//!
//! Read only when a rule or template asks for it, and then once per process (and again after
//! an exec), so a regex-free hand parser is plenty; it borrows from the file, never panics and
//! answers `None` to anything that is not shaped like the kernel's output.

/// Enough for a dozen hierarchies with deep paths; the rest of a longer file is not read, and
/// its last, cut line is taken as it is.
pub const READ_LIMIT: usize = 64 * 1024;

/// The path that represents the process: the first of these that is not the root `/`:
///
/// 1. the cgroup v2 line, `0::/path` — where systemd, Docker, Podman, containerd and CRI-O put
///    processes on any current host;
/// 2. the v1 `name=systemd` line — on a hybrid or v1 host systemd's own tree (services, scopes,
///    slices), which container runtimes driven by systemd also use;
/// 3. the first other v1 line, in file order — runtimes with the `cgroupfs` driver on a v1 host
///    put containers into every controller's hierarchy (`/docker/<id>`), and some tools use only
///    one controller (`memory:/batch/job7`);
///
/// and `/` when the process is at the root everywhere (kernel threads, most of a host without
/// systemd). Root lines are skipped at every step, `name=systemd` included: a process that
/// systemd leaves at the root but that sits deeper in a v1 controller is better described by
/// the deeper path.
///
/// A v2 path of a cgroup that was removed while the process is in it (a zombie's) ends in
/// ` (deleted)`; the suffix is dropped. The bytes are returned as the kernel wrote them (cgroup
/// names are arbitrary bytes); the caller converts them, lossily, to text.
///
/// `None` for an empty file or any line that is not `digits:controllers:/path`.
pub fn parse(content: &[u8]) -> Option<&[u8]> {
    let mut unified: Option<&[u8]> = None;
    let mut systemd: Option<&[u8]> = None;
    let mut other_v1: Option<&[u8]> = None;
    let mut lines = 0usize;
    for line in content.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let (id, rest) = split_colon(line)?;
        let (controllers, path) = split_colon(rest)?;
        if id.is_empty() || !id.iter().all(u8::is_ascii_digit) || !path.starts_with(b"/") {
            return None;
        }
        let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
        lines += 1;
        if path == b"/" {
            continue;
        }
        if id == b"0" && controllers.is_empty() {
            unified.get_or_insert(path);
        } else if controllers
            .split(|&b| b == b',')
            .any(|c| c == b"name=systemd")
        {
            systemd.get_or_insert(path);
        } else {
            other_v1.get_or_insert(path);
        }
    }
    if lines == 0 {
        return None;
    }
    Some(unified.or(systemd).or(other_v1).unwrap_or(b"/"))
}

fn split_colon(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = bytes.iter().position(|&b| b == b':')?;
    Some((&bytes[..colon], &bytes[colon + 1..]))
}

/// The last component of a cgroup path, for `{cgroup}`; empty for the root `/`.
pub fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Prefixes container runtimes give a container's cgroup (`<prefix><64 hex>`, with `.scope`
/// when systemd manages it): Docker, Podman, containerd's CRI plugin (Kubernetes), CRI-O.
const RUNTIME_PREFIXES: [&str; 4] = ["docker-", "libpod-", "cri-containerd-", "crio-"];

/// Hex digits of the short container id, as `docker ps`, `podman ps` and `crictl ps` show it.
pub const SHORT_ID_LEN: usize = 12;

/// The short id (first 12 hex digits) of the container a cgroup path belongs to, or `None` for
/// a process outside any container. Components are looked at from the last to the first, so a
/// process in a sub-cgroup of a container (systemd inside it, Podman's `--cgroups=split`) still
/// gets its container's id, and nested containers the innermost one's. A component is a
/// container's when it is
///
/// - `<runtime>-<64 hex>`, optionally followed by `.scope`, for the runtimes of
///   [`RUNTIME_PREFIXES`]: `docker-<id>.scope` (Docker, systemd driver), `libpod-<id>.scope`
///   and `/libpod_parent/libpod-<id>` (Podman), `cri-containerd-<id>.scope`
///   (containerd/Kubernetes, systemd driver), `crio-<id>.scope` (CRI-O);
/// - a bare `<64 hex>` that is the last component (`/kubepods/burstable/pod<uid>/<id>`,
///   containerd and CRI-O with the cgroupfs driver) or follows `docker` (`/docker/<id>`,
///   Docker's cgroupfs driver). Elsewhere a bare hex name is not taken: Podman names pod
///   cgroups after the pod's 64-hex id, and the processes around a pod's containers are not in
///   any of them.
///
/// Container monitors are not their containers: Podman's and CRI-O's conmon run in
/// `libpod-conmon-<id>.scope` and `crio-conmon-<id>.scope`, next to the container's scope, just
/// as Docker's containerd-shim runs outside the container's cgroup. They get no id, so what is
/// reported under a container is what `docker stats` or `podman stats` count for it.
pub fn container_id(path: &str) -> Option<&str> {
    let mut components = path.rsplit('/').peekable();
    let mut last = true;
    while let Some(component) = components.next() {
        let parent = components.peek().copied();
        let name = component.strip_suffix(".scope").unwrap_or(component);
        // A runtime's prefix decides alone: `libpod-conmon-<id>.scope` is refused below for
        // what follows `libpod-`, and never taken as a bare name.
        let id = RUNTIME_PREFIXES
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .or_else(|| (last || parent == Some("docker")).then_some(component));
        if let Some(id) = id.filter(|id| is_full_id(id)) {
            return id.get(..SHORT_ID_LEN);
        }
        last = false;
    }
    None
}

fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests;
