-- psql: the scripted session of tests/clients.rs. session.sh runs it unaligned and without
-- headers and compares everything it prints with expected.out. psql 15 has no \bind, so
-- parameters and the prepared statement go through SQL-level PREPARE / EXECUTE.
\set ON_ERROR_STOP 1
\set QUIET on

\echo -- simple query
SELECT 1 AS one, 'redveil' AS name;

\echo -- parameterized query
PREPARE params(text, int4, numeric, timestamp, bytea, text) AS
    SELECT $1, $2, $3, $4, $5, $6 IS NULL, coalesce($6, '<null>');
EXECUTE params('héllo wörld ✓ ''quoted'' \ backslash', 42, 12345.678,
               '2024-02-29 13:14:15.123456', '\x0001ff275c', NULL);

\echo -- prepared statement across transactions
PREPARE employees_upto(int) AS SELECT count(*) FROM hr.employees WHERE id <= $1;
BEGIN; SELECT pg_backend_pid() AS pid1 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid2 \gset
EXECUTE employees_upto(0); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid3 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid4 \gset
EXECUTE employees_upto(0); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid5 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid6 \gset
EXECUTE employees_upto(0); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid7 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid8 \gset
EXECUTE employees_upto(0); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid9 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid10 \gset
EXECUTE employees_upto(0); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid11 \gset
EXECUTE employees_upto(10000); COMMIT;
BEGIN; SELECT pg_backend_pid() AS pid12 \gset
EXECUTE employees_upto(0); COMMIT;
SELECT count(DISTINCT pid) >= :min_backends AS several_backends
FROM (VALUES (:pid1), (:pid2), (:pid3), (:pid4), (:pid5), (:pid6), (:pid7), (:pid8),
             (:pid9), (:pid10), (:pid11), (:pid12)) AS v(pid);

\echo -- masked query as analyst
SELECT count(*), count(ssn), count(*) FILTER (WHERE name LIKE '_***'),
       count(*) FILTER (WHERE position('@' in email) > 0),
       count(*) FILTER (WHERE region <> 'EU')
FROM hr.employees;
SELECT name, coalesce(ssn, '<null>'), region FROM hr.employees ORDER BY id LIMIT 1;

\echo -- error with SQLSTATE
\set ON_ERROR_STOP 0
SELECT 1 / 0;
\set ON_ERROR_STOP 1
\echo :LAST_ERROR_SQLSTATE
SELECT 1;

\echo -- raw query as admin
\connect :admin
\set ON_ERROR_STOP 1
SELECT count(*), count(ssn), count(*) FILTER (WHERE name LIKE '_***'),
       count(*) FILTER (WHERE position('@' in email) > 0),
       count(*) FILTER (WHERE region <> 'EU')
FROM hr.employees;
SELECT name, coalesce(ssn, '<null>'), region FROM hr.employees ORDER BY id LIMIT 1;

\echo -- impersonation and back
CALL immuta_procedures.impersonate_user('analyst');
SHOW immuta_user;
SELECT count(*), count(ssn) FROM hr.employees;
CALL immuta_procedures.impersonate_user(NULL);
SELECT count(*), count(ssn) FROM hr.employees;

\echo -- transaction rolled back
BEGIN;
INSERT INTO :scratch (client, n) VALUES (:'client', 1);
SELECT count(*) FROM :scratch WHERE client = :'client';
ROLLBACK;
SELECT count(*) FROM :scratch WHERE client = :'client';

\echo -- 100 000-row fetch (rows, sum, rows whose text is not 100 x)
SELECT g, repeat('x', 100) FROM generate_series(1, 100000) AS g
\g | awk -F'|' '{ n++; s += $1; if (length($2) != 100) bad++ } END { printf "%.0f %.0f %.0f\n", n, s, bad }'
\set FETCH_COUNT 10000
SELECT g, repeat('x', 100) FROM generate_series(1, 100000) AS g
\g | awk -F'|' '{ n++; s += $1; if (length($2) != 100) bad++ } END { printf "%.0f %.0f %.0f\n", n, s, bad }'
