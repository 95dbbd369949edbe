#!/usr/bin/env python3
"""bench/isolation.sh's helper: reads the proxy's Prometheus endpoint, and turns the
tab-separated records the script collects into the markdown report.

Usage:
  isolation_report.py scrape URL              one `series value` line per redveil_* sample
  isolation_report.py report RESULTS.tsv COMMAND

Record kinds (first column):
  meta    KEY VALUE
  run     WORKLOAD MODE SHAPE ROUND PROCESS TPS MEAN_MS TRANSACTIONS PROXY_CPU_S
          (one per pgbench process; PROXY_CPU_S is the whole run's, repeated)
  metric  WORKLOAD MODE SHAPE ROUND before|after SERIES VALUE
"""
import os
import sys
import urllib.request
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, median, num  # noqa: E402

WORKLOADS = {
    "select": "`-S` (pgbench select-only on `pgbench_accounts`, no policy)",
    "policy": "policy-view lookup (`SELECT * FROM hr.employees WHERE id = :id`, rewritten to the user's class view)",
}
MODES = ["simple", "extended", "prepared"]
SHAPES = ["direct", "one", "one_split", "two"]
SHAPE_LABEL = {
    "direct": "direct PostgreSQL (no proxy)",
    "one": "one user: 1 × {c} clients as `analyst`",
    "one_split": "one user, two processes: 2 × {h} as `analyst`",
    "two": "**two users: {h} as `analyst` + {h} as `admin`**",
}
AFFINITIES = ["same_client", "same_identity", "clean", "new", "other_identity"]


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("redveil_"):
            series, _, value = line.rpartition(" ")
            print(f"{series}\t{value}")


def load(path):
    meta = {}
    runs = defaultdict(lambda: defaultdict(list))  # (workload, mode, shape) -> round -> procs
    scraped = defaultdict(lambda: defaultdict(dict))  # (w, m, s, round) -> phase -> series
    with open(path) as f:
        for line in f:
            rec = line.rstrip("\n").split("\t")
            if rec[0] == "meta":
                meta[rec[1]] = rec[2]
            elif rec[0] == "run":
                workload, mode, shape, rnd, _proc, tps, lat, tx, cpu = rec[1:10]
                runs[(workload, mode, shape)][int(rnd)].append(
                    (num(tps), num(lat), num(tx), num(cpu))
                )
            elif rec[0] == "metric":
                workload, mode, shape, rnd, phase, series, value = rec[1:8]
                scraped[(workload, mode, shape, int(rnd))][phase][series] = float(value)
    return meta, runs, scraped


def deltas(scraped, key):
    phases = scraped.get(key)
    if not phases:
        return None
    before, after = phases.get("before", {}), phases.get("after", {})
    return {s: v - before.get(s, 0.0) for s, v in after.items()}


def summed(delta, name):
    """Sum of every series of `name` (all label values)."""
    return sum(v for s, v in delta.items() if s == name or s.startswith(name + "{"))


def per_round(runs, scraped, workload, mode, shape):
    """round -> dict of that run's figures."""
    out = {}
    for rnd, procs in runs.get((workload, mode, shape), {}).items():
        tps = sum(p[0] for p in procs if p[0] is not None)
        tx = sum(p[2] for p in procs if p[2] is not None)
        lat = sum(p[1] * p[2] for p in procs if p[1] is not None and p[2]) / tx if tx else None
        fig = {"tps": tps, "lat": lat}
        delta = deltas(scraped, (workload, mode, shape, rnd))
        if delta is not None:
            stmts = summed(delta, "redveil_statements_total")
            fig["stmts"] = stmts
            if stmts:
                per_k = 1000.0 / stmts
                fig["resets"] = summed(delta, "redveil_backend_resets_total") * per_k
                for a in AFFINITIES:
                    fig[a] = delta.get(f'redveil_pool_checkouts_total{{affinity="{a}"}}', 0.0) * per_k
                cpu = procs[0][3]
                fig["cpu"] = cpu * 1000.0 * per_k if cpu is not None else None
        out[rnd] = fig
    return out


def med(rounds, field):
    return median([f.get(field) for f in rounds.values()])


def ratio(rounds, base_rounds):
    """Median over rounds of TPS / the base shape's TPS in the same round."""
    values = [
        f["tps"] / base_rounds[r]["tps"]
        for r, f in rounds.items()
        if r in base_rounds and f["tps"] and base_rounds[r]["tps"]
    ]
    return median(values)


def r2(value):
    return "–" if value is None else f"{value:.2f}"


def f1(value):
    return "–" if value is None else f"{value:,.1f}"


def report(path, command):
    meta, runs, scraped = load(path)
    settings = meta.get("settings", "")
    kv = {}
    for item in settings.replace('"', "").split(" "):
        if "=" in item:
            k, v = item.split("=", 1)
            kv[k] = v
    clients = int(kv.get("CLIENTS", "10"))
    labels = {s: SHAPE_LABEL[s].format(c=clients, h=clients // 2) for s in SHAPES}
    tls = kv.get("BENCH_TLS", "on") != "off"
    rounds = kv.get("ROUNDS", "1")

    out = [f"## Isolation bench run {meta.get('date', '')}", ""]
    out.append(f"- command: `{settings} {command}`")
    out.append(f"- commit: {meta.get('commit', '?')}")
    out.append(
        f"- machine: {meta.get('cpu', '?')} cores, kernel {meta.get('kernel', '?')}; shared with "
        f"other work, so wall-clock figures are noisy (load average {meta.get('load_start', '?')} "
        f"at start, {meta.get('load_end', '?')} at end)"
    )
    out.append(f"- PostgreSQL {meta.get('postgres', '?')}, {meta.get('pgbench', '?')}")
    out.append(
        f"- redveil: transaction mode, **pool of {kv.get('POOL_SIZE', '?')}**, demo catalog, "
        + ("clients over TLS (`sslmode=require`), SCRAM-SHA-256; " if tls
           else "clients without TLS, SCRAM-SHA-256; ")
        + "proxy → PostgreSQL plain TCP. Counters from its `/metrics` endpoint "
        "(`[metrics] listen`), read before and after each run."
    )
    out.append("")

    # Headline: two users against one, per workload and mode.
    for workload in WORKLOADS:
        lines = []
        for mode in MODES:
            one = per_round(runs, scraped, workload, mode, "one")
            two = per_round(runs, scraped, workload, mode, "two")
            split = per_round(runs, scraped, workload, mode, "one_split")
            if not one or not two:
                continue
            lines.append(
                f"`-M {mode}` {f1(med(two, 'resets'))} resets per 1 000 statements "
                f"(one user: {f1(med(one, 'resets'))}), TPS {r2(ratio(two, one))} × one user's "
                f"(one user in two processes: {r2(ratio(split, one))} ×)"
            )
        if lines:
            out.append(f"**Two users alternating, {workload}:** " + "; ".join(lines) + ".")
            out.append("")

    threads = kv.get("JOBS", "?")
    out.append(
        f"### pgbench, {clients} clients in all, {threads} threads in all, "
        f"{kv.get('DURATION', '?')} s per run"
        + (f", median of {rounds} interleaved rounds" if rounds != "1" else "")
    )
    out.append("")
    out.append(
        "| workload | mode | shape | TPS | mean ms | ÷ one user | resets / 1k stmts "
        "| checkouts / 1k stmts: same client · same identity · clean · new · other identity "
        "| proxy CPU ms / 1k stmts |"
    )
    out.append("|---|---|---|---:|---:|---:|---:|---|---:|")
    prepared_seen = False
    for workload in WORKLOADS:
        for mode in MODES:
            one = per_round(runs, scraped, workload, mode, "one")
            for shape in SHAPES:
                rec = per_round(runs, scraped, workload, mode, shape)
                if not rec:
                    continue
                label = labels[shape]
                if workload == "policy" and shape == "direct":
                    label = "direct PostgreSQL, raw table (system role)"
                mode_cell = mode
                if mode == "prepared":
                    mode_cell = "prepared¹"
                    prepared_seen = True
                proxied = shape != "direct"
                mix = " · ".join(f1(med(rec, a)) for a in AFFINITIES) if proxied else "–"
                out.append(
                    f"| {workload} | {mode_cell} | {label} | {fmt(med(rec, 'tps'))} "
                    f"| {fmt(med(rec, 'lat'), 3)} "
                    f"| {'1.00' if shape == 'one' else r2(ratio(rec, one))} "
                    f"| {f1(med(rec, 'resets')) if proxied else '–'} | {mix} "
                    f"| {f1(med(rec, 'cpu')) if proxied else '–'} |"
                )
    out.append("")
    out.append(
        "TPS is the sum over the shape's pgbench processes, mean ms their latency average "
        "weighted by transactions; figures are medians over rounds, ÷ one user the median of "
        "each round's TPS over the one-user shape's TPS in the same round (on direct rows: "
        "direct over one user through redveil; direct has a backend per client, redveil "
        "the pool). Per 1 000 statements "
        "(`redveil_statements_total`, all protocols): `redveil_backend_resets_total` (a "
        "connection holding another identity reset with `DISCARD ALL`, waited for) and "
        "`redveil_pool_checkouts_total` by `affinity` (every checkout not `same_client` also "
        "gets the pipelined clean + session replay). Proxy CPU is the redveil process's "
        "user + system time during the run."
    )
    for workload, text in WORKLOADS.items():
        out.append(f"Workload {workload}: {text}.")
    out.append(
        "In the policy workload `admin` (group `hr`, exempt from every mask and the row rule) "
        "reads a cheaper class view than `analyst`, so the two-user shape's TPS there mixes "
        "the isolation cost with a cheaper half of the work; the `-S` rows are the clean "
        "measure."
    )
    if prepared_seen:
        out.append("")
        out.append(
            "¹ `-M prepared` works through redveil (it keeps each client's named statements "
            "and prepares them on whichever backend connection serves it); Debian's "
            "PgBouncer 1.18 cannot do it in transaction mode (`max_prepared_statements` came "
            "in 1.21). PgBouncer is not part of this bench."
        )
    print("\n".join(out))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "scrape":
        scrape(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
