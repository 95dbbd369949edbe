"""Runs another project's unittest-based test suite and records which tests fail.

    python unittest_runner.py --top DIR --package tests --out FAILS.txt \
        [--select MODULE[:SUBSTR,SUBSTR...]]... [--timeout SECONDS]

Discovers `test_*.py` in DIR/PACKAGE (DIR is put first on sys.path, so the package's relative
imports work), or only the selected modules; a selection with substrings keeps the tests whose
id contains one of them. Every test that fails or errors is appended to FAILS.txt as it
happens (so a run cut short by the driver's timeout still leaves what it saw), one line each:

    <test id><TAB><kind>: <last line of the exception, at most 300 characters>

Each test gets SECONDS (default 120) of wall time: SIGALRM raises in the main thread, which
ends a test blocked in Python code or in the event loop (a test blocked inside libpq is ended
by the driver's timeout instead). The last line of stdout is "N passed, N failed, N skipped".
"""

import argparse
import signal
import sys
import time
import unittest


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test ran past the runner's per-test timeout")


class Result(unittest.TextTestResult):
    def __init__(self, *args, out=None, timeout=120, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = out
        self.timeout = timeout
        self.passed = 0

    def startTest(self, test):
        signal.alarm(self.timeout)
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        signal.alarm(0)
        super().stopTest(test)

    def _record(self, test, err, kind):
        exc_type, exc, _tb = err
        text = f"{exc_type.__name__}: {exc}".strip().splitlines()
        summary = " | ".join(line.strip() for line in text if line.strip())[:300]
        self.out.write(f"{test.id()}\t{kind}: {summary}\n")
        self.out.flush()

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, err, "error")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, err, "fail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.out.write(f"{test.id()}\tunexpected success\n")
        self.out.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._record(subtest, err, kind)


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True)
    ap.add_argument("--package", default="tests")
    ap.add_argument("--out", required=True)
    ap.add_argument("--select", action="append", default=[])
    ap.add_argument("--timeout", type=int, default=120)
    args = ap.parse_args()

    sys.path.insert(0, args.top)
    loader = unittest.TestLoader()
    if args.select:
        suite = unittest.TestSuite()
        for sel in args.select:
            module, _, subs = sel.partition(":")
            loaded = loader.loadTestsFromName(f"{args.package}.{module}")
            wanted = [s for s in subs.split(",") if s]
            for test in iter_tests(loaded):
                if not wanted or any(w in test.id() for w in wanted):
                    suite.addTest(test)
    else:
        suite = loader.discover(
            f"{args.top}/{args.package}", pattern="test_*.py", top_level_dir=args.top
        )

    signal.signal(signal.SIGALRM, _alarm)
    with open(args.out, "w") as out:
        runner = unittest.TextTestRunner(
            verbosity=2,
            stream=sys.stderr,
            resultclass=lambda *a, **k: Result(*a, out=out, timeout=args.timeout, **k),
        )
        result = runner.run(suite)
        # Failed module imports come back as errors of _FailedTest and are recorded above.
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"{result.passed} passed, {failed} failed, {len(result.skipped)} skipped")


if __name__ == "__main__":
    main()
