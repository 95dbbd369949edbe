"""asyncpg (its own protocol implementation, binary format, named prepared statements cached
per connection): the scripted session."""

import asyncio
import ssl

import asyncpg

import session as s

PARAMS_SQL = (
    "SELECT $1::text, $2::int4, $3::numeric, $4::timestamp, $5::bytea, "
    "$6::text IS NULL, $7::text"
)


async def connect(env, user):
    tls = ssl.create_default_context(cafile=env.ca)  # verifies the chain and the host name
    return await asyncpg.connect(
        host=env.host,
        port=env.port,
        database=env.database,
        user=user,
        password=env.password(user),
        ssl=tls,
        server_settings={"application_name": "redveil-clients-asyncpg"},
    )


async def run_async(env):
    conn = await connect(env, "analyst")
    s.check_simple(await conn.fetchrow(s.SIMPLE_SQL))
    s.ok("simple query")

    row = await conn.fetchrow(
        PARAMS_SQL, s.TEXT, s.INT, s.NUMERIC, s.TIMESTAMP, s.BYTEA, None, None
    )
    s.check_params(row)
    s.ok("parameterized query")

    statement = await conn.prepare("SELECT count(*) FROM hr.employees WHERE id <= $1")
    pids = []
    for run_no in range(s.PREPARED_RUNS):
        bound, want = env.prepared_bound(run_no)
        async with conn.transaction():
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
            s.check(f"prepared run {run_no}", await statement.fetchval(bound), want)
    s.check_pids(pids, env)
    s.ok("prepared statement across transactions", f"backends={len(set(pids))}")

    s.check_masked(await conn.fetchrow(s.MASK_SQL), env)
    s.check_first_masked(await conn.fetchrow(s.FIRST_ROW_SQL))
    s.ok("masked query as analyst")

    try:
        await conn.fetchval("SELECT 1 / $1::int", 0)
        raise AssertionError("division by zero succeeded")
    except asyncpg.exceptions.DivisionByZeroError as e:
        s.check("SQLSTATE", e.sqlstate, s.DIVISION_BY_ZERO)
    s.check_simple(await conn.fetchrow(s.SIMPLE_SQL))
    s.ok("error with SQLSTATE", s.DIVISION_BY_ZERO)

    # A timeout makes asyncpg send a cancel request (over TLS) and wait for the backend.
    started = asyncio.get_running_loop().time()
    try:
        await conn.fetchval("SELECT pg_sleep(30)", timeout=0.5)
        raise AssertionError("pg_sleep(30) did not time out")
    except asyncio.TimeoutError:
        pass
    s.check_simple(await conn.fetchrow(s.SIMPLE_SQL))
    elapsed = asyncio.get_running_loop().time() - started
    if elapsed > 10:
        raise AssertionError(f"the cancelled statement held the connection for {elapsed:.1f}s")
    s.ok("cancel on timeout")
    await conn.close()

    conn = await connect(env, "admin")
    s.check_raw(await conn.fetchrow(s.MASK_SQL), env)
    s.check_first_raw(await conn.fetchrow(s.FIRST_ROW_SQL))
    s.ok("raw query as admin")

    await conn.execute("CALL immuta_procedures.impersonate_user('analyst')")
    s.check_masked(await conn.fetchrow(s.MASK_SQL), env, "admin as analyst")
    await conn.execute("CALL immuta_procedures.impersonate_user(NULL)")
    s.check_raw(await conn.fetchrow(s.MASK_SQL), env)
    s.ok("impersonation and back")

    count_sql = f"SELECT count(*) FROM {env.scratch} WHERE client = $1"
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"INSERT INTO {env.scratch} (client, n) VALUES ($1, 1)", env.client)
    s.check("row inside the transaction", await conn.fetchval(count_sql, env.client), 1)
    await tx.rollback()
    s.check("row after rollback", await conn.fetchval(count_sql, env.client), 0)
    s.ok("transaction rolled back")

    big = s.BigCounter()
    async with conn.transaction():
        async for g, text in conn.cursor(s.BIG_SQL, prefetch=5000):
            big.add(g, text)
    big.check()
    rows = await conn.fetch(s.BIG_SQL)
    s.check("big fetch (all at once)", len(rows), s.BIG_ROWS)
    s.ok("100 000-row fetch (cursor and all at once)")
    await conn.close()


def run(env):
    asyncio.run(run_async(env))


if __name__ == "__main__":
    s.main(run)
