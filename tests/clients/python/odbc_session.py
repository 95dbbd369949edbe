"""psqlODBC (Debian's odbc-postgresql, driver "PostgreSQL Unicode") through unixODBC, driven by
pyodbc: the scripted session.

The driver is libpq underneath: sslmode=verify-full with the test CA as sslrootcert (passed
through the driver's `pqopt`). Statements are prepared server-side (UseServerSidePrepare=1).
"""

import pyodbc

import session as s

PARAMS_SQL = (
    "SELECT CAST(? AS text), CAST(? AS int4), CAST(? AS numeric), CAST(? AS timestamp), "
    "CAST(? AS bytea), CAST(? AS text) IS NULL, CAST(? AS text)"
)


def connect(env, user, autocommit=True):
    conn_str = (
        "Driver={PostgreSQL Unicode};"
        f"Server={env.host};Port={env.port};Database={env.database};"
        f"Uid={user};Pwd={{{env.password(user)}}};"
        "SSLmode=verify-full;"
        f"pqopt={{sslrootcert={env.ca} application_name=redveil-clients-odbc}};"
        "UseServerSidePrepare=1;BoolsAsChar=0;"
    )
    return pyodbc.connect(conn_str, autocommit=autocommit)


def one(cur, sql, *args):
    return cur.execute(sql, *args).fetchone()


def steps(conn, cur):
    return s.Steps(
        conn,
        lambda sql, args=None: cur.execute(sql, *(args or ())),
        sqlstate=lambda e: e.args[0],
        marker="?",
    )


def run(env):
    conn = connect(env, "analyst")
    cur = conn.cursor()
    s.check_simple(one(cur, s.SIMPLE_SQL))
    s.ok("simple query")

    row = one(cur, PARAMS_SQL, s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, s.BYTEA, None, None)
    s.check_params(row)
    s.ok("parameterized query")

    conn.autocommit = False
    pids = []
    pid_cur = conn.cursor()
    for run_no in range(s.PREPARED_RUNS):
        bound, want = env.prepared_bound(run_no)
        pids.append(one(pid_cur, "SELECT pg_backend_pid()")[0])
        # The same SQL on the same cursor: pyodbc reuses its prepared statement.
        got = one(cur, "SELECT count(*) FROM hr.employees WHERE id <= ?", bound)[0]
        s.check(f"prepared run {run_no}", got, want)
        conn.commit()
    s.check_pids(pids, env)
    s.ok("prepared statement across transactions", f"backends={len(set(pids))}")

    conn.autocommit = True
    analyst = steps(conn, cur)
    analyst.masked_as_analyst(env)
    analyst.error_with_sqlstate(pyodbc.Error)
    conn.close()

    conn = connect(env, "admin")
    cur = conn.cursor()
    admin = steps(conn, cur)
    admin.raw_as_admin_and_impersonation(env)
    admin.rolled_back(env)

    big = s.BigCounter()
    cur.execute(s.BIG_SQL)
    while True:
        rows = cur.fetchmany(10_000)
        if not rows:
            break
        for g, text in rows:
            big.add(g, text)
    big.check()
    s.ok("100 000-row fetch")
    conn.close()


if __name__ == "__main__":
    s.main(run)
