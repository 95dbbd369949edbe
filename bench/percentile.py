#!/usr/bin/env python3
"""Prints a latency percentile, in ms, from pgbench per-transaction logs (`pgbench -l`).

Usage: percentile.py PCT LOGFILE...   (third column of each line: latency in microseconds)
"""
import sys


def main() -> None:
    pct = float(sys.argv[1])
    latencies = []
    for path in sys.argv[2:]:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3:
                    latencies.append(int(fields[2]))
    if not latencies:
        print("")
        return
    latencies.sort()
    index = min(len(latencies) - 1, max(0, int(round(pct / 100 * len(latencies))) - 1))
    print(f"{latencies[index] / 1000:.3f}")


if __name__ == "__main__":
    main()
