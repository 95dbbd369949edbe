"""PostgreSQL's regression SQL (the copy libpg_query ships in the pglast sdist), run through
one target and compared with the direct run.

    python regress.py run --sql-dir DIR --schedule FILE --out-dir OUT [--only LIST] [--timeout S]
    python regress.py compare --ref REFDIR --out-dir OUT --fails FAILS.txt

`run` executes every file named by the schedule (then any other file of DIR, alphabetically)
with `psql -X -a -q` (ON_ERROR_STOP off) in the database named by PGDATABASE, in that order,
and writes OUT/<name>.out (stdout and stderr together), normalised: whatever differs from one
connection or one run to the next by nature (backend pids, timings, the port in connection
strings) is replaced with a placeholder. `--only` limits the run to the files named in LIST
(one per line, `#` comments), still in schedule order.

`compare` writes to FAILS.txt one line per file whose normalised output differs from the
reference run's (REFDIR, the direct run): `<name><TAB><first differing line of ours>`, and the
unified diffs to OUT/diffs/<name>.diff.
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

NORMALISE = [
    # psql \timing and EXPLAIN ANALYZE timings.
    (re.compile(r"Time: [0-9.]+ ms.*"), "Time: N ms"),
    (re.compile(r"(actual time|Execution Time|Planning Time)[=:] ?[0-9.]+(\.\.[0-9.]+)?"), r"\1=N"),
    # Backend process ids in messages (NOTIFY, pg_terminate_backend, advisory locks).
    (re.compile(r"server process with PID [0-9]+"), "server process with PID N"),
    (re.compile(r"PID [0-9]+"), "PID N"),
    (re.compile(r"(port=?|port )[0-9]{2,5}"), r"\1N"),
    # Each target's output directory (PG_ABS_BUILDDIR, PG_LIBDIR) appears in file names.
    # (results/ for a full run, results-ci/ for the CI subset).
    (re.compile(r"/results(-[a-z]+)?/[a-z-]+/regress"), "/results/TARGET/regress"),
]


def normalise(text):
    for pattern, repl in NORMALISE:
        text = pattern.sub(repl, text)
    return text


def schedule_order(sql_dir, schedule):
    present = {p.stem for p in Path(sql_dir).glob("*.sql")}
    order = []
    for line in Path(schedule).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("test:"):
            continue
        for name in line[len("test:"):].split():
            if name in present and name not in order:
                order.append(name)
    order += sorted(present - set(order))
    return order


def read_list(path):
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def cmd_run(args):
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = schedule_order(args.sql_dir, args.schedule)
    if args.only:
        only = set(read_list(args.only))
        order = [n for n in order if n in only]
    env = dict(os.environ)
    # What pg_regress sets for every test.
    env.setdefault("PGTZ", "PST8PDT")
    env.setdefault("PGDATESTYLE", "Postgres, MDY")
    env["PG_ABS_SRCDIR"] = str(Path(args.sql_dir).resolve())
    env["PG_ABS_BUILDDIR"] = str(out_dir.resolve())
    env["PG_LIBDIR"] = str(out_dir.resolve())
    env["PG_DLSUFFIX"] = ".so"
    timeouts = 0
    t_all = time.monotonic()
    for name in order:
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                ["psql", "-X", "-a", "-q", "-v", "ON_ERROR_STOP=0", "-v", "HIDE_TABLEAM=on",
                 "-v", "HIDE_TOAST_COMPRESSION=on", "-f", f"{args.sql_dir}/{name}.sql"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, cwd=args.sql_dir, timeout=args.timeout,
            )
            text = proc.stdout.decode("utf-8", "replace")
            if proc.returncode not in (0, 1):
                text += f"\n[peer-suites: psql exited with {proc.returncode}]\n"
        except subprocess.TimeoutExpired as e:
            timeouts += 1
            text = (e.stdout or b"").decode("utf-8", "replace")
            text += f"\n[peer-suites: timed out after {args.timeout}s]\n"
        (out_dir / f"{name}.out").write_text(normalise(text))
        print(f"{name}: {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    print(f"{len(order)} files in {time.monotonic() - t_all:.0f}s, {timeouts} timed out")


def cmd_compare(args):
    ref, out_dir = Path(args.ref), Path(args.out_dir)
    diffs = out_dir / "diffs"
    diffs.mkdir(parents=True, exist_ok=True)
    same = differ = missing = 0
    with open(args.fails, "w") as fails:
        for ours in sorted(out_dir.glob("*.out")):
            theirs = ref / ours.name
            if not theirs.exists():
                missing += 1
                fails.write(f"{ours.stem}\tno direct output to compare with\n")
                continue
            a = normalise(theirs.read_text()).splitlines()
            b = normalise(ours.read_text()).splitlines()
            if a == b:
                same += 1
                continue
            differ += 1
            diff = list(difflib.unified_diff(a, b, "direct", "target", lineterm="", n=2))
            (diffs / f"{ours.stem}.diff").write_text("\n".join(diff) + "\n")
            first = next((l[1:] for l in diff[2:] if l.startswith("+")), "")
            if not first:
                first = "(missing) " + next((l[1:] for l in diff[2:] if l.startswith("-")), "")
            fails.write(f"{ours.stem}\t{first.strip()[:300]}\n")
    print(f"{same} passed, {differ + missing} failed")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sql-dir", required=True)
    r.add_argument("--schedule", required=True)
    r.add_argument("--out-dir", required=True)
    r.add_argument("--only")
    r.add_argument("--timeout", type=int, default=180)
    c = sub.add_parser("compare")
    c.add_argument("--ref", required=True)
    c.add_argument("--out-dir", required=True)
    c.add_argument("--fails", required=True)
    args = ap.parse_args()
    {"run": cmd_run, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    main()
