"""Groups what fails through a target but not directly, by error message.

    python categorise.py --results .peer-suites/results --target redveil-transaction [--ids]
    python categorise.py --results .peer-suites/results --expected > expected.toml

--expected prints an expected.toml allowing every failure of the redveil targets that passes
directly (what --check then holds the proxy to), each entry with its error as a comment.

Unittest suites: the failing tests of the target that pass directly, grouped by their error
with quoted names and numbers blanked. Regression files: the ERROR/FATAL/WARNING lines (and
lost connections) of the target's output that the direct output of the same file lacks;
messages that name redveil are the proxy's own refusals, the others mostly follow from them
(a function whose creation was refused does not exist later). Counts are occurrences and
files (or tests).
"""

import argparse
import collections
import json
import re
from pathlib import Path

MSG = re.compile(r"(?:ERROR|FATAL|WARNING):  .*|server closed the connection.*|connection to server was lost")


def key(msg):
    k = re.sub(r'"[^"]*"', '"X"', msg)
    k = re.sub(r"'[^']*'", "'X'", k)
    k = re.sub(r"\b\d+\b", "N", k)
    k = re.sub(r"port N failed: ", "", k)
    k = re.sub(r"psql:\S+\.sql:N: ", "", k)
    return k[:160]


def fails(path):
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                tid, _, msg = line.partition("\t")
                out[tid] = msg
    return out


def expected(res):
    targets = ("redveil-session", "redveil-transaction")
    print("# Failures through redveil that `scripts/peer-suites.sh --check` allows: per suite,")
    print("# `all` (both redveil targets), `redveil-session`, `redveil-transaction`; test ids as in")
    print("# .peer-suites/results/<target>/<suite>.txt (regress: file names) or fnmatch patterns.")
    print("# Tests that fail in the direct run of the same results are always allowed.")
    print("# Written by `python3 scripts/peer_suites/categorise.py --results .peer-suites/results")
    print("# --expected` from a run of the current code, then reviewed: every entry is a finding.")
    for suite in ("psycopg2", "asyncpg", "regress"):
        direct = fails(res / "direct" / f"{suite}.txt")
        per = {t: {k: v for k, v in fails(res / t / f"{suite}.txt").items() if k not in direct}
               for t in targets}
        both = set(per[targets[0]]) & set(per[targets[1]])
        print(f"\n[{suite}]")
        for name, ids in [("all", both)] + [(t, set(per[t]) - both) for t in targets]:
            print(f"{name} = [")
            for tid in sorted(ids):
                msg = per[targets[0]].get(tid) or per[targets[1]].get(tid)
                print(f"    {json.dumps(tid)},  # {key(msg)[:110]}")
            print("]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--target")
    ap.add_argument("--expected", action="store_true")
    ap.add_argument("--ids", action="store_true", help="list the tests/files of each group")
    args = ap.parse_args()
    res = Path(args.results)
    if args.expected:
        expected(res)
        return
    for suite in ("psycopg2", "asyncpg"):
        direct = fails(res / "direct" / f"{suite}.txt")
        got = fails(res / args.target / f"{suite}.txt")
        groups = collections.defaultdict(list)
        for tid, msg in got.items():
            if tid not in direct:
                groups[key(msg)].append(tid)
        print(f"== {suite}: {sum(map(len, groups.values()))} fail through {args.target} and pass directly")
        for k, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"{len(ids):4d}  {k}")
            if args.ids:
                for tid in sorted(ids):
                    print(f"        {tid}")
    ref, tgt = res / "direct" / "regress", res / args.target / "regress"
    fails_file = res / args.target / "regress.txt"
    differing = [l.split("\t")[0] for l in fails_file.read_text().splitlines()] if fails_file.exists() else []
    occ = collections.Counter()
    files = collections.defaultdict(set)
    for name in differing:
        ours, theirs = tgt / f"{name}.out", ref / f"{name}.out"
        if not ours.exists() or not theirs.exists():
            continue
        a = collections.Counter(MSG.findall(theirs.read_text()))
        b = collections.Counter(MSG.findall(ours.read_text()))
        new = b - a
        if not new:
            files["(no new error: output differs otherwise)"].add(name)
            occ["(no new error: output differs otherwise)"] += 1
        for m, n in new.items():
            occ[key(m)] += n
            files[key(m)].add(name)
    print(f"== regress: {len(differing)} files differ through {args.target}; new messages "
          "(occurrences, files), proxy refusals first")
    order = sorted(occ, key=lambda k: ("redveil" not in k, -len(files[k]), -occ[k]))
    for k in order:
        print(f"{occ[k]:5d} {len(files[k]):3d}  {k}")
        if args.ids:
            print("        " + " ".join(sorted(files[k])))


if __name__ == "__main__":
    main()
