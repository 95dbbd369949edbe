"""Prints the table of scripts/peer-suites.sh from its results directory, and with --check
compares the redveil targets' failures with expected.toml.

Table cells: failing tests (regress: files whose output differs from the direct run's), then
in brackets those of them that pass directly, when the direct run is in the results.

expected.toml (see the file for its format) lists, per suite, failures allowed on every target
(`all`) and on one target (`redveil-session`, `redveil-session-fresh`,
`redveil-transaction`), as test ids or fnmatch patterns. --check fails (exit 1) when a redveil target has a failing test that is
neither allowed there nor failing in the direct run of the same results directory, and
notes (without failing) allowed entries that no longer fail.
"""

import argparse
import fnmatch
import sys
import tomllib
from pathlib import Path

LABELS = {
    "direct": "direct",
    "redveil-session": "redveil session",
    "redveil-session-fresh": "redveil session, reuse never",
    "redveil-transaction": "redveil transaction",
    "pgbouncer": "PgBouncer transaction",
}


def fails(path):
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                tid, _, msg = line.partition("\t")
                out[tid] = msg
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--suites", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--check")
    ap.add_argument("--subset", default="")
    args = ap.parse_args()
    res = Path(args.results)
    suites = args.suites.split()
    targets = args.targets.split()
    all_targets = list(LABELS)

    header = "| suite | " + " | ".join(LABELS[t] for t in all_targets) + " |"
    print()
    print(header)
    print("|---" * (len(all_targets) + 1) + "|")
    for suite in suites:
        direct = fails(res / "direct" / f"{suite}.txt")
        have_direct = (res / "direct" / f"{suite}.time").exists()
        cells = []
        for t in all_targets:
            status = res / t / f"{suite}.status"
            time_file = res / t / f"{suite}.time"
            if t not in targets and not time_file.exists():
                cells.append("-")
                continue
            if status.exists() and not time_file.exists():
                cells.append(status.read_text().strip().split(":")[0])
                continue
            if not time_file.exists():
                cells.append("no result")
                continue
            if suite == "regress" and t == "direct":
                cells.append(f"reference ({time_file.read_text().strip()}s)")
                continue
            f = fails(res / t / f"{suite}.txt")
            cell = str(len(f))
            if t != "direct" and have_direct:
                cell += f" [{len(set(f) - set(direct))} pass directly]"
            if status.exists():
                cell += f" ({status.read_text().strip()})"
            cell += f" ({time_file.read_text().strip()}s)"
            if t not in targets:
                cell += " (earlier run)"
            cells.append(cell)
        print(f"| {suite} | " + " | ".join(cells) + " |")
    print()
    notes = {(res / t / f"{s}.status").read_text().strip() for s in suites for t in all_targets
             if (res / t / f"{s}.status").exists() and ":" in (res / t / f"{s}.status").read_text()}
    for note in sorted(notes):
        print(note)
    print(f"Per-test failures: {res}/<target>/<suite>.txt (regress diffs: {res}/<target>/regress/diffs/)")

    if not args.check:
        return 0
    expected = tomllib.loads(Path(args.check).read_text())
    bad = 0
    for suite in suites:
        direct = set(fails(res / "direct" / f"{suite}.txt"))
        for t in ("redveil-session", "redveil-session-fresh", "redveil-transaction"):
            if t not in targets:
                continue
            allowed = expected.get(suite, {}).get("all", []) + expected.get(suite, {}).get(t, [])
            got = fails(res / t / f"{suite}.txt")
            for tid, msg in sorted(got.items()):
                if tid in direct or any(fnmatch.fnmatchcase(tid, p) for p in allowed):
                    continue
                bad += 1
                print(f"check: {suite} {t}: unexpected failure {tid}: {msg}")
            for pattern in [] if args.subset else allowed:
                if not any(fnmatch.fnmatchcase(tid, pattern) for tid in got):
                    print(f"check: note: {suite} {t}: allowed {pattern} no longer fails")
    if bad:
        print(f"check: {bad} unexpected failure(s) through redveil")
        return 1
    print("check: every failure through redveil is expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
