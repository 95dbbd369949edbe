"""Amazon's redshift_connector: the scripted session, through redveil in front of PostgreSQL.

It sends Redshift-only startup parameters (client_protocol_version, driver_version...), cannot
complete SCRAM (redveil offers it `auth.redshift_driver_method`, cleartext over TLS by default),
parses `server_version` with `packaging`, and trusts the system store plus its bundled Redshift
CA: the harness points SSL_CERT_FILE at the test CA. It connects with the driver's default
sslmode, then sslmode=verify-ca (analyst) and sslmode=verify-full (admin).
"""

import redshift_connector

import session as s

# Python bytes travel as Redshift VARBYTE does, in hex text, and bytea results come back in
# their text form ('\\x...'): the driver's Redshift conventions, kept as they are.
PARAMS_SQL = (
    "SELECT %s::text, %s::int4, %s::numeric, %s::timestamp, decode(%s, 'hex'), "
    "%s::text IS NULL, %s::text"
)
BYTEA_TEXT = "\\x" + s.BYTEA.hex()


def connect(env, user, **extra):
    return redshift_connector.connect(
        host=env.host,
        port=env.port,
        database=env.database,
        user=user,
        password=env.password(user),
        ssl=True,
        application_name="redveil-clients-redshift_connector",
        **extra,
    )


def one(cursor, sql, args=None):
    if args is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, args)
    return cursor.fetchone()


def sqlstate(error):
    info = error.args[0] if error.args else None
    return info.get("C") if isinstance(info, dict) else None


def run(env):
    # Default sslmode first: nothing but host, port, database, user and password given.
    with connect(env, "analyst") as conn:
        cur = conn.cursor()
        s.check_simple(one(cur, s.SIMPLE_SQL))
        s.check("server_protocol_version", conn._client_protocol_version, 0)
        statuses = dict(conn.parameter_statuses)
        s.check("server_protocol_version", statuses.get(b"server_protocol_version"), b"0")
        # Parsed with `packaging` at login; a Debian-style suffix would have raised.
        s.check("server_version parsed", str(conn._server_version), statuses[b"server_version"].decode())
        s.ok("default sslmode, simple query")

    with connect(env, "analyst", sslmode="verify-ca") as conn:
        conn.autocommit = True
        cur = conn.cursor()
        s.check_simple(one(cur, s.SIMPLE_SQL))
        s.ok("simple query (verify-ca)")

        row = one(cur, PARAMS_SQL, (s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, s.BYTEA, None, None))
        s.check_params(row, bytea=BYTEA_TEXT)
        s.ok("parameterized query")

        conn.autocommit = False
        pids = []
        for run_no in range(s.PREPARED_RUNS):
            bound, want = env.prepared_bound(run_no)
            pids.append(one(cur, "SELECT pg_backend_pid()")[0])
            got = one(cur, "SELECT count(*) FROM hr.employees WHERE id <= %s", (bound,))[0]
            s.check(f"prepared run {run_no}", got, want)
            conn.commit()
        s.check_pids(pids, env)
        s.ok("prepared statement across transactions", f"backends={len(set(pids))}")

        conn.autocommit = True
        s.check_masked(one(cur, s.MASK_SQL), env)
        s.check_first_masked(one(cur, s.FIRST_ROW_SQL))
        s.ok("masked query as analyst")

        try:
            one(cur, "SELECT 1 / 0")
            raise AssertionError("division by zero succeeded")
        except redshift_connector.ProgrammingError as e:
            s.check("SQLSTATE", sqlstate(e), s.DIVISION_BY_ZERO)
        s.check_simple(one(cur, s.SIMPLE_SQL))
        s.ok("error with SQLSTATE", s.DIVISION_BY_ZERO)

    with connect(env, "admin", sslmode="verify-full") as conn:
        conn.autocommit = True
        cur = conn.cursor()
        s.check_raw(one(cur, s.MASK_SQL), env)
        s.check_first_raw(one(cur, s.FIRST_ROW_SQL))
        s.ok("raw query as admin")

        cur.execute("CALL immuta_procedures.impersonate_user('analyst')")
        s.check_masked(one(cur, s.MASK_SQL), env, "admin as analyst")
        cur.execute("CALL immuta_procedures.impersonate_user(NULL)")
        s.check_raw(one(cur, s.MASK_SQL), env)
        s.ok("impersonation and back")

        conn.autocommit = False
        cur.execute(f"INSERT INTO {env.scratch} (client, n) VALUES (%s, 1)", (env.client,))
        got = one(cur, f"SELECT count(*) FROM {env.scratch} WHERE client = %s", (env.client,))[0]
        s.check("row inside the transaction", got, 1)
        conn.rollback()
        got = one(cur, f"SELECT count(*) FROM {env.scratch} WHERE client = %s", (env.client,))[0]
        s.check("row after rollback", got, 0)
        conn.rollback()
        s.ok("transaction rolled back")

        conn.autocommit = True
        big = s.BigCounter()
        cur.execute(s.BIG_SQL)
        for g, text in cur.fetchall():
            big.add(g, text)
        big.check()
        s.ok("100 000-row fetch")


if __name__ == "__main__":
    s.main(run)
