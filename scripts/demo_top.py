#!/usr/bin/env python3
"""Top-like view of collectd-capture's CSV output (used by scripts/demo.sh).

Reads the newest line of each file collectd's csv plugin wrote (StoreRates true, so counters are
already per-second rates) under DATADIR/capture-<instance>/<type>[-<type_instance>]-YYYY-MM-DD and
prints the busiest instances. Standard library only.
"""

import argparse
import math
import os
import re
import shutil
import sys
import time

DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
MIB = 1024.0 * 1024.0


def last_row(path):
    """(epoch, [values]) of the newest data line of a csv file, or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if not line or line.startswith("epoch"):
            continue
        fields = line.split(",")
        try:
            nums = [float(x) for x in fields]
        except ValueError:
            continue
        return nums[0], nums[1:]
    return None


def read_instance(path):
    """{type[-type_instance]: (epoch, [values])} from one capture-<instance> directory."""
    newest = {}
    try:
        names = os.listdir(path)
    except OSError:
        return {}
    for name in names:
        m = DATE_SUFFIX.search(name)
        if not m:
            continue
        key = name[: m.start()]
        if key not in newest or name > newest[key]:
            newest[key] = name
    out = {}
    for key, name in newest.items():
        row = last_row(os.path.join(path, name))
        if row is not None:
            out[key] = row
    return out


def collect(datadir):
    instances = {}
    try:
        entries = os.listdir(datadir)
    except OSError:
        return instances
    for entry in entries:
        if entry.startswith("capture-"):
            instances[entry[len("capture-") :]] = read_instance(os.path.join(datadir, entry))
    return instances


def val(data, key, idx=0):
    row = data.get(key)
    if row is None or idx >= len(row[1]):
        return math.nan
    return row[1][idx]


def fmt(x, spec, width):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-".rjust(width)
    return format(x, spec).rjust(width)


def human_rate(x, width):
    """bytes/s -> compact string."""
    if x is None or math.isnan(x):
        return "-".rjust(width)
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if x >= div:
            return ("%.1f%s" % (x / div, unit)).rjust(width)
    return ("%.0f" % x).rjust(width)


def newest_epoch(data):
    return max((row[0] for row in data.values()), default=0.0)


def render(instances, interval, rows, started):
    self_data = instances.pop("self", {})
    newest = max((newest_epoch(d) for d in instances.values()), default=0.0)
    # Instances that stopped reporting (no live process) keep their old files: skip them.
    live = {
        name: d
        for name, d in instances.items()
        if newest - newest_epoch(d) <= 1.5 * interval
    }
    table = []
    for name, d in live.items():
        table.append(
            (
                name,
                val(d, "percent-cpu"),
                val(d, "ps_rss") / MIB,
                val(d, "ps_count", 0),
                val(d, "ps_count", 1),
                val(d, "file_handles"),
                val(d, "io_octets", 0),
                val(d, "io_octets", 1),
                val(d, "disk_octets", 0),
                val(d, "disk_octets", 1),
                val(d, "if_octets", 0),
                val(d, "if_octets", 1),
            )
        )

    def key(r):
        cpu = 0.0 if math.isnan(r[1]) else r[1]
        rss = 0.0 if math.isnan(r[2]) else r[2]
        return (-cpu, -rss, r[0])

    table.sort(key=key)
    width = shutil.get_terminal_size((100, 30)).columns
    name_w = max(12, min(32, width - 101))
    out = []
    stamp = time.strftime("%H:%M:%S", time.localtime(newest)) if newest else "--:--:--"
    sampler_ms = val(self_data, "duration-sampler") * 1000.0
    out.append(
        "collectd-capture demo  %s  up %ds  interval %ds  |  %s instances, %s processes, "
        "sampler %s ms%s"
        % (
            stamp,
            time.time() - started,
            interval,
            fmt(val(self_data, "count-instances"), ".0f", 0).strip(),
            fmt(val(self_data, "count-processes"), ".0f", 0).strip(),
            fmt(sampler_ms, ".1f", 0).strip(),
            (
                ", %s dropped (MaxInstances)" % fmt(val(self_data, "count-instances_dropped"), ".0f", 0).strip()
                if val(self_data, "count-instances_dropped") > 0
                else ""
            ),
        )
    )
    out.append("")
    out.append(
        "%-*s %6s %9s %6s %7s %6s %9s %9s %9s %9s %9s %9s"
        % (
            name_w,
            "INSTANCE",
            "CPU%",
            "RSS MiB",
            "PROCS",
            "THREADS",
            "FDS",
            "READ/s",
            "WRITE/s",
            "DISK R/s",
            "DISK W/s",
            "NET RX/s",
            "NET TX/s",
        )
    )
    for r in table[:rows]:
        name = r[0] if len(r[0]) <= name_w else r[0][: name_w - 1] + "~"
        out.append(
            "%-*s %s %s %s %s %s %s %s %s %s %s %s"
            % (
                name_w,
                name,
                fmt(r[1], ".1f", 6),
                fmt(r[2], ".1f", 9),
                fmt(r[3], ".0f", 6),
                fmt(r[4], ".0f", 7),
                fmt(r[5], ".0f", 6),
                human_rate(r[6], 9),
                human_rate(r[7], 9),
                human_rate(r[8], 9),
                human_rate(r[9], 9),
                human_rate(r[10], 9),
                human_rate(r[11], 9),
            )
        )
    if len(table) > rows:
        out.append("... %d more instances" % (len(table) - rows))
    return out


def tail_log(path, n=15, pattern=None):
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    if pattern:
        lines = [line for line in lines if pattern in line]
    return lines[-n:]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by the shell) counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def self_mtime(datadir):
    """Newest modification time among the plugin's own telemetry files, or None."""
    path = os.path.join(datadir, "capture-self")
    try:
        return max(os.stat(os.path.join(path, n)).st_mtime for n in os.listdir(path))
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datadir", required=True)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--pid", type=int, default=0, help="collectd's pid, to notice when it dies")
    ap.add_argument("--log", default="")
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--seconds", type=float, default=0.0)
    ap.add_argument("--rows", type=int, default=0)
    args = ap.parse_args()

    tty = sys.stdout.isatty() and not args.once
    started = time.time()
    deadline = started + args.seconds if args.seconds > 0 else None
    first_data = None
    said_waiting = False
    shown = 0
    last_change = None

    while True:
        now = time.time()
        if args.pid and not alive(args.pid):
            print("collectd exited; the end of its log:", file=sys.stderr)
            for line in tail_log(args.log, 25):
                print("  " + line, file=sys.stderr)
            return 1
        if deadline is not None and now >= deadline:
            if shown == 0:
                print("no table yet: run longer (DEMO_SECONDS > %.0f)" % args.seconds, file=sys.stderr)
                return 1
            return 0

        # collectd writes every file of a sample within milliseconds: wait for the telemetry
        # files to change, let the burst settle, then read everything once.
        change = self_mtime(args.datadir)
        new_sample = change is not None and change != last_change
        if first_data is None and new_sample:
            first_data = now
        if first_data is None:
            # "Initialization of plugin `capture' failed", or a failed LoadPlugin.
            failed = [
                line
                for line in tail_log(args.log, 200)
                if "capture" in line and "fail" in line.lower()
            ]
            if failed or now - started > max(10.0, 4 * args.interval):
                print(
                    "the capture plugin did not start; the end of collectd's log:"
                    if failed
                    else "no capture-self data after %.0f s: is the plugin loaded? The end of collectd's log:"
                    % (now - started),
                    file=sys.stderr,
                )
                for line in tail_log(args.log, 25):
                    print("  " + line, file=sys.stderr)
                return 1
            if not said_waiting:
                print("waiting for collectd's first values ...", file=sys.stderr)
                said_waiting = True
            time.sleep(0.25)
            continue

        # Rates need two samples: --once waits two intervals after the first data.
        ready = not args.once or now - first_data >= 2 * args.interval
        if new_sample and ready:
            time.sleep(0.3)
            last_change = self_mtime(args.datadir)
            instances = collect(args.datadir)
            rows = args.rows
            if rows <= 0:
                rows = max(5, shutil.get_terminal_size((100, 30)).lines - 8) if tty else 25
            lines = render(instances, args.interval, rows, started)
            notes = [
                line
                for line in tail_log(args.log, 200)
                if "capture" in line and ("[warning]" in line or "[error]" in line)
            ]
            if notes:
                lines.append("")
                lines.append("plugin warnings (collectd.log):")
                lines.extend("  " + n[-160:] for n in notes[-4:])
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
            else:
                if shown:
                    sys.stdout.write("\n")
                sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            shown += 1
            if args.once:
                return 0
        elif new_sample:
            last_change = change
        time.sleep(0.25)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
