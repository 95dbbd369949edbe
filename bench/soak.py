#!/usr/bin/env python3
"""bench/soak.sh's workload driver and report (psycopg 3).

N client threads run a mixed workload through redveil for a while; the script that started
us restarts the backend in the middle and tells us when with signals:

  SIGUSR1   the backend is being stopped (phase "before" ends, "during" begins)
  SIGUSR2   the backend accepts connections again ("after" begins)

Each statement's outcome is counted by phase (the phase when it ended), operation and
SQLSTATE, as expected (a refusal the workload asks for) or not. Every few seconds a sampler
reads the proxy's VmRSS, open file descriptors and threads (/proc/PID), its `redveil_clients`
gauge (/metrics) and the statements of the interval. A statement running longer than
--deadline is a hang: it is recorded and its socket shut down so the client goes on.

Usage: soak.py --dsn-proxy DSN --dsn-super DSN --proxy-pid PID --metrics URL
               --clients N --seconds S [--sample-seconds 5] [--deadline 30]
               [--tsv FILE] [--report FILE] [--meta KEY=VALUE ...]
The DSN of the proxy names no user: the workload logs in as the demo users.
"""
import argparse
import collections
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.request

import psycopg
from psycopg import pq

USERS = ["analyst", "bi_service", "admin"]
# Who may impersonate in the demo catalog (src/demo/catalog.rs).
IMPERSONATORS = {"admin", "bi_service"}
PHASES = ["before", "during", "after"]
COLUMNS = "id, name, email, ssn, salary, region"
# Classes of SQLSTATE a backend restart explains: connection exceptions, operator
# intervention (57P01 admin_shutdown, 57P03 cannot_connect_now), and 53300 (no connection
# in time) while the pool cannot reach the server.
RESTART_CLASSES = ("08", "57")


class Broken(Exception):
    """The client's connection is gone; the operation stops and the client reconnects."""


class StepFailed(Exception):
    """A step of a multi-statement operation failed unexpectedly: the rest would only test
    the failure's consequences, so the operation stops (rolling back what it began)."""


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.phase = "before"
        self.t0 = time.monotonic()
        self.marks = {}  # name -> seconds since t0
        # (phase, op, code, expected) -> count; code "ok" for successes
        self.counts = collections.Counter()
        self.interval_ok = 0
        self.interval_err = 0
        self.latency = {p: [] for p in PHASES}  # sampled successful statement latencies
        self.max_latency = collections.defaultdict(float)  # phase -> seconds
        self.slowest = {}  # phase -> (seconds, op, started) of the slowest success
        self.slow = collections.Counter()  # phase -> statements over 1 s
        self.hangs = []
        self.first_ok_after_stop = None
        self.first_ok_after_back = None
        self.last_restart_error = None
        self.wrong = []  # first few wrong results, for the report
        self.abrupt = collections.Counter()
        self.connects = collections.Counter()  # (phase, code)
        self.samples = []
        self.messages = {}  # SQLSTATE -> the first distinct messages seen with it
        self.after_errors = []  # the first unexpected errors after the restart, in detail
        self.stop = threading.Event()

    def now(self):
        return time.monotonic() - self.t0

    def record(self, op, code, expected, started, ended):
        with self.lock:
            phase = self.phase
            self.counts[(phase, op, code, expected)] += 1
            if code == "ok" or expected:
                self.interval_ok += 1
            else:
                self.interval_err += 1
            if code == "ok":
                d = ended - started
                if random.random() < 0.05:
                    self.latency[phase].append(d)
                if d > self.max_latency[phase]:
                    self.max_latency[phase] = d
                    self.slowest[phase] = (d, op, started)
                if d > 1.0:
                    self.slow[phase] += 1
                stop = self.marks.get("stop")
                back = self.marks.get("back")
                if stop is not None and started >= stop and self.first_ok_after_stop is None:
                    self.first_ok_after_stop = ended
                if back is not None and started >= back and self.first_ok_after_back is None:
                    self.first_ok_after_back = ended
            elif not expected and code[:2] in RESTART_CLASSES or code in ("conn-lost", "53300"):
                self.last_restart_error = ended


class Client:
    """One client thread's connection and what it has done to its session."""

    def __init__(self, state, index, dsn):
        self.state = state
        self.index = index
        self.dsn = dsn
        self.rng = random.Random(index * 7919 + 17)
        self.user = USERS[index % len(USERS)]
        self.conn = None
        self.impersonating = None
        self.sql_prepared = False
        self.busy = None  # (started, op, sql) while a statement runs
        self.last_code = None  # of the last statement `ex` ran
        self.hung = False

    # ------------------------------------------------------------ plumbing

    def effective(self):
        return self.impersonating or self.user

    def connect(self):
        st = self.state
        started = st.now()
        self.busy = (started, "connect", f"login as {self.user}")
        try:
            conn = psycopg.connect(self.dsn, user=self.user, password=self.user,
                                   autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            code = e.sqlstate or "no-sqlstate"
            with st.lock:
                st.connects[(st.phase, code)] += 1
            st.record("connect", code, False, started, st.now())
            return False
        finally:
            self.busy = None
        # Unprepared extended protocol unless an operation asks for a prepared statement.
        conn.prepare_threshold = None
        self.conn = conn
        self.impersonating = None
        self.sql_prepared = False
        with st.lock:
            st.connects[(st.phase, "ok")] += 1
        return True

    def drop(self, abrupt=False):
        conn, self.conn = self.conn, None
        self.impersonating = None
        if conn is None:
            return
        if abrupt:
            shut(conn)
        try:
            conn.close()
        except Exception:
            pass

    def ex(self, op, sql, params=None, expect=None, prepare=None, fetch=True, cur=None):
        """Runs one statement; returns (ok, rows). `expect` is the SQLSTATE a refusal should
        give: getting it counts as expected, getting none counts as `noerror`. Raises Broken
        when the connection is gone."""
        st = self.state
        started = st.now()
        self.busy = (started, op, sql if isinstance(sql, str) else str(sql))
        rows = None
        try:
            c = cur or self.conn.cursor()
            c.execute(sql, params, prepare=prepare)
            if fetch and c.description is not None:
                rows = c.fetchall()
        except psycopg.Error as e:
            ended = st.now()
            self.busy = None
            code = e.sqlstate
            broken = self.conn is None or self.conn.broken or self.conn.closed
            if code is None:
                code = "conn-lost" if broken else f"no-sqlstate:{type(e).__name__}"
            if self.hung:
                code = "hang-cut"
                self.hung = False
            expected = expect is not None and code == expect
            self.last_code = code
            if not expected and st.phase == "after" and len(st.after_errors) < 10:
                st.after_errors.append((started, ended, self.index, op, code,
                                        " ".join(str(e).split())[:110]))
            text = " ".join(str(e).split())[:110]
            seen = st.messages.setdefault(code, [])
            if len(seen) < 3 and text not in seen:
                seen.append(text)
            st.record(op, code, expected, started, ended)
            if broken:
                raise Broken() from e
            if not expected and code[:2] in RESTART_CLASSES:
                # As a client would: no hot loop against a proxy whose backend is away.
                time.sleep(0.05)
            return False, None
        ended = st.now()
        self.busy = None
        if expect is not None:
            self.last_code = "noerror"
            st.record(op, "noerror", False, started, ended)
            return True, rows
        self.last_code = "ok"
        st.record(op, "ok", True, started, ended)
        return True, rows

    def must(self, op, sql, params=None, expect=None):
        """`ex` for a step the rest of the operation depends on: an unexpected outcome
        (an error, or none where a refusal was due) raises StepFailed."""
        _, rows = self.ex(op, sql, params, expect=expect)
        if self.last_code != (expect or "ok"):
            raise StepFailed()
        return rows

    def wrong(self, op, what):
        st = self.state
        t = st.now()
        st.record(op, "WRONG", False, t, t)
        with st.lock:
            if len(st.wrong) < 20:
                st.wrong.append(f"{t:.1f}s {st.phase} client {self.index} ({self.user}"
                                f"{' as ' + self.impersonating if self.impersonating else ''}) "
                                f"{op}: {what}")

    def check_counts(self, op):
        """count(*), count(ssn) of hr.employees must be what the effective user sees."""
        want = self.state.baseline[self.effective()]
        ok, rows = self.ex(op, "SELECT count(*), count(ssn) FROM hr.employees")
        if ok and tuple(rows[0]) != want:
            self.wrong(op, f"sees {tuple(rows[0])}, expected {want} for {self.effective()}")

    def impersonate(self, op, target, expect=None):
        arg = "NULL" if target is None else f"'{target}'"
        ok, _ = self.ex(op, f"CALL immuta_procedures.impersonate_user({arg})", expect=expect)
        if ok and expect is None:
            self.impersonating = target
        return ok

    # ------------------------------------------------------------ operations

    def op_simple(self):
        i = self.rng.randint(1, 10000)
        ok, rows = self.ex("simple", f"SELECT {COLUMNS} FROM hr.employees WHERE id = {i}")
        if ok and len(rows) > 1:
            self.wrong("simple", f"{len(rows)} rows for one id")

    def op_extended(self):
        i = self.rng.randint(1, 10000)
        ok, rows = self.ex("extended", f"SELECT {COLUMNS} FROM hr.employees WHERE id = %s", (i,),
                           prepare=False)
        if ok and len(rows) > 1:
            self.wrong("extended", f"{len(rows)} rows for one id")

    def op_prepared(self):
        if self.rng.random() < 0.5:
            i = self.rng.randint(1, 10000)
            self.ex("prepared", f"SELECT {COLUMNS} FROM hr.employees WHERE id = %s", (i,),
                    prepare=True)
        else:
            region = self.rng.choice(["EU", "US", "APAC"])
            self.ex("prepared", "SELECT region, count(*), avg(salary) FROM hr.employees "
                    "WHERE region = %s GROUP BY region", (region,), prepare=True)

    def op_sql_prepare(self):
        if not self.sql_prepared:
            ok, _ = self.ex("sql_prepare", "PREPARE soak_lookup(int) AS "
                            f"SELECT {COLUMNS} FROM hr.employees WHERE id = $1")
            if not ok:
                return
            self.sql_prepared = True
        self.ex("sql_prepare", f"EXECUTE soak_lookup({self.rng.randint(1, 10000)})")

    def op_counts(self):
        self.check_counts("counts")

    def op_impersonate(self):
        if self.user not in IMPERSONATORS:
            self.impersonate("impersonate", "admin", expect="42501")
            return
        if not self.impersonate("impersonate", "analyst"):
            return
        ok, rows = self.ex("impersonate", "SHOW immuta_user")
        if ok and (rows[0][0], rows[0][1]) != ("analyst", self.user):
            self.wrong("impersonate", f"SHOW immuta_user gave {tuple(rows[0])}")
        self.check_counts("impersonate")
        if self.rng.random() < 0.5:
            self.op_simple()
        self.impersonate("impersonate", None)
        self.check_counts("impersonate")

    REFUSALS = [
        ("SELECT * FROM immuta_system.session_tokens", "42501"),
        ("SELECT user_name FROM immuta_system.profile_access", "42501"),
        ("EXPLAIN ANALYZE SELECT * FROM hr.employees", "42501"),
        ("EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM hr.employees WHERE region = 'EU'", "42501"),
        ("SET immuta.token = 'forged'", "42501"),
        ("SELECT current_setting('immuta.token', true)", "42501"),
        ("SELECT query FROM pg_stat_activity", "42501"),
        ("TRUNCATE hr.employees", "42501"),
        ("UPDATE hr.employees SET salary = 0", "42501"),
        ("SELECT query_to_xml('SELECT * FROM hr.employees', true, false, '')", "42501"),
    ]

    def op_refused(self):
        kind = self.rng.random()
        if kind < 0.1:
            st = self.state
            started = st.now()
            self.busy = (started, "refused", "COPY hr.employees TO STDOUT")
            try:
                with self.conn.cursor().copy("COPY hr.employees TO STDOUT") as copy:
                    for _ in copy:
                        pass
                self.busy = None
                st.record("refused", "noerror", False, started, st.now())
            except psycopg.Error as e:
                self.busy = None
                broken = self.conn.broken or self.conn.closed
                code = e.sqlstate or ("conn-lost" if broken else "no-sqlstate")
                st.record("refused", code, code == "42501", started, st.now())
                if broken:
                    raise Broken() from e
        elif kind < 0.2:
            # Refused in the extended protocol, with a parameter.
            self.ex("refused", "SELECT * FROM immuta_system.session_tokens WHERE user_name = %s",
                    ("admin",), expect="42501", prepare=False)
        elif kind < 0.3:
            expect = "42704" if self.user in IMPERSONATORS else "42501"
            self.impersonate("refused", "nobody", expect=expect)
        else:
            sql, expect = self.rng.choice(self.REFUSALS)
            self.ex("refused", sql, expect=expect)
        # The session goes on as before.
        if self.rng.random() < 0.3:
            self.check_counts("refused")

    def op_txn_error(self):
        op = "txn_error"
        self.must(op, "BEGIN")
        self.must(op, f"SELECT {COLUMNS} FROM hr.employees WHERE id = {self.rng.randint(1, 10000)}")
        self.must(op, "SELECT 1 / 0", expect="22012")
        self.must(op, "SELECT 1", expect="25P02")
        self.must(op, "ROLLBACK")

    def op_savepoint(self):
        op = "savepoint"
        self.must(op, "BEGIN")
        self.must(op, "SAVEPOINT s1")
        self.must(op, "SELECT * FROM immuta_system.session_tokens", expect="42501")
        self.must(op, "ROLLBACK TO SAVEPOINT s1")
        rows = self.must(op, "SELECT count(*) FROM hr.employees")
        if rows[0][0] != self.state.baseline[self.effective()][0]:
            self.wrong(op, f"count {rows[0][0]} after ROLLBACK TO SAVEPOINT")
        self.must(op, "COMMIT")

    def op_txn_impersonate(self):
        if self.user not in IMPERSONATORS:
            return self.op_txn_error()
        op = "txn_impersonate"
        self.must(op, "BEGIN")
        if not self.impersonate(op, "analyst"):
            raise StepFailed()
        try:
            self.check_counts(op)
        finally:
            self.must(op, "ROLLBACK")
            # The rollback undid the impersonation.
            self.impersonating = None
        self.check_counts(op)

    def op_copy(self):
        st = self.state
        started = st.now()
        sql = "COPY (SELECT * FROM hr.employees) TO STDOUT"
        self.busy = (started, "copy_out", sql)
        try:
            lines = 0
            with self.conn.cursor().copy(sql) as copy:
                for data in copy:
                    lines += bytes(data).count(b"\n")
            self.busy = None
            st.record("copy_out", "ok", True, started, st.now())
            want = st.baseline[self.effective()][0]
            if lines != want:
                self.wrong("copy_out", f"{lines} lines, expected {want}")
        except psycopg.Error as e:
            self.busy = None
            broken = self.conn.broken or self.conn.closed
            code = e.sqlstate or ("conn-lost" if broken else "no-sqlstate")
            st.record("copy_out", code, False, started, st.now())
            if broken:
                raise Broken() from e

    def op_large(self):
        if self.rng.random() < 0.5:
            n = 20000
            ok, rows = self.ex("large", f"SELECT g, repeat('x', 500) FROM generate_series(1, {n}) g")
            if ok and len(rows) != n:
                self.wrong("large", f"{len(rows)} rows, expected {n}")
        else:
            ok, rows = self.ex("large", f"SELECT {COLUMNS} FROM hr.employees")
            if ok and len(rows) != self.state.baseline[self.effective()][0]:
                self.wrong("large", f"{len(rows)} rows of hr.employees")

    def op_abort_result(self):
        """Starts a large result in the simple protocol and cuts the connection mid-way."""
        pg = self.conn.pgconn
        pg.send_query(b"SELECT g, repeat('x', 1000) FROM generate_series(1, 200000) g")
        pg.flush()
        deadline = time.monotonic() + self.rng.uniform(0.02, 0.3)
        while time.monotonic() < deadline:
            pg.consume_input()
            time.sleep(0.01)
        with self.state.lock:
            self.state.abrupt["mid-result"] += 1
        self.drop(abrupt=True)

    def op_abort_extended(self):
        """Parse (and sometimes Bind/Execute/Flush) without Sync, then cuts the connection."""
        pg = self.conn.pgconn
        pg.enter_pipeline_mode()
        pg.send_prepare(b"soak_cut", f"SELECT {COLUMNS} FROM hr.employees WHERE id = $1".encode())
        kind = "parse-only"
        if self.rng.random() < 0.5:
            pg.send_query_prepared(b"soak_cut", [str(self.rng.randint(1, 10000)).encode()])
            pg.send_flush_request()
            kind = "parse-bind-execute-flush"
        pg.flush()
        deadline = time.monotonic() + self.rng.uniform(0.0, 0.1)
        while time.monotonic() < deadline:
            pg.consume_input()
            time.sleep(0.01)
        with self.state.lock:
            self.state.abrupt[kind] += 1
        self.drop(abrupt=True)

    def op_reconnect(self):
        self.drop()
        self.user = self.rng.choice(USERS)

    OPS = [
        ("simple", 20), ("extended", 20), ("prepared", 15), ("sql_prepare", 5),
        ("counts", 8), ("impersonate", 6), ("refused", 8), ("txn_error", 5),
        ("savepoint", 4), ("txn_impersonate", 3), ("copy", 2), ("large", 2),
        ("abort_result", 0.7), ("abort_extended", 0.7), ("reconnect", 1),
    ]

    def run(self, until):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while not self.state.stop.is_set() and time.monotonic() < until:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.drop()
                if not self.connect():
                    time.sleep(0.2)
                    continue
            op = self.rng.choices(names, weights)[0]
            try:
                getattr(self, "op_" + op)()
            except Broken:
                self.drop()
            except StepFailed:
                # Leave no transaction open (not counted: it is not the workload's).
                try:
                    self.conn.execute("ROLLBACK")
                except psycopg.Error:
                    self.drop()
            except psycopg.Error as e:
                # A failure outside `ex` (copy set-up, the pipeline calls).
                broken = self.conn is None or self.conn.broken or self.conn.closed
                code = e.sqlstate or ("conn-lost" if broken else f"no-sqlstate:{type(e).__name__}")
                self.state.record(op, code, False, self.state.now(), self.state.now())
                self.drop()
            except Exception as e:  # a bug of ours: count it, keep going
                self.state.record(op, f"driver:{type(e).__name__}", False,
                                  self.state.now(), self.state.now())
                print(f"soak: client {self.index} {op}: {e!r}", file=sys.stderr)
                self.drop()
        self.drop()


def shut(conn):
    """Ends the TCP connection under libpq without a Terminate or a TLS close_notify."""
    try:
        s = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()
    except (OSError, psycopg.Error):
        pass


# ---------------------------------------------------------------- sampling and hangs

def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def clients_gauge(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("redveil_clients"):
                    return int(float(line.split()[-1]))
    except Exception:
        return None
    return 0


def sampler(st, clients):
    a = st.args
    while not st.stop.wait(a.sample_seconds):
        take_sample(st)
        watch_hangs(st, clients)


def take_sample(st, label=None):
    a = st.args
    s = proc_status(a.proxy_pid)
    with st.lock:
        ok, err = st.interval_ok, st.interval_err
        st.interval_ok = st.interval_err = 0
        phase = label or st.phase
    st.samples.append({
        "t": st.now(), "phase": phase, "rss": s.get("VmRSS"), "hwm": s.get("VmHWM"),
        "threads": s.get("Threads"), "fds": s.get("fds"), "clients": clients_gauge(a.metrics),
        "ok": ok, "err": err,
    })


def watch_hangs(st, clients):
    now = st.now()
    for c in clients:
        busy = c.busy
        if busy and not c.hung and now - busy[0] > st.args.deadline:
            c.hung = True
            with st.lock:
                st.hangs.append((busy[0], st.phase, c.index, c.user, busy[1], busy[2][:100]))
            conn = c.conn
            if conn is not None:
                shut(conn)


# ---------------------------------------------------------------- report

def sparkline(values):
    bars = "▁▂▃▄▅▆▇█"
    vals = [v for v in values if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1
    return "".join(" " if v is None else bars[min(7, int((v - lo) / span * 8))] for v in values)


def mib(kb):
    return "–" if kb is None else f"{kb / 1024:.1f}"


def report(st, meta):
    a = st.args
    out = []
    p = out.append
    marks = st.marks
    p(f"### Soak run {meta.get('date', '')} on {meta.get('cores', '?')} cores")
    p("")
    for key, label in [("command", "command"), ("commit", "commit"), ("cpu", "machine"),
                       ("postgres", "PostgreSQL"), ("settings", "settings"),
                       ("load_start", "load average at start")]:
        if key in meta:
            p(f"- {label}: {meta[key]}")
    p(f"- load average at end: {open('/proc/loadavg').read().split()[0:3]}")
    p(f"- {a.clients} clients for {a.seconds:.0f} s; backend stopped at "
      f"{marks.get('stop', float('nan')):.1f} s, accepting again at {marks.get('back', float('nan')):.1f} s "
      f"(down {marks.get('back', 0) - marks.get('stop', 0):.1f} s)")
    p("")

    samples = [s for s in st.samples if s["phase"] in PHASES]
    rss = [s["rss"] for s in samples]
    p("#### Proxy RSS over time")
    p("")
    if rss and None not in rss:
        first_min = [s["rss"] for s in samples if s["t"] <= 60] or rss[:1]
        last_min = [s["rss"] for s in samples if s["t"] >= samples[-1]["t"] - 60] or rss[-1:]
        p(f"VmRSS every {a.sample_seconds:g} s (MiB), {min(rss) / 1024:.1f} → {max(rss) / 1024:.1f}:")
        p("")
        p("    " + sparkline(rss))
        p("")
        p(f"- min {mib(min(rss))} MiB, max {mib(max(rss))} MiB, final (under load) {mib(rss[-1])} MiB; "
          f"median of the first minute {mib(statistics.median(first_min))}, of the last minute "
          f"{mib(statistics.median(last_min))}; peak (VmHWM) {mib(samples[-1]['hwm'])} MiB")
    for s in st.samples:
        if s["phase"] == "idle":
            p(f"- after every client closed (+{s['t'] - samples[-1]['t']:.0f} s): RSS {mib(s['rss'])} MiB, "
              f"{s['fds']} fds, {s['threads']} threads, redveil_clients = {s['clients']}")
    p("")
    step = max(1, round(len(samples) / 24))
    p(f"| t (s) | phase | RSS MiB | fds | threads | redveil_clients | ok stmts/s | unexpected errors/s |")
    p("|---:|---|---:|---:|---:|---:|---:|---:|")
    for i in range(0, len(samples), step):
        chunk = samples[i:i + step]
        dt = chunk[-1]["t"] - (samples[i - 1]["t"] if i else 0)
        s = chunk[-1]
        ok = sum(c["ok"] for c in chunk)
        err = sum(c["err"] for c in chunk)
        phases = "/".join(dict.fromkeys(c["phase"] for c in chunk))
        p(f"| {s['t']:.0f} | {phases} | {mib(s['rss'])} | {s['fds']} | {s['threads']} | "
          f"{s['clients'] if s['clients'] is not None else '–'} | {ok / dt:,.0f} | {err / dt:,.1f} |")
    p("")

    # Throughput per phase
    bounds = {"before": (0, marks.get("stop", a.seconds)),
              "during": (marks.get("stop", a.seconds), marks.get("back", a.seconds)),
              "after": (marks.get("back", a.seconds), marks.get("end", a.seconds))}
    p("#### Statements per phase")
    p("")
    p("| phase | seconds | ok | expected refusals | unexpected errors | wrong results | ok/s | median ms | max s | > 1 s |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ph in PHASES:
        lo, hi = bounds[ph]
        dur = max(hi - lo, 1e-9)
        ok = sum(n for (q, _o, c, e), n in st.counts.items() if q == ph and c == "ok")
        exp = sum(n for (q, _o, c, e), n in st.counts.items() if q == ph and c != "ok" and e)
        bad = sum(n for (q, _o, c, e), n in st.counts.items() if q == ph and not e and c != "WRONG")
        wrong = sum(n for (q, _o, c, e), n in st.counts.items() if q == ph and c == "WRONG")
        lat = st.latency[ph]
        med = f"{statistics.median(lat) * 1000:.1f}" if lat else "–"
        p(f"| {ph} | {dur:.1f} | {ok:,} | {exp:,} | {bad:,} | {wrong:,} | {ok / dur:,.0f} | {med} | "
          f"{st.max_latency[ph]:.2f} | {st.slow[ph]} |")
    p("")
    p("Slowest successful statement per phase: " + "; ".join(
        f"{ph} {d:.2f} s ({op}, started at {t:.1f} s)" for ph in PHASES
        if ph in st.slowest for d, op, t in [st.slowest[ph]]) + ".")
    p("")

    p("#### Errors by SQLSTATE")
    p("")
    codes = sorted({(c, e) for (_q, _o, c, e) in st.counts if c != "ok"}, key=lambda x: (not x[1], x[0]))
    p("| SQLSTATE | expected | " + " | ".join(PHASES) + " | operations | messages (first distinct) |")
    p("|---|---|" + "---:|" * len(PHASES) + "---|---|")
    for code, exp in codes:
        per = [sum(n for (q, _o, c, e), n in st.counts.items() if q == ph and c == code and e == exp)
               for ph in PHASES]
        ops = collections.Counter()
        for (q, o, c, e), n in st.counts.items():
            if c == code and e == exp:
                ops[o] += n
        p(f"| {code} | {'yes' if exp else '**no**'} | " + " | ".join(f"{n:,}" for n in per) + " | " +
          ", ".join(f"{o} {n}" for o, n in ops.most_common()) + " | " +
          "; ".join(st.messages.get(code, [])).replace("|", "\\|") + " |")
    p("")
    p("Logins: " + ", ".join(f"{ph} {sum(n for (q, c), n in st.connects.items() if q == ph and c == 'ok')} ok"
                             + "".join(f", {n} {c}" for (q, c), n in st.connects.items() if q == ph and c != "ok")
                             for ph in PHASES) +
      f". Abrupt disconnects: " + ", ".join(f"{k} {n}" for k, n in sorted(st.abrupt.items())) + ".")
    p("")

    p("#### Restart and recovery")
    p("")
    stop, back = marks.get("stop"), marks.get("back")
    if stop is not None and back is not None:
        p(f"- backend down (pg_ctl stop -m fast → start -w) from {stop:.1f} s to {back:.1f} s")
        if st.first_ok_after_back is not None:
            p(f"- first successful statement started after the server was back: "
              f"+{st.first_ok_after_back - back:.2f} s after it accepted connections "
              f"(+{st.first_ok_after_back - stop:.2f} s after the stop)")
        else:
            p("- **no statement succeeded after the server was back**")
        if st.first_ok_after_stop is not None and st.first_ok_after_stop < back:
            p(f"- the first statement started after the stop signal to succeed ended at "
              f"+{st.first_ok_after_stop - stop:.2f} s, before the server was back (the server "
              f"was still shutting down, or the proxy answered it alone: `during` row of the table)")
        if st.last_restart_error is not None and st.last_restart_error >= stop:
            p(f"- last connection-class error (08xxx, 57xxx, 53300, lost connection): "
              f"{st.last_restart_error - back:+.2f} s from the moment the server was back")
    if st.after_errors:
        p("- the first unexpected errors after the server was back (start → end, from the moment it was back):")
        for t0, t1, i, op, code, msg in st.after_errors:
            p(f"  - {t0 - back:+.2f} → {t1 - back:+.2f} s, client {i}, {op}: {code} {msg}")
    p("")
    p("#### Hangs and wrong results")
    p("")
    if st.hangs:
        p(f"**{len(st.hangs)} statement(s) exceeded the {a.deadline:g} s deadline** (socket cut):")
        p("")
        for t, ph, i, user, op, sql in st.hangs:
            p(f"- started at {t:.1f} s ({ph}), client {i} ({user}), {op}: `{sql}`")
    else:
        p(f"No statement exceeded the {a.deadline:g} s deadline (no hang).")
    p("")
    if st.wrong:
        p(f"**Wrong results** (first {len(st.wrong)}):")
        p("")
        for w in st.wrong:
            p(f"- {w}")
    else:
        p("No wrong result (row counts, masks, impersonation checks all as expected).")
    p("")
    if st.end_checks:
        p("#### After the run")
        p("")
        for line in st.end_checks:
            p(f"- {line}")
        p("")
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn-proxy", required=True)
    ap.add_argument("--dsn-super", required=True)
    ap.add_argument("--proxy-pid", type=int, required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--sample-seconds", type=float, default=5)
    ap.add_argument("--deadline", type=float, default=30)
    ap.add_argument("--report")
    ap.add_argument("--tsv")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    meta = dict(m.split("=", 1) for m in a.meta)

    st = State(a)
    st.end_checks = []

    def on_stop(*_):
        with st.lock:
            st.marks["stop"] = st.now()
            st.phase = "during"

    def on_back(*_):
        with st.lock:
            st.marks["back"] = st.now()
            st.phase = "after"

    signal.signal(signal.SIGUSR1, on_stop)
    signal.signal(signal.SIGUSR2, on_back)

    # What each user sees of hr.employees (count, count(ssn)): the checks' reference.
    st.baseline = {}
    for user in USERS:
        with psycopg.connect(a.dsn_proxy, user=user, password=user, autocommit=True) as conn:
            st.baseline[user] = tuple(conn.execute(
                "SELECT count(*), count(ssn) FROM hr.employees").fetchone())
    print("soak: baseline (count, count(ssn)) " +
          ", ".join(f"{u} {b}" for u, b in st.baseline.items()), file=sys.stderr)
    with psycopg.connect(a.dsn_super, autocommit=True) as conn:
        tokens0 = conn.execute("SELECT count(*) FROM immuta_system.session_tokens").fetchone()[0]
    take_sample(st, "start")

    st.t0 = time.monotonic()
    st.samples.clear()
    until = time.monotonic() + a.seconds
    clients = [Client(st, i, a.dsn_proxy) for i in range(a.clients)]
    threads = [threading.Thread(target=c.run, args=(until,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    samp = threading.Thread(target=sampler, args=(st, clients), daemon=True)
    samp.start()
    last_print = 0
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() > until + 2 * a.deadline:
            # Hangs were cut at the deadline; a thread still here is stuck in the driver.
            st.end_checks.append(f"**{sum(t.is_alive() for t in threads)} client thread(s) still "
                                 f"running {2 * a.deadline:g} s after the end**")
            break
        now = st.now()
        if now - last_print >= 60 and st.samples:
            last_print = now
            s = st.samples[-1]
            print(f"soak: {now:5.0f} s {st.phase:6} RSS {mib(s['rss'])} MiB fds {s['fds']} "
                  f"clients {s['clients']} ok/interval {s['ok']} unexpected {s['err']}", file=sys.stderr)
    st.marks["end"] = st.now()
    st.stop.set()
    samp.join()

    # Every client is gone: the proxy should hold none, and no impersonation token should remain.
    time.sleep(3)
    take_sample(st, "idle")
    try:
        with psycopg.connect(a.dsn_super, autocommit=True) as conn:
            tokens = conn.execute("SELECT count(*) FROM immuta_system.session_tokens").fetchone()[0]
            backends = conn.execute(
                "SELECT usename, state, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid() GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        st.end_checks.append(f"rows in immuta_system.session_tokens: {tokens0} before the run, {tokens} after "
                             f"(more after = impersonation tokens not retired)")
        st.end_checks.append("backend sessions left: " +
                             (", ".join(f"{u} {s} {n}" for u, s, n in backends) or "none"))
    except psycopg.Error as e:
        st.end_checks.append(f"end checks failed: {e}")

    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write("t\tphase\trss_kb\thwm_kb\tfds\tthreads\tclients\tok\terr\n")
            for s in st.samples:
                f.write(f"{s['t']:.1f}\t" + "\t".join(str(s[k]) for k in (
                    "phase", "rss", "hwm", "fds", "threads", "clients", "ok", "err")) + "\n")
    text = report(st, meta)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
