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

    analyst = steps(conn, cur)
    pid_cur = conn.cursor()
    # The same SQL on the same cursor: pyodbc reuses its prepared statement.
    analyst.prepared_across_transactions(
        env,
        "SELECT count(*) FROM hr.employees WHERE id <= ?",
        backend_pid=lambda: one(pid_cur, "SELECT pg_backend_pid()")[0],
    )

    analyst.masked_as_analyst(env)
    analyst.error_with_sqlstate(pyodbc.Error)
    conn.close()

    conn = connect(env, "admin")
    cur = conn.cursor()
    admin = steps(conn, cur)
    admin.raw_as_admin_and_impersonation(env)
    admin.rolled_back(env)

    cur.execute(s.BIG_SQL)
    s.check_big_fetch(row for rows in iter(lambda: cur.fetchmany(10_000), []) for row in rows)
    conn.close()


if __name__ == "__main__":
    s.main(run)
