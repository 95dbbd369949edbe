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


def steps(conn, cur):
    def execute(sql, args=None):
        if args is None:
            cur.execute(sql)
        else:
            cur.execute(sql, args)
        return cur

    return s.Steps(conn, execute, sqlstate)


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

        analyst = steps(conn, cur)
        analyst.prepared_across_transactions(
            env, "SELECT count(*) FROM hr.employees WHERE id <= %s"
        )
        analyst.masked_as_analyst(env)
        analyst.error_with_sqlstate(redshift_connector.ProgrammingError)

    with connect(env, "admin", sslmode="verify-full") as conn:
        conn.autocommit = True
        cur = conn.cursor()
        admin = steps(conn, cur)
        admin.raw_as_admin_and_impersonation(env)
        admin.rolled_back(env)

        cur.execute(s.BIG_SQL)
        s.check_big_fetch(cur.fetchall())


if __name__ == "__main__":
    s.main(run)
