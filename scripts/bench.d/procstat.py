#!/usr/bin/env python3
"""Process accounting helpers for scripts/bench.

A proxy under test may be several processes (NGINX runs a master and a
worker), so every measurement here is taken over a process *tree*: the root
PID that scripts/bench started plus all its descendants, found by scanning
/proc/*/stat for parent links (CONFIG_PROC_CHILDREN is not available on every
kernel, so /proc/PID/task/*/children is not relied on).

Subcommands:
  tree ROOT                 print the PIDs of ROOT's tree, one per line
  snapshot ROOT CORE        print "TREE_CPU_S CORE_BUSY CORE_SOFTIRQ CORE_TOTAL":
                            utime+stime of the tree in seconds, then the
                            busy, softirq and total clock ticks of CPU CORE
                            from /proc/stat, all read at one moment
  sample ROOT OUT           sample the tree's summed VmRSS and Pss every
                            --interval seconds until ROOT exits, SIGTERM
                            arrives or --max-seconds pass; keep
                            "PEAK_RSS_KIB HWM_SUM_KIB PEAK_PSS_KIB" in OUT,
                            rewritten whenever any of them grows
  wait-http PORT            poll http://127.0.0.1:PORT/ (https:// with --tls,
                            certificate not verified) until it answers 200,
                            failing early if --pid is given and that process
                            exits; bounded by --timeout seconds
  h2load-report LOG         print h2load's output in LOG as the one-line
                            "WEIR-BENCH key=value ..." report wrk-report.lua
                            prints, so both clients feed the same CSV code

Only the standard library is used, so a stock Debian python3 is enough.
"""

import argparse
import http.client
import os
import re
import signal
import ssl
import sys
import time

# Kernel clock ticks per second: utime/stime in /proc/PID/stat are in ticks.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Fields of /proc/PID/stat counted after the closing parenthesis of the
# command name (which may itself contain spaces and parentheses).
STAT_STATE = 0
STAT_PPID = 1
STAT_UTIME = 11
STAT_STIME = 12


def read_stat_fields(pid):
    """Return the fields after the command name in /proc/PID/stat, or None
    if the process has gone (it may exit between listing and reading)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2:].split()


def is_running(pid):
    """True if PID exists and is not a zombie (exited but not yet reaped)."""
    fields = read_stat_fields(pid)
    return fields is not None and fields[STAT_STATE] != "Z"


def process_tree(root):
    """Return ROOT and all its descendants that are alive right now."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = read_stat_fields(entry)
        if fields is None:
            continue
        children.setdefault(int(fields[STAT_PPID]), []).append(int(entry))
    if not is_running(root):
        return []
    tree, pending = [], [root]
    # A process tree cannot contain a cycle, but bound the walk anyway so a
    # corrupted read can never spin forever.
    while pending and len(tree) < 100000:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root):
    """Sum utime+stime (user and system CPU, all threads) over ROOT's tree."""
    ticks = 0
    for pid in process_tree(root):
        fields = read_stat_fields(pid)
        if fields is not None:
            ticks += int(fields[STAT_UTIME]) + int(fields[STAT_STIME])
    return ticks / CLOCK_TICKS


def core_ticks(core):
    """Return (busy, softirq, total) clock ticks of one CPU from /proc/stat.

    Busy is everything but idle and iowait. Softirq is reported apart
    because loopback TCP work done there is charged to no process, so it is
    missing from a proxy's utime+stime yet still occupies its core."""
    label = f"cpu{core}"
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] == label:
                # user nice system idle iowait irq softirq steal; guest time
                # is already included in user and nice.
                ticks = [int(v) for v in fields[1:9]]
                total = sum(ticks)
                return total - ticks[3] - ticks[4], ticks[6], total
    raise ValueError(f"/proc/stat has no line for {label}")


def status_kib(pid, key):
    """Return a kB value such as VmRSS from /proc/PID/status (0 if absent)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def pss_kib(pid):
    """Return the proportional set size of PID in KiB (0 if unreadable).

    Pss charges each shared page to the processes sharing it in equal parts,
    so unlike VmRSS it does not count NGINX's master and worker's common
    pages (libraries, shared memory) twice when summed."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_memory_kib(root):
    """Return (sum of VmRSS, sum of VmHWM, sum of Pss) over ROOT's tree, KiB.

    The RSS sum is the tree's footprint at this instant as the kernel counts
    it per process; the HWM sum adds each process's own high-water mark, an
    upper bound on the true peak since the processes need not have peaked at
    the same moment; the Pss sum counts shared pages once."""
    rss = hwm = pss = 0
    for pid in process_tree(root):
        rss += status_kib(pid, "VmRSS")
        hwm += status_kib(pid, "VmHWM")
        pss += pss_kib(pid)
    return rss, hwm, pss


def write_atomically(path, text):
    """Replace PATH with TEXT so a reader never sees a half-written file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_sample(args):
    """Track the peak summed RSS (and HWM, Pss) of a tree until it exits or
    we are told to stop. The result is rewritten on every increase, so it survives even if
    this sampler is killed without warning."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    peaks = (0, 0, 0)
    write_atomically(args.out, "0 0 0\n")
    deadline = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < deadline:
        if not is_running(args.root):
            break
        current = tree_memory_kib(args.root)
        if any(now > peak for now, peak in zip(current, peaks)):
            peaks = tuple(max(now, peak) for now, peak in zip(current, peaks))
            write_atomically(args.out, " ".join(str(p) for p in peaks) + "\n")
        time.sleep(args.interval)
    return 0


def answers_200(port, path, timeout, use_tls=False):
    """Return True if GET PATH on 127.0.0.1:PORT answers with status 200,
    over TLS (without verifying the benchmark's self-signed certificate)
    when USE_TLS is set."""
    if use_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def cmd_wait_http(args):
    """Poll until the port answers 200, the watched process dies, or the
    deadline passes. Exit status 0 only in the first case."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if args.pid and not is_running(args.pid):
            print(f"process {args.pid} exited before 127.0.0.1:{args.port} answered",
                  file=sys.stderr)
            return 1
        if answers_200(args.port, args.path, timeout=1.0, use_tls=args.tls):
            return 0
        time.sleep(0.05)
    print(f"127.0.0.1:{args.port}{args.path} did not answer 200 within {args.timeout:g} s",
          file=sys.stderr)
    return 1


# h2load's duration units, in microseconds.
H2LOAD_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def h2load_us(text):
    """Convert an h2load duration such as "12.34ms" or "1.2s" to µs."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not an h2load duration: {text!r}")
    return float(match.group(1)) * H2LOAD_UNITS_US[match.group(2)]


def h2load_report(text):
    """Turn h2load's summary into the WEIR-BENCH line of wrk-report.lua.

    h2load reports no percentiles, so p50 and p99 are -1 (the CSV shows NA);
    max is the slowest request. Requests that failed, errored or timed out
    count as read errors, non-2xx/3xx statuses as status errors."""
    finished = re.search(r"^finished in ([0-9.]+\w+),", text, re.M)
    reqs = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    traffic = re.search(r"^traffic: \S+ \((\d+)\) total", text, re.M)
    timing = re.search(r"^time for request:\s+(\S+)\s+(\S+)", text, re.M)
    if not (finished and reqs and codes and traffic):
        raise ValueError("h2load output lacks its summary (did it fail to connect?)")
    max_us = h2load_us(timing.group(2)) if timing else -1
    fields = {
        "requests": int(reqs.group(3)),
        "duration_us": int(h2load_us(finished.group(1))),
        "bytes": int(traffic.group(1)),
        "p50_us": -1, "p99_us": -1, "max_us": int(max_us),
        "err_connect": 0,
        "err_read": int(reqs.group(4)) + int(reqs.group(5)) + int(reqs.group(6)),
        "err_write": 0,
        "err_status": int(codes.group(3)) + int(codes.group(4)),
        "err_timeout": 0,
    }
    return "WEIR-BENCH " + " ".join(f"{k}={v}" for k, v in fields.items())


def cmd_h2load_report(args):
    """Print the WEIR-BENCH line for an h2load log; 1 if it has no summary."""
    with open(args.log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        print(h2load_report(text))
    except ValueError as err:
        print(f"{args.log}: {err}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv):
    """Build the command-line interface described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tree", help="list ROOT and its descendants")
    p.add_argument("root", type=int)

    p = sub.add_parser("snapshot", help="tree CPU seconds and one core's ticks")
    p.add_argument("root", type=int)
    p.add_argument("core", type=int)

    p = sub.add_parser("sample", help="track peak summed RSS of ROOT's tree")
    p.add_argument("root", type=int)
    p.add_argument("out")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--max-seconds", type=float, default=600.0)

    p = sub.add_parser("wait-http", help="wait for 127.0.0.1:PORT to answer 200")
    p.add_argument("port", type=int)
    p.add_argument("--path", default="/")
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--tls", action="store_true", help="use https")

    p = sub.add_parser("h2load-report", help="h2load output as a WEIR-BENCH line")
    p.add_argument("log")
    return parser.parse_args(argv)


def main(argv):
    """Dispatch to the subcommand and return its exit status."""
    args = parse_args(argv)
    if args.command == "tree":
        print("\n".join(str(pid) for pid in process_tree(args.root)))
        return 0
    if args.command == "snapshot":
        busy, softirq, total = core_ticks(args.core)
        print(f"{tree_cpu_seconds(args.root):.2f} {busy} {softirq} {total}")
        return 0
    if args.command == "sample":
        return cmd_sample(args)
    if args.command == "h2load-report":
        return cmd_h2load_report(args)
    return cmd_wait_http(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
