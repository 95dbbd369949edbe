"""What every client's scripted session runs and expects (see tests/clients.rs).

The harness passes the connection details in REDVEIL_* environment variables; each driver
script imports this module for the SQL, the parameter values and the checks, so that every
driver is held to the same results. A failed check raises, the script exits non-zero and the
harness prints its output.
"""

import datetime
import decimal
import os
import sys

# Parameter values of the parameterized query: text, integer, numeric, timestamp, bytea, null.
TEXT = "héllo wörld ✓ 'quoted' \\ backslash"
INT = 42
NUMERIC = decimal.Decimal("12345.678")
TIMESTAMP = datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)
BYTEA = b"\x00\x01\xff'\\"

SIMPLE_SQL = "SELECT 1 AS one, 'redveil' AS name"

# One row about hr.employees as the effective user sees it: rows, non-null ssn, names masked
# to their first letter, e-mails that are still addresses, rows outside the EU.
MASK_SQL = (
    "SELECT count(*), count(ssn), "
    "count(*) FILTER (WHERE name LIKE '_***'), "
    "count(*) FILTER (WHERE position('@' in email) > 0), "
    "count(*) FILTER (WHERE region <> 'EU') "
    "FROM hr.employees"
)
FIRST_ROW_SQL = "SELECT name, ssn, region FROM hr.employees ORDER BY id LIMIT 1"

BIG_SQL = "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) AS g"
BIG_ROWS = 100_000

DIVISION_BY_ZERO = "22012"
QUERY_CANCELED = "57014"

# The prepared statement runs this often, one transaction each: past pgjdbc's
# prepareThreshold (5) and psycopg's prepare_threshold (5).
PREPARED_RUNS = 12


class Env:
    """Connection details from the harness."""

    def __init__(self):
        self.host = os.environ["REDVEIL_HOST"]
        self.port = int(os.environ["REDVEIL_PORT"])
        self.database = os.environ["REDVEIL_DATABASE"]
        self.ca = os.environ["REDVEIL_CA"]
        self.eu_rows = int(os.environ["REDVEIL_EU_ROWS"])
        self.total_rows = int(os.environ["REDVEIL_TOTAL_ROWS"])
        self.scratch = os.environ["REDVEIL_SCRATCH_TABLE"]
        self.client = os.environ["REDVEIL_CLIENT"]
        # Distinct backend connections the prepared-statement transactions must reach.
        self.min_backends = int(os.environ.get("REDVEIL_MIN_BACKENDS", "2"))

    def password(self, user):
        return os.environ["REDVEIL_PASSWORD_" + user.upper()]

    def prepared_bound(self, run):
        """The statement's parameter on run `run` and the count it must return."""
        return (10_000, self.eu_rows) if run % 2 == 0 else (0, 0)


def ok(step, detail=""):
    print(f"ok {step} {detail}".rstrip(), flush=True)


def done():
    print("session complete", flush=True)


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")


def check_simple(row):
    check("simple query", tuple(row), (1, "redveil"))


def check_params(row, timestamp=TIMESTAMP, bytea=BYTEA):
    """The parameters came back as sent. Drivers that return bytea as its text form
    (redshift_connector) pass `bytea` as that form."""
    text, integer, numeric, ts, data, is_null, null = row
    check("text parameter", text, TEXT)
    check("integer parameter", integer, INT)
    check("numeric parameter", decimal.Decimal(str(numeric)), NUMERIC)
    check("timestamp parameter", ts, timestamp)
    check("bytea parameter", data if isinstance(bytea, str) else bytes(data), bytea)
    check("null parameter IS NULL", is_null, True)
    check("null parameter", null, None)


def check_masked(row, env, who="analyst"):
    """The analyst's view: EU rows only, ssn NULL, names masked, e-mails hashed."""
    eu = env.eu_rows
    check(f"{who}: masked aggregate", tuple(int(v) for v in row), (eu, 0, eu, 0, 0))


def check_raw(row, env):
    """The admin's view (group hr): every row, raw."""
    total = env.total_rows
    check(
        "admin: raw aggregate",
        tuple(int(v) for v in row),
        (total, total, 0, total, total - env.eu_rows),
    )


def check_first_masked(row):
    check("analyst: first row", tuple(row), ("B***", None, "EU"))


def check_first_raw(row):
    check("admin: first row", tuple(row), ("Bruno Anderson", "819-32-4740", "EU"))


def check_pids(pids, env):
    # A rotating pool (`reuse = "rotate"`) with several idle connections: the transactions must not all have run on
    # one backend connection, or the test would not exercise re-preparation.
    if len(set(pids)) < env.min_backends:
        raise AssertionError(f"all {len(pids)} transactions ran on one backend: {pids}")


class Steps:
    """The steps that every DB-API 2.0 driver runs alike, given how it runs a statement.

    `execute(sql, args=None)` runs one statement (args: a tuple in the driver's parameter
    style, marked by `marker`) and returns the cursor holding its result; `conn` has
    `autocommit` and `rollback()`; `sqlstate(error)` reads the SQLSTATE off the driver's
    exception.
    """

    def __init__(self, conn, execute, sqlstate, marker="%s"):
        self.conn = conn
        self.execute = execute
        self.sqlstate = sqlstate
        self.marker = marker

    def one(self, sql, args=None):
        return self.execute(sql, args).fetchone()

    def prepared_across_transactions(self, env, sql, backend_pid=None):
        """Runs `sql` (its one parameter: the bound) PREPARED_RUNS times, one transaction each,
        and checks the transactions reached several backend connections. `backend_pid` reads
        the pid where the driver must not use the statement's own cursor for it."""
        if backend_pid is None:
            backend_pid = lambda: self.one("SELECT pg_backend_pid()")[0]  # noqa: E731
        self.conn.autocommit = False
        pids = []
        for run_no in range(PREPARED_RUNS):
            bound, want = env.prepared_bound(run_no)
            pids.append(backend_pid())
            check(f"prepared run {run_no}", self.one(sql, (bound,))[0], want)
            self.conn.commit()
        check_pids(pids, env)
        ok("prepared statement across transactions", f"backends={len(set(pids))}")
        self.conn.autocommit = True

    def masked_as_analyst(self, env):
        check_masked(self.one(MASK_SQL), env)
        check_first_masked(self.one(FIRST_ROW_SQL))
        ok("masked query as analyst")

    def error_with_sqlstate(self, error_class):
        try:
            self.one("SELECT 1 / 0")
        except error_class as e:
            check("SQLSTATE", self.sqlstate(e), DIVISION_BY_ZERO)
        else:
            raise AssertionError("division by zero succeeded")
        check_simple(self.one(SIMPLE_SQL))
        ok("error with SQLSTATE", DIVISION_BY_ZERO)

    def raw_as_admin_and_impersonation(self, env):
        check_raw(self.one(MASK_SQL), env)
        check_first_raw(self.one(FIRST_ROW_SQL))
        ok("raw query as admin")
        self.execute("CALL immuta_procedures.impersonate_user('analyst')")
        check_masked(self.one(MASK_SQL), env, "admin as analyst")
        self.execute("CALL immuta_procedures.impersonate_user(NULL)")
        check_raw(self.one(MASK_SQL), env)
        ok("impersonation and back")

    def rolled_back(self, env):
        self.conn.autocommit = False
        count_sql = f"SELECT count(*) FROM {env.scratch} WHERE client = {self.marker}"
        self.execute(
            f"INSERT INTO {env.scratch} (client, n) VALUES ({self.marker}, 1)", (env.client,)
        )
        check("row inside the transaction", self.one(count_sql, (env.client,))[0], 1)
        self.conn.rollback()
        check("row after rollback", self.one(count_sql, (env.client,))[0], 0)
        self.conn.rollback()
        ok("transaction rolled back")
        self.conn.autocommit = True


class BigCounter:
    """Accumulates the 100 000-row fetch and checks it at the end."""

    def __init__(self):
        self.rows = 0
        self.sum = 0

    def add(self, g, text):
        self.rows += 1
        self.sum += int(g)
        if text != "x" * 100:
            raise AssertionError(f"row {g}: unexpected text {text!r}")

    def check(self):
        check("big fetch rows", self.rows, BIG_ROWS)
        check("big fetch sum", self.sum, BIG_ROWS * (BIG_ROWS + 1) // 2)


def check_big_fetch(rows):
    """Checks the 100 000 rows of BIG_SQL, however the driver hands them over."""
    big = BigCounter()
    for g, text in rows:
        big.add(g, text)
    big.check()
    ok("100 000-row fetch")


def main(run):
    """Runs `run(env)` and exits non-zero with the traceback on any failure."""
    try:
        run(Env())
    except Exception:  # noqa: BLE001 - report everything to the harness
        import traceback

        traceback.print_exc()
        sys.exit(1)
    done()
