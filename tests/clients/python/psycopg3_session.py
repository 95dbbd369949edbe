"""psycopg 3 (binary build, libpq underneath): the scripted session."""

import threading

import psycopg

import session as s

PARAMS_SQL = (
    "SELECT %s::text, %s::int4, %s::numeric, %s::timestamp, %s::bytea, "
    "%s::text IS NULL, %s::text"
)


def connect(env, user):
    return psycopg.connect(
        host=env.host,
        port=env.port,
        dbname=env.database,
        user=user,
        password=env.password(user),
        sslmode="verify-full",
        sslrootcert=env.ca,
        # SCRAM-SHA-256-PLUS bound to redveil's certificate, or no connection at all.
        channel_binding="require",
        application_name="redveil-clients-psycopg3",
    )


def run(env):
    with connect(env, "analyst") as conn:
        conn.autocommit = True
        s.check("TLS in use", conn.pgconn.ssl_in_use, True)
        s.check_simple(conn.execute(s.SIMPLE_SQL).fetchone())
        s.ok("simple query")

        row = conn.execute(
            PARAMS_SQL, (s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, s.BYTEA, None, None)
        ).fetchone()
        s.check_params(row)
        # The same values in binary format.
        row = conn.cursor(binary=True).execute(
            PARAMS_SQL, (s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, s.BYTEA, None, None)
        ).fetchone()
        s.check_params(row)
        s.ok("parameterized query (text and binary)")

        conn.autocommit = False
        pids = []
        for run_no in range(s.PREPARED_RUNS):
            bound, want = env.prepared_bound(run_no)
            with conn.transaction():
                pids.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
                got = conn.execute(
                    "SELECT count(*) FROM hr.employees WHERE id <= %s", (bound,)
                ).fetchone()[0]
                s.check(f"prepared run {run_no}", got, want)
            conn.commit()
        s.check_pids(pids, env)
        s.ok("prepared statement across transactions", f"backends={len(set(pids))}")

        conn.autocommit = True
        analyst = s.Steps(conn, conn.execute, sqlstate=lambda e: e.sqlstate)
        analyst.masked_as_analyst(env)
        analyst.error_with_sqlstate(psycopg.errors.DivisionByZero)

        # cancel_safe() is libpq 17's cancel API: the cancel request goes over TLS too.
        cancel_errors = []

        def cancel():
            try:
                conn.cancel_safe(timeout=10)
            except Exception as e:  # noqa: BLE001 - reported below
                cancel_errors.append(e)

        timer = threading.Timer(0.5, cancel)
        timer.start()
        try:
            conn.execute("SELECT pg_sleep(30)")
            raise AssertionError("pg_sleep(30) was not cancelled")
        except psycopg.errors.QueryCanceled as e:
            s.check("SQLSTATE", e.sqlstate, s.QUERY_CANCELED)
        timer.join()
        if cancel_errors:
            raise AssertionError(f"cancel_safe failed: {cancel_errors[0]!r}")
        s.check_simple(conn.execute(s.SIMPLE_SQL).fetchone())
        s.ok("cancel over TLS", s.QUERY_CANCELED)

    with connect(env, "admin") as conn:
        conn.autocommit = True
        admin = s.Steps(conn, conn.execute, sqlstate=lambda e: e.sqlstate)
        admin.raw_as_admin_and_impersonation(env)
        admin.rolled_back(env)

        with conn.cursor() as cur:
            cur.execute(s.BIG_SQL)
            s.check_big_fetch(cur)


if __name__ == "__main__":
    s.main(run)
