"""psycopg2 (binary wheel, libpq underneath): the scripted session.

psycopg2 interpolates parameters into the SQL text on the client and speaks only the simple
protocol, so its prepared statement is SQL-level PREPARE / EXECUTE, which redveil keeps
working across pooled backend connections.
"""

import psycopg2
import psycopg2.errors

import session as s

PARAMS_SQL = (
    "SELECT %s::text, %s::int4, %s::numeric, %s::timestamp, %s::bytea, "
    "%s::text IS NULL, %s::text"
)


def connect(env, user):
    conn = psycopg2.connect(
        host=env.host,
        port=env.port,
        dbname=env.database,
        user=user,
        password=env.password(user),
        sslmode="verify-full",
        sslrootcert=env.ca,
        application_name="redveil-clients-psycopg2",
    )
    return conn


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()


def steps(conn, cur):
    def execute(sql, args=None):
        cur.execute(sql, args)
        return cur

    return s.Steps(conn, execute, sqlstate=lambda e: e.pgcode)


def run(env):
    conn = connect(env, "analyst")
    conn.autocommit = True
    cur = conn.cursor()
    s.check_simple(one(cur, s.SIMPLE_SQL))
    s.ok("simple query")

    row = one(
        cur,
        PARAMS_SQL,
        (s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, psycopg2.Binary(s.BYTEA), None, None),
    )
    s.check_params(row)
    s.ok("parameterized query")

    analyst = steps(conn, cur)
    cur.execute("PREPARE employees_upto(int) AS SELECT count(*) FROM hr.employees WHERE id <= $1")
    analyst.prepared_across_transactions(env, "EXECUTE employees_upto(%s)")

    analyst.masked_as_analyst(env)
    analyst.error_with_sqlstate(psycopg2.errors.DivisionByZero)
    conn.close()

    conn = connect(env, "admin")
    conn.autocommit = True
    cur = conn.cursor()
    admin = steps(conn, cur)
    admin.raw_as_admin_and_impersonation(env)
    admin.rolled_back(env)

    cur.execute(s.BIG_SQL)
    s.check_big_fetch(cur)
    conn.close()


if __name__ == "__main__":
    s.main(run)
