"""SQLAlchemy 2 Core: the scripted session through a dialect given on the command line.

    sqlalchemy_session.py psycopg               postgresql+psycopg (psycopg 3)
    sqlalchemy_session.py redshift_connector    redshift+redshift_connector (sqlalchemy-redshift)
"""

import sys

import sqlalchemy as sa

import session as s

PARAMS_SQL = sa.text(
    "SELECT CAST(:t AS text), CAST(:i AS int4), CAST(:n AS numeric), "
    "CAST(:ts AS timestamp), {bytea}, CAST(:null AS text) IS NULL, CAST(:null AS text)"
)
PARAMS = dict(t=s.TEXT, i=s.INT, n=s.NUMERIC, ts=s.TIMESTAMP, b=s.BYTEA, null=None)
PREPARED_SQL = sa.text("SELECT count(*) FROM hr.employees WHERE id <= :bound")


class Dialect:
    def __init__(self, name, env):
        self.name = name
        self.env = env
        if name == "psycopg":
            self.scheme = "postgresql+psycopg"
            self.connect_args = {"sslmode": "verify-full", "sslrootcert": env.ca}
            self.params_sql = sa.text(PARAMS_SQL.text.format(bytea="CAST(:b AS bytea)"))
            self.bytea = s.BYTEA
        elif name == "redshift_connector":
            # The harness points SSL_CERT_FILE at the test CA (see redshift_connector_session.py);
            # bytes travel as hex text, bytea comes back in its text form.
            self.scheme = "redshift+redshift_connector"
            self.connect_args = {"ssl": True, "sslmode": "verify-ca"}
            self.params_sql = sa.text(PARAMS_SQL.text.format(bytea="decode(:b, 'hex')"))
            self.bytea = "\\x" + s.BYTEA.hex()
        else:
            raise SystemExit(f"unknown dialect {name}")

    def engine(self, user):
        url = sa.engine.URL.create(
            self.scheme,
            username=user,
            password=self.env.password(user),
            host=self.env.host,
            port=self.env.port,
            database=self.env.database,
        )
        return sa.create_engine(url, connect_args=self.connect_args)

    def sqlstate(self, error):
        orig = error.orig
        if self.name == "psycopg":
            return orig.sqlstate
        info = orig.args[0] if orig.args else None
        return info.get("C") if isinstance(info, dict) else None


def run(env):
    d = Dialect(sys.argv[1], env)

    analyst = d.engine("analyst")
    with analyst.connect() as c:
        s.check_simple(c.execute(sa.text(s.SIMPLE_SQL)).one())
        s.ok("simple query")
        s.check_params(c.execute(d.params_sql, PARAMS).one(), bytea=d.bytea)
        s.ok("parameterized query")
        c.commit()

        pids = []
        for run_no in range(s.PREPARED_RUNS):
            bound, want = env.prepared_bound(run_no)
            pids.append(c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
            s.check(f"prepared run {run_no}", c.execute(PREPARED_SQL, {"bound": bound}).scalar_one(), want)
            c.commit()
        s.check_pids(pids, env)
        s.ok("prepared statement across transactions", f"backends={len(set(pids))}")

        s.check_masked(c.execute(sa.text(s.MASK_SQL)).one(), env)
        s.check_first_masked(c.execute(sa.text(s.FIRST_ROW_SQL)).one())
        c.commit()
        s.ok("masked query as analyst")

        try:
            c.execute(sa.text("SELECT 1 / 0"))
            raise AssertionError("division by zero succeeded")
        except sa.exc.DBAPIError as e:
            s.check("SQLSTATE", d.sqlstate(e), s.DIVISION_BY_ZERO)
        c.rollback()
        s.check_simple(c.execute(sa.text(s.SIMPLE_SQL)).one())
        c.commit()
        s.ok("error with SQLSTATE", s.DIVISION_BY_ZERO)
    analyst.dispose()

    admin = d.engine("admin")
    with admin.connect() as c:
        s.check_raw(c.execute(sa.text(s.MASK_SQL)).one(), env)
        s.check_first_raw(c.execute(sa.text(s.FIRST_ROW_SQL)).one())
        c.commit()
        s.ok("raw query as admin")

        c.execute(sa.text("CALL immuta_procedures.impersonate_user('analyst')"))
        c.commit()
        s.check_masked(c.execute(sa.text(s.MASK_SQL)).one(), env, "admin as analyst")
        c.commit()
        c.execute(sa.text("CALL immuta_procedures.impersonate_user(NULL)"))
        c.commit()
        s.check_raw(c.execute(sa.text(s.MASK_SQL)).one(), env)
        c.commit()
        s.ok("impersonation and back")

        scratch = sa.table(env.scratch.split(".")[1], sa.column("client"), sa.column("n"),
                           schema=env.scratch.split(".")[0])
        count = sa.select(sa.func.count()).select_from(scratch).where(scratch.c.client == env.client)
        c.execute(sa.insert(scratch).values(client=env.client, n=1))
        s.check("row inside the transaction", c.execute(count).scalar_one(), 1)
        c.rollback()
        s.check("row after rollback", c.execute(count).scalar_one(), 0)
        c.rollback()
        s.ok("transaction rolled back")

        big = s.BigCounter()
        options = {"stream_results": True} if d.name == "psycopg" else {}
        result = c.execution_options(**options).execute(sa.text(s.BIG_SQL))
        for g, text in result:
            big.add(g, text)
        big.check()
        c.commit()
        s.ok("100 000-row fetch")
    admin.dispose()


if __name__ == "__main__":
    s.main(run)
