# shellcheck shell=bash
# Helpers shared by scripts/demo.sh, scripts/test.sh, .ci/run and bench/lib.sh (which the
# benchmark scripts source). Source it; it defines functions and a few variables and runs nothing
# else.

# Repository root (this file lives in <root>/scripts).
CAPTURE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages the plugin needs to build, test and run: clang and libbpf-dev compile the eBPF
# owner programs (build.rs); libelf-dev and zlib1g-dev are what libbpf, built into the plugin,
# links against.
# shellcheck disable=SC2034 # used by the scripts that source this file
CAPTURE_APT_PACKAGES=(collectd-core libpcap-dev build-essential pkg-config iproute2 clang
  libbpf-dev libelf-dev zlib1g-dev)

# What the test command adds: nftables (the NAT test), prometheus (the Prometheus, alerting and
# dashboard tests), and the libraries of the stock collectd plugins the tests load, which
# collectd-core only suggests: libprotobuf-c1 and libmicrohttpd12 (write_prometheus), libyajl2
# (write_log's JSON, the meta data test), libgcrypt20 (network's encryption, the many-hosts test).
# shellcheck disable=SC2034 # used by the scripts that source this file
CAPTURE_TEST_APT_PACKAGES=(nftables prometheus libprotobuf-c1 libmicrohttpd12 libyajl2 libgcrypt20)

# Where cargo puts the plugin (`[lib] name = "capture"` in Cargo.toml).
capture_target_dir() {
  printf '%s\n' "${CARGO_TARGET_DIR:-$CAPTURE_ROOT/target}"
}
capture_so_path() {
  printf '%s/release/libcapture.so\n' "$(capture_target_dir)"
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_apt_packages PKG... : install the packages that are missing. Does nothing (and never
# touches apt) when all are present. As non-root it only warns.
ensure_apt_packages() {
  local missing=() p
  command -v dpkg-query >/dev/null 2>&1 || {
    log "not a Debian system (no dpkg-query): make sure these are installed: $*"
    return 0
  }
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $EUID -ne 0 ]]; then
    log "missing packages: ${missing[*]} (run as root to install them, or: apt-get install ${missing[*]})"
    return 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_cargo_tool NAME : `cargo install --locked NAME` when `cargo NAME` is missing (a minute
# of compiling, once per machine).
ensure_cargo_tool() {
  local tool=$1
  command -v "cargo-$tool" >/dev/null 2>&1 && return 0
  log "installing cargo-$tool (cargo install --locked cargo-$tool)"
  cargo install --locked --quiet "cargo-$tool"
}

# find_cargo: make `cargo` callable; returns 1 when there is none (require_cargo dies instead).
# Under `sudo`, root's PATH usually lacks the invoking user's ~/.cargo/bin; then that user's
# rustup toolchain is borrowed (read-only use of ~/.rustup; downloads land in their ~/.cargo and
# are handed back to them by fix_ownership).
CAPTURE_BORROWED_CARGO_HOME=""
find_cargo() {
  command -v cargo >/dev/null 2>&1 && return 0
  local home
  for home in "${HOME:-}" /root; do
    if [[ -n $home && -x $home/.cargo/bin/cargo ]]; then
      export PATH="$home/.cargo/bin:$PATH"
      return 0
    fi
  done
  if [[ -n ${SUDO_USER:-} ]]; then
    home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
    if [[ -n $home && -x $home/.cargo/bin/cargo ]]; then
      export PATH="$home/.cargo/bin:$PATH"
      export RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}"
      export CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
      CAPTURE_BORROWED_CARGO_HOME="$CARGO_HOME"
      return 0
    fi
  fi
  return 1
}
require_cargo() {
  find_cargo || die "cargo not found. Install a Rust toolchain >= 1.80 with rustup (https://rustup.rs), then run this again."
}

# fix_ownership: when running as root inside a checkout that belongs to someone else (the usual
# `sudo scripts/...` case), give back what cargo created as root, so that a later `cargo build`
# as that user does not fail on root-owned files.
fix_ownership() {
  [[ $EUID -eq 0 ]] || return 0
  local owner group dir
  owner="$(stat -c %u "$CAPTURE_ROOT")"
  group="$(stat -c %g "$CAPTURE_ROOT")"
  [[ $owner -ne 0 ]] || return 0
  for dir in "$(capture_target_dir)" ${CAPTURE_BORROWED_CARGO_HOME:+"$CAPTURE_BORROWED_CARGO_HOME"}; do
    [[ -d $dir ]] && find "$dir" -xdev -user 0 -exec chown -h "$owner:$group" {} + 2>/dev/null
  done
  return 0
}

# build_plugin: cargo build --release, prints the path of the .so on stdout.
# CAPTURE_SO=/path/to/capture.so skips the build.
build_plugin() {
  if [[ -n ${CAPTURE_SO:-} ]]; then
    [[ -f $CAPTURE_SO ]] || die "CAPTURE_SO=$CAPTURE_SO does not exist"
    printf '%s\n' "$CAPTURE_SO"
    return 0
  fi
  local so status=0
  so="$(capture_so_path)"
  if find_cargo; then
    log "building the plugin (cargo build --release)"
    (cd "$CAPTURE_ROOT" && cargo build --release --lib >&2) || status=$?
    fix_ownership
    [[ $status -eq 0 ]] || die "cargo build --release failed"
  elif [[ ! -f $so ]]; then
    require_cargo # dies with the install hint
  fi
  [[ -f $so ]] || die "$so was not built"
  printf '%s\n' "$so"
}

# find_python: a python3 >= 3.6 (Debian's own is always fine).
find_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

# collectd_types_db: the stock types.db of collectd-core.
collectd_types_db() {
  local f
  for f in /usr/share/collectd/types.db /usr/lib/collectd/types.db /opt/collectd/share/collectd/types.db; do
    [[ -f $f ]] && {
      printf '%s\n' "$f"
      return 0
    }
  done
  die "collectd's types.db not found (is collectd-core installed?)"
}

# make_plugin_dir DIR SO PLUGIN...: a PluginDir with capture.so and copies of stock plugins.
# collectd refuses symlinked plugins, so everything is copied.
make_plugin_dir() {
  local dir=$1 so=$2 stock=/usr/lib/collectd p
  shift 2
  mkdir -p "$dir"
  install -m 0644 "$so" "$dir/capture.so"
  for p in "$@"; do
    [[ -f $stock/$p.so ]] || die "collectd plugin $stock/$p.so not found (is collectd-core installed?)"
    install -m 0644 "$stock/$p.so" "$dir/$p.so"
  done
}

# require_collectd: make `collectd` callable (Debian installs it in /usr/sbin, which a user's PATH
# may lack), or die with the install hint.
require_collectd() {
  command -v collectd >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
  command -v collectd >/dev/null 2>&1 || die "collectd not found (apt-get install collectd-core)"
}

# collectd_base_config DIR PLUGIN_DIR HOSTNAME INTERVAL: on stdout, the global options and the
# logfile plugin of a private collectd whose files all live in DIR (collectd.pid, collectd.log);
# the caller appends its writers and read plugins.
collectd_base_config() {
  local dir=$1 plugin_dir=$2 hostname=$3 interval=$4 types_db
  types_db="$(collectd_types_db)" || exit 1
  cat <<EOF
Hostname    "$hostname"
FQDNLookup  false
BaseDir     "$dir"
PIDFile     "$dir/collectd.pid"
PluginDir   "$plugin_dir"
TypesDB     "$types_db"
Interval    $interval
AutoLoadPlugin false

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File     "$dir/collectd.log"
</Plugin>
EOF
}

# check_collectd_config CONF: `collectd -t` on CONF (its output in config-test.log next to it);
# when collectd rejects it, prints why and dies.
check_collectd_config() {
  local conf=$1 out
  out="$(dirname "$conf")/config-test.log"
  if ! collectd -t -C "$conf" >"$out" 2>&1; then
    cat "$out" >&2
    die "collectd rejected $conf"
  fi
}

# stop_processes PID...: SIGTERM to each, up to 5 s for each to go, then SIGKILL.
stop_processes() {
  local pid
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for pid in "$@"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
