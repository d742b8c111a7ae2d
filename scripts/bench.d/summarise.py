#!/usr/bin/env python3
"""Turn the per-round CSV written by scripts/bench into a Markdown summary.

For every scenario and proxy it reports the median over rounds of requests
per second, p99 latency, peak RSS and CPU time per request, plus weir's (and
the floor relay's) ratio to each peer, and weir's to weir-base, for those
metrics: the ratio of the medians, and the median of the ratios within each
round. Medians, not means, because one round disturbed by something else on
the machine should not move the result.

Usage: summarise.py --csv results.csv --command "scripts/bench ..."
                    [--env env.txt] [--unavailable "weir=reason"] ...
"""

import argparse
import csv
import statistics
import sys

# The table lists the peers and weir-base first, then each subject followed
# directly by its ratio rows to each of its references. "weir-base" is a
# second weir (another binary, revision or config: scripts/bench
# --baseline*) run in the same rounds, so weir ÷ weir-base is what a change
# costs. "floor" (scripts/bench.d/floor-relay.c) is no proxy but a relay
# that does nothing beyond the unavoidable system calls: its ratios show how
# close to the kernel's cost a peer already is.
PEERS = ["nginx", "haproxy"]
BASELINE = "weir-base"
SUBJECTS = ["weir", "floor"]
REFERENCES = {"weir": PEERS + [BASELINE], "floor": PEERS}

# Below this median CPU share of its core the proxy was not the bottleneck:
# usually the client core (wrk plus the backend) was, so req/s and latency
# describe the client more than the proxy, and CPU µs/req is the figure to
# compare. A saturated proxy measures 93-99% here; the rest of its core goes
# to work charged to no process.
SATURATED_PCT = 90.0
CLIENT_BOUND_MARK = "†"
# When the proxy's core was busy for this many points more than the proxy
# itself, other processes took the difference: the proxy was short of CPU
# rather than waiting for the client.
CONTENDED_POINTS = 10.0
CONTENDED_MARK = "‡"

# (CSV column, table heading, decimals, unit scale) for the metrics that get
# a median and a weir ratio.
METRICS = [
    ("rps", "req/s", 0, 1.0),
    ("p99_ms", "p99 ms", 2, 1.0),
    ("peak_rss_kib", "peak RSS MiB", 1, 1.0 / 1024.0),
    ("cpu_us_per_req", "CPU µs/req", 2, 1.0),
    ("mb_per_s", "MB/s", 1, 1.0),
]

# How each scenario's client talks to the proxy, where that is not plain
# HTTP/1.1 with wrk.
PROTOCOL_NOTES = {
    "tls": "HTTP/1.1 over TLS (ECDHE, P-256 certificate), wrk",
    "h2": "HTTP/2 over TLS, h2load with 100 concurrent streams per connection "
          "(h2load reports no percentiles: p99 is –)",
    "idle10k": "idle after one request each, held open while the proxy's memory "
               "is sampled (no load: only peak RSS counts)",
}


def parse_float(text):
    """Return TEXT as a float, or None for an empty or "NA" cell."""
    if text in ("", "NA"):
        return None
    return float(text)


def median_of(rows, column, scale=1.0):
    """Median of a column over ROWS, skipping missing cells (None if none)."""
    values = [v for v in (parse_float(r[column]) for r in rows) if v is not None]
    return statistics.median(values) * scale if values else None


def spread_percent(rows):
    """(max - min) / median of req/s in percent: how much rounds disagree."""
    values = [float(r["rps"]) for r in rows if parse_float(r["rps"])]
    if len(values) < 2:
        return None
    return (max(values) - min(values)) / statistics.median(values) * 100.0


def error_total(rows):
    """All socket errors and non-2xx/3xx responses wrk saw, over ROWS."""
    columns = ["err_connect", "err_read", "err_write", "err_status", "err_timeout"]
    return sum(int(r[c]) for r in rows for c in columns if r[c] not in ("", "NA"))


def fmt(value, decimals):
    """Format a number for the table, with thousands separators; "–" if None."""
    if value is None:
        return "–"
    return f"{value:,.{decimals}f}"


def describe(row):
    """Human description of a scenario from one of its CSV rows."""
    body = int(row["body_bytes"])
    if body >= 1 << 20:
        size = f"{body >> 20} MiB"
    elif body >= 1 << 10:
        size = f"{body >> 10} KiB"
    else:
        size = f"{body} B"
    mode = "keep-alive" if row["keepalive"] == "yes" else "Connection: close"
    text = f"{row['connections']} connections, {mode}, {size} body"
    note = PROTOCOL_NOTES.get(row["scenario"])
    return f"{text}, {note}" if note else text


def group_rows(rows):
    """Group rows by scenario (in first-seen order), then by proxy."""
    groups = {}
    for row in rows:
        groups.setdefault(row["scenario"], {}).setdefault(row["proxy"], []).append(row)
    return groups


def unsaturated_mark(rows):
    """The footnote mark for a proxy that did not use its whole core: "‡"
    if other processes shared its core, "†" if it waited on the client,
    "" if it was saturated (the normal case)."""
    pct = median_of(rows, "proxy_cpu_pct")
    if pct is None or pct >= SATURATED_PCT:
        return ""
    others = [parse_float(r["core_busy_pct"]) - parse_float(r["proxy_cpu_pct"])
              for r in rows if parse_float(r.get("core_busy_pct", "")) is not None]
    if others and statistics.median(others) >= CONTENDED_POINTS:
        return CONTENDED_MARK
    return CLIENT_BOUND_MARK


def proxy_line(scenario, proxy, rows):
    """One table row of medians for PROXY in SCENARIO."""
    cells = [scenario, proxy, str(len(rows))]
    cells += [fmt(median_of(rows, col, scale), dec) for col, _, dec, scale in METRICS]
    mark = unsaturated_mark(rows)
    if mark:
        cells[3] += " " + mark
    cells.append(fmt(median_of(rows, "proxy_cpu_pct"), 0))
    spread = spread_percent(rows)
    cells.append("–" if spread is None else f"{spread:.1f}%")
    cells.append(str(error_total(rows)))
    return cells


def ratio_line(scenario, subject, peer, subject_rows, peer_rows):
    """One table row of SUBJECT ÷ PEER for each metric, from the medians."""
    cells = [scenario, f"{subject} ÷ {peer}", ""]
    for col, _, _, scale in METRICS:
        mine, theirs = median_of(subject_rows, col, scale), median_of(peer_rows, col, scale)
        cells.append(f"{mine / theirs:.2f}×" if mine is not None and theirs else "–")
    cells += ["", "", ""]
    return cells


def paired_ratio_line(scenario, subject, peer, subject_rows, peer_rows):
    """One table row of the median over rounds of SUBJECT ÷ PEER within
    each round. Rounds run the proxies back to back, so this ratio cancels
    drift in the machine's speed between rounds, which the ratio of medians
    only averages out; where the two disagree, trust this one."""
    cells = [scenario, f"{subject} ÷ {peer}, per round", ""]
    theirs_by_round = {r["round"]: r for r in peer_rows}
    for col, _, _, _ in METRICS:
        ratios = []
        for mine in subject_rows:
            theirs = theirs_by_round.get(mine["round"])
            a = parse_float(mine[col])
            b = parse_float(theirs[col]) if theirs else None
            if a is not None and b:
                ratios.append(a / b)
        cells.append(f"{statistics.median(ratios):.2f}×" if ratios else "–")
    cells += ["", "", ""]
    return cells


def table(groups, unavailable):
    """The summary table as a list of Markdown lines."""
    headings = ["scenario", "proxy", "rounds"] + [m[1] for m in METRICS]
    headings += ["proxy CPU %", "req/s spread", "errors"]
    lines = ["| " + " | ".join(headings) + " |",
             "|" + "|".join(["---"] * 2 + ["--:"] * (len(headings) - 2)) + "|"]
    for scenario, by_proxy in groups.items():
        for proxy in PEERS + [BASELINE] + SUBJECTS:
            if proxy in by_proxy:
                lines.append("| " + " | ".join(proxy_line(scenario, proxy, by_proxy[proxy])) + " |")
            elif proxy in unavailable:
                blanks = [""] * (len(headings) - 3)
                lines.append("| " + " | ".join([scenario, proxy, "not available"] + blanks) + " |")
            if proxy not in SUBJECTS or proxy not in by_proxy:
                continue
            for peer in REFERENCES[proxy]:
                if peer in by_proxy:
                    for line in (ratio_line, paired_ratio_line):
                        cells = line(scenario, proxy, peer, by_proxy[proxy], by_proxy[peer])
                        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(args, rows):
    """The whole Markdown document."""
    groups = group_rows(rows)
    unavailable = dict(item.split("=", 1) for item in args.unavailable)
    out = ["# Proxy benchmark summary", "", "Command:", "", "```", args.command, "```", ""]
    if args.env:
        with open(args.env, encoding="utf-8") as f:
            out += ["Environment:", ""] + [f"- {line.rstrip()}" for line in f if line.strip()]
            out.append("")
    out.append("Scenarios:")
    out.append("")
    for scenario, by_proxy in groups.items():
        first = next(iter(by_proxy.values()))[0]
        if parse_float(first["rps"]) is None:
            out.append(f"- `{scenario}`: {describe(first)}")
        else:
            out.append(f"- `{scenario}`: {describe(first)}, {first['duration_s']} s per run")
    out.append("")
    for proxy, reason in unavailable.items():
        out.append(f"**{proxy}: not available** ({reason}); the others were measured anyway.")
        out.append("")
    out += table(groups, unavailable)
    marks = {unsaturated_mark(rows) for by_proxy in groups.values() for rows in by_proxy.values()}
    if CLIENT_BOUND_MARK in marks:
        out += ["",
                f"{CLIENT_BOUND_MARK} The proxy used under {SATURATED_PCT:.0f}% of its core "
                "while nothing else did: it waited on the client core (wrk and the backend). "
                "Compare CPU µs/req rather than req/s and p99 for that row."]
    if CONTENDED_MARK in marks:
        out += ["",
                f"{CONTENDED_MARK} The proxy used under {SATURATED_PCT:.0f}% of its core because "
                "other processes took part of it (core busy minus proxy CPU ≥ "
                f"{CONTENDED_POINTS:.0f} points): req/s and p99 in that row are understated. "
                "CPU µs/req is still sound; for the rest, rerun on a quieter machine "
                "(or with --nice -10 if this run did not use it)."]
    out += ["",
            "Medians over rounds. Ratios are weir (or floor) ÷ peer, or weir ÷ weir-base, "
            "of those medians; the "
            "\"per round\" rows are the median of that ratio within each round, "
            "which cancels the machine's drift between rounds. Above 1× "
            "is better for req/s and worse for p99, RSS and CPU. CPU µs/req is the "
            "proxy's utime+stime over the measured run divided by requests served; "
            "proxy CPU % is that CPU time over the run's wall time (100% = the "
            "proxy's whole core). MB/s is response bytes (heads and bodies, as "
            "the client counts them) per second, in 10^6 bytes. "
            "req/s spread is (max − min) ÷ median across rounds. "
            "errors counts wrk socket errors and non-2xx/3xx responses. "
            "See docs/benchmarking.md.",
            ""]
    return "\n".join(out)


def main(argv):
    """Read the CSV and print the summary; exit 1 if it holds no rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--env")
    parser.add_argument("--unavailable", action="append", default=[],
                        help='"proxy=reason" for a proxy that could not be measured')
    args = parser.parse_args(argv)
    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print(f"summarise.py: {args.csv}: no result rows", file=sys.stderr)
        return 1
    sys.stdout.write(render(args, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
