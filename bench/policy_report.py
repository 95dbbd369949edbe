#!/usr/bin/env python3
"""Turns the tab-separated records bench/policy_proxy.sh collects into the markdown report.

Usage: policy_report.py RESULTS.tsv COMMAND

Record kinds (first column):
  meta     KEY VALUE
  policy   MODE TARGET ROUND TPS MEAN_MS P99_MS TRANSACTIONS PROXY_CPU_S
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, median, num  # noqa: E402

TARGETS = ["raw", "view", "rv_cache", "rv_nocache"]
LABEL = {
    "raw": "direct PostgreSQL, raw table `hr.employees` (system role)",
    "view": "direct PostgreSQL, policy view `immuta.hr_employees` (query role, analyst's `immuta.token`)",
    "rv_cache": "redveil as `analyst`, plan cache on",
    "rv_nocache": "redveil as `analyst`, plan cache off",
}
MODES = ["extended", "prepared"]


def load(path):
    meta, runs = {}, defaultdict(dict)
    with open(path) as f:
        for line in f:
            rec = line.rstrip("\n").split("\t")
            if rec[0] == "meta":
                meta[rec[1]] = rec[2]
            elif rec[0] == "policy":
                mode, target, rnd, tps, lat, p99, tx, cpu = rec[1:9]
                tx, cpu = num(tx), num(cpu)
                per10k = cpu / tx * 10000 * 1000 if cpu is not None and tx else None
                runs[(mode, target)][int(rnd)] = (num(tps), num(lat), num(p99), per10k)
    return meta, runs


def ratio_median(runs, mode, target, base_mode="extended"):
    """Median over rounds of TPS(mode, target) / TPS(base_mode, raw) of the same round."""
    mine, base = runs.get((mode, target), {}), runs.get((base_mode, "raw"), {})
    values = [mine[r][0] / base[r][0] for r in mine if r in base and mine[r][0] and base[r][0]]
    return median(values)


def r2(value):
    return "–" if value is None else f"{value:.2f}"


def main():
    meta, runs = load(sys.argv[1])
    command = sys.argv[2]
    settings = meta.get("settings", "")
    kv = dict(x.split("=", 1) for x in settings.split(" ") if "=" in x)
    rounds = kv.get("ROUNDS", "1")
    tls = kv.get("BENCH_TLS", "on") != "off"
    out = [f"## Policy-view bench run {meta.get('date', '')}", ""]
    out.append(f"- command: `{settings} {command}`")
    out.append(f"- commit: {meta.get('commit', '?')}")
    out.append(
        f"- machine: {meta.get('cpu', '?')} cores, kernel {meta.get('kernel', '?')}; shared with "
        f"other builds, so wall-clock figures are noisy (load average {meta.get('load_start', '?')} "
        f"at start, {meta.get('load_end', '?')} at end)"
    )
    out.append(f"- PostgreSQL {meta.get('postgres', '?')}, {meta.get('pgbench', '?')}")
    out.append(
        "- statement: `SELECT * FROM hr.employees WHERE id = :id`, `:id` uniform over the "
        "10 000 rows (primary key); `analyst` sees the EU third of the rows, masked, so two "
        "lookups in three return no row. Direct: plain TCP. redveil: transaction mode, pool "
        f"{kv.get('POOL_SIZE', '?')}, demo catalog synced, "
        + ("clients connect with TLS (`sslmode=require`) and SCRAM-SHA-256; "
           if tls else "clients connect without TLS, SCRAM-SHA-256; ")
        + "proxy → PostgreSQL plain TCP. Plan cache = `[pool] cache_rewritten_plans`."
    )
    out.append("")
    ext_cache = ratio_median(runs, "extended", "rv_cache")
    ext_nocache = ratio_median(runs, "extended", "rv_nocache")
    prep_cache = ratio_median(runs, "prepared", "rv_cache", "prepared")
    out.append(
        f"**redveil + policy view / raw table direct, `-M extended`: {r2(ext_cache)} with the plan "
        f"cache, {r2(ext_nocache)} without** (`-M prepared`: {r2(prep_cache)})."
    )
    out.append("")
    out.append(
        f"### pgbench, {kv.get('CLIENTS', '?')} clients, {kv.get('JOBS', '?')} threads, "
        f"{kv.get('DURATION', '?')} s per run"
        + (f", median of {rounds} interleaved rounds" if rounds != "1" else "")
    )
    out.append("")
    out.append(
        "| mode | target | TPS | mean ms | p99 ms | vs raw direct, same mode "
        "| vs raw direct `-M extended` | proxy CPU ms / 10k stmts |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        for target in TARGETS:
            rec = runs.get((mode, target))
            if not rec:
                continue
            tps, lat, p99, per10k = (median([r[i] for r in rec.values()]) for i in range(4))
            same = "1.00" if target == "raw" else r2(ratio_median(runs, mode, target, mode))
            ext = r2(ratio_median(runs, mode, target))
            label = LABEL[target]
            if mode == "prepared" and target == "rv_cache":
                label = "redveil as `analyst` (client-named statements)"
            out.append(
                f"| {mode} | {label} | {fmt(tps)} | {fmt(lat, 3)} | {fmt(p99, 3)} "
                f"| {same} | {ext} | {fmt(per10k) if per10k is not None else '–'} |"
            )
    out.append("")
    out.append(
        "TPS, mean and p99 (from pgbench's per-transaction log) are medians over rounds; each "
        "ratio is the median over rounds of that round's TPS over the raw table's TPS in the "
        "same round. Proxy CPU is the redveil process's user+system time during the run per "
        "10 000 statements. `-M prepared` runs the client's own named statements, which redveil "
        "prepares once per backend connection whatever the plan-cache setting."
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
