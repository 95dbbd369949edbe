#!/usr/bin/env python3
"""Turns the tab-separated records bench/run.sh collects into the markdown report.

Usage: report.py RESULTS.tsv COMMAND

Record kinds (first column):
  meta     KEY VALUE
  pgbench  MODE CLIENTS TARGET ROUND TPS MEAN_MS P99_MS TRANSACTIONS PROXY_CPU_S
           (TARGET policy-direct / policy-redveil: the policy-view workload)
  stream   KIND TARGET ROWS SECONDS RSS_BEFORE_KB PEAK_RSS_KB
  idle     TARGET COUNT RSS_BEFORE_KB RSS_AFTER_KB OPEN_TIME
  callgrind MODE TARGET N INSTRUCTIONS_N INSTRUCTIONS_2N
"""
import statistics
import sys
from collections import defaultdict

TARGETS = ["direct", "pgbouncer", "redveil"]
LABEL = {
    "direct": "direct PostgreSQL",
    "pgbouncer": "PgBouncer",
    "redveil": "redveil",
    "policy-direct": "direct PostgreSQL (raw table)",
    "policy-redveil": "redveil as `analyst` (→ policy view)",
}
# (workload label, targets as (target, its direct, its PgBouncer)) in table order.
WORKLOADS = [
    ("`-S`", [("direct", None, None), ("pgbouncer", "direct", None), ("redveil", "direct", "pgbouncer")]),
    ("policy view", [("policy-direct", None, None), ("policy-redveil", "policy-direct", None)]),
]
# Bytes per row of repeat('x', 1000) as text: 1000 characters plus the row's terminator.
ROW_BYTES = 1001


def num(text):
    return float(text) if text not in ("", None) else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or not b:
        return "–"
    return f"{a / b:.2f}"


def load(path):
    meta, bench, stream, idle, cg = {}, defaultdict(list), {}, [], {}
    with open(path) as f:
        for line in f:
            rec = line.rstrip("\n").split("\t")
            if rec[0] == "meta":
                meta[rec[1]] = rec[2]
            elif rec[0] == "pgbench":
                mode, clients, target, _round, tps, lat, p99, tx, cpu = rec[1:10]
                tx = num(tx)
                cpu = num(cpu)
                per10k = cpu / tx * 10000 if cpu is not None and tx else None
                bench[(mode, int(clients), target)].append(
                    (num(tps), num(lat), num(p99), per10k)
                )
            elif rec[0] == "stream":
                kind, target, rows, secs, base, hwm = rec[1:7]
                stream[(kind, target)] = (int(rows), num(secs), num(base), num(hwm))
            elif rec[0] == "idle":
                target, count, before, after, opened = rec[1:6]
                idle.append((target, int(count), num(before), num(after), opened))
            elif rec[0] == "callgrind":
                mode, target, n, i1, i2 = rec[1:6]
                cg[(mode, target)] = (int(i2) - int(i1)) / int(n)
    return meta, bench, stream, idle, cg


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pgbench_section(meta, bench, out):
    settings = dict(kv.split("=", 1) for kv in meta.get("settings", "").replace('"', "").split(" ") if "=" in kv)
    rounds = settings.get("ROUNDS", "1")
    out.append(
        f"### pgbench, {meta.get('cores', '?')} cores: select-only `-S` (scale {settings.get('SCALE', '?')}) "
        f"and the policy-view lookup, {settings.get('DURATION', '?')} s per run, "
        f"{settings.get('JOBS', '?')} pgbench threads"
        + (f", median of {rounds} rounds" if rounds != "1" else "")
    )
    out.append("")
    out.append(
        "| workload | mode | clients | target | TPS | mean ms | p99 ms | ÷ direct | ÷ PgBouncer "
        "| proxy CPU s / 10k stmts |"
    )
    out.append("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    order = ["simple", "extended", "prepared"]
    keys = sorted({(m, c) for (m, c, _t) in bench}, key=lambda k: (k[1], order.index(k[0]) if k[0] in order else 9))
    for mode, clients in keys:
        med = {}
        for (_w, targets) in WORKLOADS:
            for target, _d, _p in targets:
                runs = bench.get((mode, clients, target))
                if runs:
                    med[target] = tuple(median([r[i] for r in runs]) for i in range(4))
        for workload, targets in WORKLOADS:
            for target, direct, pgb in targets:
                if target not in med:
                    if target == "pgbouncer" and mode == "prepared" and "direct" in med:
                        out.append(f"| {workload} | {mode} | {clients} | {LABEL[target]} | n/a¹ | | | | | |")
                    continue
                tps, lat, p99, per10k = med[target]
                vs_direct = ratio(tps, med.get(direct, (None,))[0]) if direct else "–"
                vs_pgb = ratio(tps, med.get(pgb, (None,))[0]) if pgb else "–"
                cpu = fmt(per10k, 3) if target in ("pgbouncer", "redveil", "policy-redveil") else "–"
                out.append(
                    f"| {workload} | {mode} | {clients} | {LABEL[target]} | {fmt(tps)} | {fmt(lat, 3)} "
                    f"| {fmt(p99, 3)} | {vs_direct} | {vs_pgb} | {cpu} |"
                )
    out.append("")
    out.append(
        "÷ direct and ÷ PgBouncer are TPS ratios: on redveil rows redveil/direct and "
        "redveil/PgBouncer (policy view: redveil as `analyst`, rewritten to the view, over the "
        "raw table queried directly; no PgBouncer row, it cannot apply policies). Proxy CPU is "
        "the proxy process's user + system time over the run, per 10 000 statements."
    )
    out.append("")
    out.append(
        "¹ PgBouncer 1.18 (Debian 12) does not keep protocol-level prepared statements in "
        "transaction mode (`max_prepared_statements` arrived in 1.21), so `-M prepared` "
        "through it fails; redveil tracks them per client and re-prepares them where missing."
    )
    out.append("")


def stream_section(stream, out):
    if not stream:
        return
    rows = next(iter(stream.values()))[0]
    out.append(f"### Large result: {rows:,} rows of `repeat('x', 1000)` (≈{rows * ROW_BYTES / 1e9:.1f} GB) through psql")
    out.append("")
    out.append("| query | target | seconds | rows/s | MB/s | vs direct | proxy RSS before | proxy peak RSS |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind, label in (("copy", "`COPY (…) TO STDOUT`"), ("select", "`SELECT …` (`-o /dev/null`)")):
        direct = stream.get((kind, "direct"))
        for target in TARGETS:
            rec = stream.get((kind, target))
            if not rec:
                continue
            n, secs, base, hwm = rec
            rate = n / secs if secs else None
            mbs = n * ROW_BYTES / secs / 1e6 if secs else None
            vs = ratio(direct[1], secs) if direct and target != "direct" else ("1.00" if target == "direct" else "–")
            out.append(
                f"| {label} | {LABEL[target]} | {fmt(secs, 2)} | {fmt(rate)} | {fmt(mbs)} | {vs} "
                f"| {kb(base)} | {kb(hwm)} |"
            )
    out.append("")
    out.append(
        "MB/s counts the payload (1 001 bytes a row) in 10⁶ bytes. \"vs direct\" is throughput "
        "relative to direct. Peak RSS is the proxy's VmHWM, reset just before each run "
        "(`/proc/PID/clear_refs`), so it is that run's peak."
    )
    out.append("")


def kb(value):
    if value is None:
        return "–"
    return f"{value / 1024:,.1f} MiB"


def idle_section(idle, out):
    if not idle:
        return
    out.append("### Idle TLS clients held open (logged in, no statement)")
    out.append("")
    out.append("| target | clients | RSS before | RSS with clients | per client | logins took |")
    out.append("|---|---:|---:|---:|---:|---|")
    for target, count, before, after, opened in idle:
        per = (after - before) / count if before is not None and after is not None else None
        out.append(
            f"| {LABEL[target]} | {count:,} | {kb(before)} | {kb(after)} | {fmt(per, 1)} KiB | {opened} s |"
        )
    out.append("")


def callgrind_section(cg, out):
    if not cg:
        return
    out.append("### CPU per statement: instructions counted by callgrind (1 client, noise-free)")
    out.append("")
    out.append("| mode | PgBouncer | redveil | redveil / PgBouncer |")
    out.append("|---|---:|---:|---:|")
    for mode in ("simple", "extended", "prepared"):
        pgb, rv = cg.get((mode, "pgbouncer")), cg.get((mode, "redveil"))
        if pgb is None and rv is None:
            continue
        out.append(f"| {mode} | {fmt(pgb) if pgb is not None else 'n/a¹'} | {fmt(rv)} | {ratio(rv, pgb)} |")
    out.append("")
    out.append(
        "Instructions the proxy process executes per `pgbench -S` statement, TLS to the client "
        "included: (I(2N) − I(N)) / N from two callgrind runs, so start-up, handshake and login cancel out."
    )
    out.append("")


def main():
    meta, bench, stream, idle, cg = load(sys.argv[1])
    command = sys.argv[2]
    settings = meta.get("settings", "")
    out = [f"## Bench run {meta.get('date', '')} on {meta.get('cores', '?')} cores", ""]
    out.append(f"- command: `{settings} {command}`")
    out.append(f"- commit: {meta.get('commit', '?')}")
    out.append(
        f"- machine: {meta.get('cpu', '?')} cores, kernel {meta.get('kernel', '?')}; shared with "
        f"other builds, so wall-clock figures are noisy (load average {meta.get('load_start', '?')} "
        f"at start, {meta.get('load_end', '?')} at end)"
    )
    out.append(
        f"- PostgreSQL {meta.get('postgres', '?')}, {meta.get('pgbouncer', '?')}, "
        f"{meta.get('pgbench', '?')}"
    )
    tls = "BENCH_TLS=off" not in settings
    out.append(
        "- direct: plain TCP to PostgreSQL. PgBouncer and redveil: transaction mode, same pool size, "
        + ("clients connect with TLS (`sslmode=require`, same certificate) and SCRAM-SHA-256; "
           if tls else "clients connect without TLS, SCRAM-SHA-256; ")
        + "proxy → PostgreSQL plain TCP."
    )
    out.append("")
    pgbench_section(meta, bench, out)
    stream_section(stream, out)
    idle_section(idle, out)
    callgrind_section(cg, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
