// node-postgres (pg): the scripted session of tests/clients.rs.
//
// Connection details come from the REDVEIL_* environment variables; every check throws on a
// mismatch, and the last line printed is "session complete". TLS verifies the test CA and
// the host (node's default checkServerIdentity). Named queries ({ name, text, values }) are
// pg's prepared statements: parsed once per connection, then only bound and executed.
'use strict';

const fs = require('fs');
const assert = require('assert/strict');
const { Client } = require('pg');

const env = {
  host: process.env.REDVEIL_HOST,
  port: Number(process.env.REDVEIL_PORT),
  database: process.env.REDVEIL_DATABASE,
  ca: process.env.REDVEIL_CA,
  euRows: Number(process.env.REDVEIL_EU_ROWS),
  totalRows: Number(process.env.REDVEIL_TOTAL_ROWS),
  scratch: process.env.REDVEIL_SCRATCH_TABLE,
  client: process.env.REDVEIL_CLIENT,
  minBackends: Number(process.env.REDVEIL_MIN_BACKENDS || '2'),
  password: (user) => process.env[`REDVEIL_PASSWORD_${user.toUpperCase()}`],
};

const TEXT = "héllo wörld ✓ 'quoted' \\ backslash";
const BYTEA = Buffer.from([0x00, 0x01, 0xff, 0x27, 0x5c]);
// JavaScript dates hold milliseconds, so the timestamp is sent and compared at that precision.
const TIMESTAMP = new Date(2024, 1, 29, 13, 14, 15, 123);
const MASK_SQL =
  "SELECT count(*)::int AS n, count(ssn)::int AS ssn, " +
  "(count(*) FILTER (WHERE name LIKE '_***'))::int AS masked_names, " +
  "(count(*) FILTER (WHERE position('@' in email) > 0))::int AS emails, " +
  "(count(*) FILTER (WHERE region <> 'EU'))::int AS outside_eu FROM hr.employees";
const FIRST_ROW_SQL = 'SELECT name, ssn, region FROM hr.employees ORDER BY id LIMIT 1';

function ok(step, detail = '') {
  console.log(`ok ${step} ${detail}`.trimEnd());
}

async function connect(user) {
  const client = new Client({
    host: env.host,
    port: env.port,
    database: env.database,
    user,
    password: env.password(user),
    application_name: 'redveil-clients-node-pg',
    // SCRAM-SHA-256-PLUS (tls-server-end-point) when the server offers it, as redveil does.
    enableChannelBinding: true,
    ssl: { ca: fs.readFileSync(env.ca, 'utf8'), rejectUnauthorized: true },
  });
  await client.connect();
  return client;
}

function masked(row, who) {
  const eu = env.euRows;
  assert.deepEqual(Object.values(row), [eu, 0, eu, 0, 0], `${who}: masked aggregate`);
}

function raw(row) {
  const total = env.totalRows;
  assert.deepEqual(
    Object.values(row),
    [total, total, 0, total, total - env.euRows],
    'admin: raw aggregate',
  );
}

async function one(client, query, values) {
  const result = await client.query(query, values);
  assert.equal(result.rows.length, 1, `one row from ${query.text || query}`);
  return result.rows[0];
}

async function run() {
  let c = await connect('analyst');
  assert.equal(c.connection.stream.encrypted, true, 'TLS in use');
  assert.deepEqual(await one(c, "SELECT 1 AS one, 'redveil' AS name"), { one: 1, name: 'redveil' });
  ok('simple query');

  const params = await one(
    c,
    'SELECT $1::text AS t, $2::int4 AS i, $3::numeric AS n, $4::timestamp AS ts, ' +
      '$5::bytea AS b, $6::text IS NULL AS is_null, $6::text AS null_value',
    [TEXT, 42, '12345.678', TIMESTAMP, BYTEA, null],
  );
  assert.deepEqual(params, {
    t: TEXT,
    i: 42,
    n: '12345.678',
    ts: TIMESTAMP,
    b: BYTEA,
    is_null: true,
    null_value: null,
  });
  ok('parameterized query');

  const pids = [];
  for (let run = 0; run < 12; run++) {
    const [bound, want] = run % 2 === 0 ? [10000, env.euRows] : [0, 0];
    await c.query('BEGIN');
    pids.push((await one(c, 'SELECT pg_backend_pid() AS pid')).pid);
    const row = await one(c, {
      name: 'employees_upto',
      text: 'SELECT count(*)::int AS n FROM hr.employees WHERE id <= $1',
      values: [bound],
    });
    assert.equal(row.n, want, `prepared run ${run}`);
    await c.query('COMMIT');
  }
  const backends = new Set(pids).size;
  assert.ok(backends >= env.minBackends, `transactions ran on ${backends} backend(s): ${pids}`);
  ok('prepared statement across transactions', `backends=${backends}`);

  masked(await one(c, MASK_SQL), 'analyst');
  assert.deepEqual(await one(c, FIRST_ROW_SQL), { name: 'B***', ssn: null, region: 'EU' });
  ok('masked query as analyst');

  await assert.rejects(c.query('SELECT 1 / 0'), (e) => e.code === '22012');
  assert.deepEqual(await one(c, 'SELECT 1 AS one'), { one: 1 });
  ok('error with SQLSTATE', '22012');
  await c.end();

  c = await connect('admin');
  raw(await one(c, MASK_SQL));
  assert.deepEqual(await one(c, FIRST_ROW_SQL), {
    name: 'Bruno Anderson',
    ssn: '819-32-4740',
    region: 'EU',
  });
  ok('raw query as admin');

  await c.query("CALL immuta_procedures.impersonate_user('analyst')");
  masked(await one(c, MASK_SQL), 'admin as analyst');
  await c.query('CALL immuta_procedures.impersonate_user(NULL)');
  raw(await one(c, MASK_SQL));
  ok('impersonation and back');

  const countSql = `SELECT count(*)::int AS n FROM ${env.scratch} WHERE client = $1`;
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${env.scratch} (client, n) VALUES ($1, 1)`, [env.client]);
  assert.equal((await one(c, countSql, [env.client])).n, 1, 'row inside the transaction');
  await c.query('ROLLBACK');
  assert.equal((await one(c, countSql, [env.client])).n, 0, 'row after rollback');
  ok('transaction rolled back');

  const big = await c.query({
    text: "SELECT g, repeat('x', 100) AS x FROM generate_series(1, 100000) AS g",
    rowMode: 'array',
  });
  assert.equal(big.rows.length, 100000, 'big fetch rows');
  let sum = 0;
  const x = 'x'.repeat(100);
  for (const [g, text] of big.rows) {
    sum += g;
    assert.equal(text, x);
  }
  assert.equal(sum, 5000050000, 'big fetch sum');
  ok('100 000-row fetch');
  await c.end();
  console.log('session complete');
}

run().catch((e) => {
  console.error(e);
  process.exit(1);
});
