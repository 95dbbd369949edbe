//! Table-driven rewrite cases: input SQL, search_path, and the text sent or the refusal.

use super::*;

fn registry() -> Registry {
    let entry = |schema: &str, table: &str, writable: bool| {
        (
            QualifiedName::new(schema, table),
            Registered {
                data_source: format!("{schema}.{table}"),
                view: QualifiedName::new("immuta", format!("{schema}_{table}")),
                writable,
            },
        )
    };
    Registry::new(
        "immuta",
        [
            entry("hr", "employees", false),
            entry("public", "orders", false),
            entry("Sales", "Deals", false),
            entry("ops", "tickets", true),
        ],
    )
}

fn run(sql: &str, search_path: &str) -> Result<Rewritten, Denial> {
    let registry = registry();
    let path = parse_search_path_list(search_path, "redveil_query");
    rewrite(
        sql,
        Scope {
            registry: &registry,
            database: "demo",
            search_path: &path,
            backend_role: "redveil_query",
        },
    )
}

enum Expect {
    /// Forwarded as the client's bytes.
    Same,
    /// Sent as this text.
    To(&'static str),
    /// Refused with 42501; the message contains this.
    Deny(&'static str),
}
use Expect::*;

/// (search_path as the server would hold it, statement, outcome)
const CASES: &[(&str, &str, Expect)] = &[
    (r#""$user", public"#, r#"SELECT 1"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM pg_class WHERE relname = 'x'"#,
        Same,
    ),
    (r#""$user", public"#, r#"SELECT * FROM employees"#, Same),
    (
        r#"hr"#,
        r#"SELECT * FROM employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#"hr"#,
        r#"SELECT * FROM Employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS Employees"#),
    ),
    (r#"hr"#, r#"SELECT * FROM "Employees""#, Same),
    (
        r#"hr"#,
        r#"SELECT * FROM "employees""#,
        To(r#"SELECT * FROM immuta.hr_employees AS "employees""#),
    ),
    (
        r#"public, hr"#,
        r#"SELECT * FROM employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (r#""Hr""#, r#"SELECT * FROM employees"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr."employees""#,
        To(r#"SELECT * FROM immuta.hr_employees AS "employees""#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM "hr"."employees" AS x"#,
        To(r#"SELECT * FROM immuta.hr_employees AS x"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM Hr.Employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS Employees"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM "DEMO".hr.employees"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM DEMO.hr.employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM orders"#,
        To(r#"SELECT * FROM immuta.public_orders AS orders"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM public.orders"#,
        To(r#"SELECT * FROM immuta.public_orders AS orders"#),
    ),
    (r#""""#, r#"SELECT * FROM orders"#, Same),
    (r#""$user", public"#, r#"SELECT * FROM "Sales".deals"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM "Sales"."Deals" d"#,
        To(r#"SELECT * FROM immuta."Sales_Deals" d"#),
    ),
    (r#"Sales"#, r#"SELECT * FROM "Deals""#, Same),
    (
        r#""Sales""#,
        r#"SELECT * FROM "Deals""#,
        To(r#"SELECT * FROM immuta."Sales_Deals" AS "Deals""#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM ops.tickets"#,
        To(r#"SELECT * FROM immuta.ops_tickets AS tickets"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees_archive"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT e.name, d.x FROM hr.employees e JOIN dept d ON d.id = e.dept"#,
        To(r#"SELECT e.name, d.x FROM immuta.hr_employees e JOIN dept d ON d.id = e.dept"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT a.name, b.name FROM hr.employees a JOIN hr.employees b ON a.id = b.id + 1"#,
        To(
            r#"SELECT a.name, b.name FROM immuta.hr_employees a JOIN immuta.hr_employees b ON a.id = b.id + 1"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees, orders"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees, immuta.public_orders AS orders"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees e LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.emp = e.id) x ON true"#,
        To(
            r#"SELECT * FROM immuta.hr_employees e LEFT JOIN LATERAL (SELECT * FROM immuta.public_orders o WHERE o.emp = e.id) x ON true"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM (SELECT * FROM hr.employees) sub"#,
        To(r#"SELECT * FROM (SELECT * FROM immuta.hr_employees AS employees) sub"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM hr.employees e WHERE e.id = t.id)"#,
        To(
            r#"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM immuta.hr_employees e WHERE e.id = t.id)"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM t WHERE id IN (SELECT id FROM hr.employees)"#,
        To(r#"SELECT * FROM t WHERE id IN (SELECT id FROM immuta.hr_employees AS employees)"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT (SELECT max(salary) FROM hr.employees) AS top"#,
        To(r#"SELECT (SELECT max(salary) FROM immuta.hr_employees AS employees) AS top"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT name FROM hr.employees UNION SELECT name FROM t"#,
        To(r#"SELECT name FROM immuta.hr_employees AS employees UNION SELECT name FROM t"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT name FROM t EXCEPT SELECT name FROM hr.employees INTERSECT SELECT name FROM orders"#,
        To(
            r#"SELECT name FROM t EXCEPT SELECT name FROM immuta.hr_employees AS employees INTERSECT SELECT name FROM immuta.public_orders AS orders"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT dept, avg(salary) FROM hr.employees GROUP BY dept HAVING count(*) > 1 ORDER BY 2 DESC"#,
        To(
            r#"SELECT dept, avg(salary) FROM immuta.hr_employees AS employees GROUP BY dept HAVING count(*) > 1 ORDER BY 2 DESC"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT name, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM hr.employees"#,
        To(
            r#"SELECT name, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM immuta.hr_employees AS employees"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees ORDER BY ssn LIMIT 10 OFFSET 5"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees ORDER BY ssn LIMIT 10 OFFSET 5"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT count(*) FILTER (WHERE region = 'EU') FROM hr.employees"#,
        To(r#"SELECT count(*) FILTER (WHERE region = 'EU') FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"WITH e AS (SELECT * FROM hr.employees) SELECT * FROM e JOIN e AS e2 ON true"#,
        To(
            r#"WITH e AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM e JOIN e AS e2 ON true"#,
        ),
    ),
    (
        r#"hr"#,
        r#"WITH e AS (SELECT * FROM employees) SELECT * FROM employees"#,
        To(
            r#"WITH e AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM immuta.hr_employees AS employees"#,
        ),
    ),
    (
        r#"hr"#,
        r#"WITH a AS (SELECT 1), b AS (SELECT * FROM employees) SELECT * FROM b"#,
        To(
            r#"WITH a AS (SELECT 1), b AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM b"#,
        ),
    ),
    (
        r#"hr"#,
        r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM hr.employees"#,
        To(r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#"hr"#,
        r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM (SELECT * FROM employees) s"#,
        Same,
    ),
    (
        r#"hr"#,
        r#"SELECT * FROM (WITH employees AS (SELECT 1) SELECT * FROM employees) a, employees"#,
        To(
            r#"SELECT * FROM (WITH employees AS (SELECT 1) SELECT * FROM employees) a, immuta.hr_employees AS employees"#,
        ),
    ),
    (
        r#"hr"#,
        r#"WITH RECURSIVE r AS (SELECT id FROM employees UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r"#,
        To(
            r#"WITH RECURSIVE r AS (SELECT id FROM immuta.hr_employees AS employees UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r"#,
        ),
    ),
    (
        r#"hr"#,
        r#"WITH "Employees" AS (SELECT 1) SELECT * FROM employees"#,
        To(r#"WITH "Employees" AS (SELECT 1) SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#"hr"#,
        r#"WITH w AS (SELECT 1) SELECT * FROM w WHERE EXISTS (SELECT 1 FROM employees)"#,
        To(
            r#"WITH w AS (SELECT 1) SELECT * FROM w WHERE EXISTS (SELECT 1 FROM immuta.hr_employees AS employees)"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"INSERT INTO t SELECT * FROM hr.employees"#,
        To(r#"INSERT INTO t SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"INSERT INTO t (a) SELECT name FROM hr.employees WHERE id = $1"#,
        To(r#"INSERT INTO t (a) SELECT name FROM immuta.hr_employees AS employees WHERE id = $1"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE TABLE t AS SELECT * FROM hr.employees"#,
        To(r#"CREATE TABLE t AS SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE TEMP TABLE t AS SELECT ssn FROM hr.employees"#,
        To(r#"CREATE TEMPORARY TABLE t AS SELECT ssn FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * INTO t FROM hr.employees"#,
        To(r#"SELECT * INTO t FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE VIEW v AS SELECT * FROM hr.employees"#,
        To(r#"CREATE VIEW v AS SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"COPY (SELECT name FROM hr.employees WHERE id < 10) TO STDOUT WITH (FORMAT csv)"#,
        To(
            r#"COPY (SELECT name FROM immuta.hr_employees AS employees WHERE id < 10) TO STDOUT (FORMAT csv)"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"COPY hr.employees (name) TO STDOUT"#,
        Deny(r#"COPY of"#),
    ),
    (
        r#""$user", public"#,
        r#"COPY hr.employees FROM STDIN"#,
        Deny(r#"COPY of"#),
    ),
    (r#""$user", public"#, r#"COPY t FROM STDIN"#, Same),
    (
        r#""$user", public"#,
        r#"EXPLAIN SELECT * FROM hr.employees"#,
        To(r#"EXPLAIN SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"EXPLAIN SELECT * FROM hr.employees WHERE id = 1"#,
        To(r#"EXPLAIN SELECT * FROM immuta.hr_employees AS employees WHERE id = 1"#),
    ),
    (
        r#""$user", public"#,
        r#"EXPLAIN ANALYZE SELECT * FROM hr.employees WHERE id = 1"#,
        Deny(r#"its row counts include the rows policies hide"#),
    ),
    (
        r#""$user", public"#,
        r#"PREPARE p(int) AS SELECT * FROM hr.employees WHERE id = $1"#,
        To(r#"PREPARE p (INT) AS SELECT * FROM immuta.hr_employees AS employees WHERE id = $1"#),
    ),
    (r#""$user", public"#, r#"EXECUTE p(1)"#, Same),
    (
        r#""$user", public"#,
        r#"DECLARE c CURSOR FOR SELECT * FROM hr.employees"#,
        To(r#"DECLARE c CURSOR FOR SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees WHERE id = $1 AND name = $2"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees WHERE id = $1 AND name = $2"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT $1::text FROM hr.employees"#,
        To(r#"SELECT $1::TEXT FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"UPDATE hr.employees SET salary = 0"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"DELETE FROM hr.employees WHERE id = 1"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"DELETE FROM t USING hr.employees e WHERE t.id = e.id"#,
        To(r#"DELETE FROM t USING immuta.hr_employees e WHERE t.id = e.id"#),
    ),
    (
        r#""$user", public"#,
        r#"UPDATE t SET name = e.name FROM hr.employees e WHERE t.id = e.id"#,
        To(r#"UPDATE t SET name = e.name FROM immuta.hr_employees e WHERE t.id = e.id"#),
    ),
    (
        r#""$user", public"#,
        r#"INSERT INTO hr.employees SELECT * FROM t"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"INSERT INTO ops.tickets VALUES (1)"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"UPDATE ops.tickets SET x = 1"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"MERGE INTO hr.employees e USING t ON t.id = e.id WHEN MATCHED THEN DELETE"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"MERGE INTO t USING hr.employees e ON t.id = e.id WHEN MATCHED THEN UPDATE SET name = e.name"#,
        To(
            r#"MERGE INTO t USING immuta.hr_employees e ON t.id = e.id WHEN MATCHED THEN UPDATE SET name = e.name"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"TRUNCATE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    (r#""$user", public"#, r#"TRUNCATE t"#, Same),
    (
        r#""$user", public"#,
        r#"ALTER TABLE hr.employees ADD COLUMN x int"#,
        Deny(r#"names the registered table"#),
    ),
    (
        r#""$user", public"#,
        r#"DROP TABLE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    (r#""$user", public"#, r#"DROP TABLE employees_old"#, Same),
    (
        r#""$user", public"#,
        r#"GRANT SELECT ON hr.employees TO public"#,
        Deny(r#"names the registered table"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE INDEX ON hr.employees (name)"#,
        Deny(r#"names the registered table"#),
    ),
    (
        r#""$user", public"#,
        r#"LOCK TABLE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    (
        r#""$user", public"#,
        r#"COMMENT ON TABLE hr.employees IS 'x'"#,
        Deny(r#"names the registered table"#),
    ),
    (
        r#""$user", public"#,
        r#"VACUUM hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    (r#""$user", public"#, r#"CREATE TABLE t (id int)"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM immuta.hr_employees"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM immuta_system.profile_users"#,
        Deny(r#"belongs to redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM IMMUTA_SYSTEM.user_profile"#,
        Deny(r#"belongs to redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM "immuta_system"."profile_attributes""#,
        Deny(r#"belongs to redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"CALL immuta_procedures.something('x')"#,
        Deny(r#"belongs to redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT immuta_functions.mask('x')"#,
        Deny(r#"belongs to redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"DROP VIEW immuta.hr_employees"#,
        Deny(r#"names the redveil schema"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('IMMUTA.USER', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT pg_catalog.set_config('immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('imm' || 'uta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config(E'immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('application_name', 'x', false)"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('search_path', 'hr', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('role', 'postgres', false)"#,
        Deny(r#"set_config"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT current_setting('immuta.user')"#,
        Deny(r#"reserved for redveil"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT current_setting('application_name')"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM pg_settings WHERE name LIKE 'immuta%'"#,
        Deny(r#"pg_settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM pg_catalog.pg_settings"#,
        Deny(r#"pg_settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM pg_show_all_settings()"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT query_to_xml('select 1', true, true, '')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM query_to_xml('select * from hr.employees', true, true, '')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT table_to_xml('hr.employees', true, true, '')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT dblink('dbname=demo', 'select ssn from hr.employees')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT ts_stat('select 1')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT my_exec('select * from hr.employees')"#,
        Deny(r#"function "#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT lower('hr.employees')"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT has_table_privilege('hr.employees', 'select')"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT 'hr.employees'::regclass"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SET immuta.user = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SET IMMUTA.USER TO admin"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SET "immuta.user" = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SET LOCAL immuta.user = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SET SESSION immuta /* x */ . user = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SHOW immuta.user"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"RESET immuta.user"#,
        Deny(r#"immuta settings"#),
    ),
    (
        r#""$user", public"#,
        r#"SET ROLE postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    (
        r#""$user", public"#,
        r#"SET LOCAL ROLE postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    (
        r#""$user", public"#,
        r#"SET SESSION AUTHORIZATION postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    (
        r#""$user", public"#,
        r#"SET SESSION SESSION AUTHORIZATION postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    (r#""$user", public"#, r#"RESET ROLE"#, Deny(r#"RESET ROLE"#)),
    (
        r#""$user", public"#,
        r#"RESET SESSION AUTHORIZATION"#,
        Deny(r#"RESET ROLE"#),
    ),
    (r#""$user", public"#, r#"RESET ALL"#, Same),
    (r#""$user", public"#, r#"DISCARD ALL"#, Same),
    (r#""$user", public"#, r#"SET search_path = hr"#, Same),
    (r#""$user", public"#, r#"SET application_name = 'x'"#, Same),
    (
        r#""$user", public"#,
        r#"DO $$ BEGIN EXECUTE 'SELECT 1'; END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    (
        r#""$user", public"#,
        r#"DO $$ BEGIN PERFORM set_config('x.y', 'z', false); END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    (
        r#""$user", public"#,
        r#"DO $$ BEGIN RAISE NOTICE 'hi'; END $$"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'select 1'; RETURN 1; END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE OR REPLACE FUNCTION f() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn FROM hr.employees $$"#,
        Deny(r#"carries SQL text"#),
    ),
    (
        r#""$user", public"#,
        r#"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM U&"hr".U&"employees""#,
        Deny(r#"Unicode"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM U&"\0065mployees""#,
        Deny(r#"Unicode"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT this is not sql FROM hr.employees"#,
        Deny(r#"cannot parse"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT this is not sql -- hr.employees"#,
        Deny(r#"cannot parse"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT this is not sql /* immuta */"#,
        Deny(r#"cannot parse"#),
    ),
    (r#""$user", public"#, r#"SELECT this is not sql"#, Same),
    (r#""$user", public"#, r#"SELECT 'employees' FROM t"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM t /* employees */"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT 1; SELECT * FROM hr.employees"#,
        To(r#"SELECT 1;
SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT 1; UPDATE hr.employees SET salary = 1"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT 1; SET ROLE postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    (
        r#""$user", public"#,
        r#"BEGIN; SELECT * FROM hr.employees; COMMIT"#,
        To(r#"BEGIN;
SELECT * FROM immuta.hr_employees AS employees;
COMMIT"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT $$ ; SELECT * FROM hr.employees $$"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT ';' FROM hr.employees WHERE name = 'a;b'"#,
        To(r#"SELECT ';' FROM immuta.hr_employees AS employees WHERE name = 'a;b'"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(employees)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT hr.employees.name FROM hr.employees WHERE hr.employees.id = 1 ORDER BY hr.employees.salary"#,
        To(
            r#"SELECT employees.name FROM immuta.hr_employees AS employees WHERE employees.id = 1 ORDER BY employees.salary"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees TABLESAMPLE SYSTEM (10)"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees TABLESAMPLE SYSTEM (10)"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM ONLY hr.employees"#,
        Deny(r#"cannot parse"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees FOR UPDATE"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees FOR UPDATE"#),
    ),
    (
        r#""$user", public"#,
        r#"SELECT * FROM hr.employees AS e (a, b)"#,
        To(r#"SELECT * FROM immuta.hr_employees AS e (a, b)"#),
    ),
    (r#""$user", public"#, r#"VALUES (1), (2)"#, Same),
    (
        r#""$user", public"#,
        r#"SELECT * FROM generate_series(1, 3) AS employees"#,
        Same,
    ),
    (r#""$user", public"#, r#"SELECT employees FROM t"#, Same),
    (
        r#""$user", public"#,
        r#"WITH x AS (DELETE FROM hr.employees RETURNING *) SELECT * FROM x"#,
        Deny(r#"writing to"#),
    ),
    (
        r#""$user", public"#,
        r#"WITH x AS (SELECT * FROM hr.employees) INSERT INTO t SELECT * FROM x"#,
        To(
            r#"WITH x AS (SELECT * FROM immuta.hr_employees AS employees) INSERT INTO t SELECT * FROM x"#,
        ),
    ),
    (
        r#""$user", public"#,
        r#"ALTER ROLE redveil_query SET search_path = hr"#,
        Deny("ALTER ROLE"),
    ),
    (
        r#""$user", public"#,
        r#"ALTER USER CURRENT_USER SET work_mem = 64"#,
        Deny("ALTER ROLE"),
    ),
    (
        r#""$user", public"#,
        r#"alter database demo set x.y = 1"#,
        Deny("ALTER ROLE"),
    ),
    (
        r#""$user", public"#,
        r#"SET session_authorization = 'postgres'"#,
        Deny("session_authorization"),
    ),
    (
        r#""$user", public"#,
        r#"RESET session_authorization"#,
        Deny("session_authorization"),
    ),
    (
        r#""$user", public"#,
        r#"SET standard_conforming_strings = off"#,
        Deny("standard_conforming_strings"),
    ),
    (
        r#""$user", public"#,
        r#"SET SESSION standard_conforming_strings TO 'false'"#,
        Deny("standard_conforming_strings"),
    ),
    (
        r#""$user", public"#,
        r#"SET standard_conforming_strings = on"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SET standard_conforming_strings TO 'on'"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('standard_conforming_strings', 'off', false)"#,
        Deny("standard_conforming_strings"),
    ),
    (
        r#""$user", public"#,
        r#"SELECT set_config('statement_timeout', '5s', false)"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"DO $$ BEGIN SET standard_conforming_strings = off; END $$"#,
        Deny("code blocks"),
    ),
    (
        r#""$user", public"#,
        r#"CREATE FUNCTION pg_temp.w() RETURNS text LANGUAGE sql AS $$ SELECT current_setting(chr(105) || 'mmuta.user') $$"#,
        Deny("code blocks"),
    ),
    (
        r#""$user", public"#,
        r#"CREATE FUNCTION pg_temp.w() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"CREATE AGGREGATE pg_temp.forge(text, boolean) (SFUNC = set_config, STYPE = text, INITCOND = E'\151mmuta.user')"#,
        Deny("set_config"),
    ),
    (
        r#""$user", public"#,
        r#"CREATE AGGREGATE pg_temp.agg(int) (SFUNC = int4pl, STYPE = int)"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"SELECT lo_from_bytea(0, 'x')"#,
        Deny("large objects"),
    ),
    (
        r#""$user", public"#,
        r#"SELECT loread(lo_open(1, 262144), 10)"#,
        Deny("large objects"),
    ),
    (
        r#""$user", public"#,
        r#"SELECT 'hello_world', lower('x')"#,
        Same,
    ),
    (
        r#""$user", public"#,
        r#"DEALLOCATE redveil_0123"#,
        Deny("redveil_*"),
    ),
    (
        r#""$user", public"#,
        r#"DEALLOCATE PREPARE "redveil_0123""#,
        Deny("redveil_*"),
    ),
    (
        r#""$user", public"#,
        r#"EXECUTE redveil_0123"#,
        Deny("redveil_*"),
    ),
    (
        r#""$user", public"#,
        r#"PREPARE redveil_0123 AS SELECT 1"#,
        Deny("redveil_*"),
    ),
    (r#""$user", public"#, r#"DEALLOCATE p"#, Same),
    (
        r#""$user", public"#,
        r#"EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM hr.employees"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    (
        r#""$user", public"#,
        r#"EXPLAIN (ANALYZE) SELECT * FROM immuta.hr_employees"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    (r#""$user", public"#, r#"EXPLAIN ANALYZE SELECT 1"#, Same),
];

#[test]
fn rewrite_cases() {
    assert!(CASES.len() >= 120);
    let mut failures = Vec::new();
    for (path, sql, expect) in CASES {
        let got = run(sql, path);
        let ok = match (expect, &got) {
            (Same, Ok(r)) => r.sql.is_none(),
            (To(text), Ok(r)) => r.sql.as_deref() == Some(*text),
            (Deny(part), Err(d)) => d.message.contains(part),
            _ => false,
        };
        if !ok {
            failures.push(format!("{sql} [{path}] => {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn data_sources_and_session_resets_are_reported() {
    let r = run(
        "SELECT * FROM hr.employees e JOIN orders o ON true",
        "\"$user\", public",
    )
    .unwrap();
    assert_eq!(
        r.data_sources.into_iter().collect::<Vec<_>>(),
        ["hr.employees", "public.orders"]
    );
    assert!(run("RESET ALL", "public").unwrap().resets_session);
    assert!(
        run("SELECT 1; DISCARD ALL", "public")
            .unwrap()
            .resets_session
    );
    assert!(!run("DISCARD PLANS", "public").unwrap().resets_session);
    assert!(
        run("DO $$ BEGIN RESET ALL; END $$", "public")
            .unwrap()
            .resets_session
    );
}

#[test]
fn a_search_path_set_earlier_in_the_string_applies_after_it() {
    let r = run("SET search_path = hr; SELECT * FROM employees", "public").unwrap();
    assert_eq!(
        r.sql.as_deref(),
        Some("SET search_path = hr;\nSELECT * FROM immuta.hr_employees AS employees")
    );
    let r = run(
        "SET search_path = hr; RESET search_path; SELECT * FROM employees",
        "public",
    );
    assert_eq!(r.unwrap().sql, None);
}

/// Under standard_conforming_strings = on (which the proxy enforces) this is one SELECT of one
/// string literal; with it off the server would run the set_config after the `;`.
#[test]
fn a_backslash_does_not_end_a_string() {
    let sql = r"SELECT '\''; SELECT set_config($q$immuta.user$q$, $q$admin$q$, false) --'";
    assert_eq!(split_statements(sql).len(), 1);
    assert_eq!(run(sql, "public").unwrap().sql, None);
}

#[test]
fn an_empty_registry_still_guards_identity() {
    let empty = Registry::new("immuta", []);
    let scope = Scope {
        registry: &empty,
        database: "demo",
        search_path: &[],
        backend_role: "redveil_query",
    };
    assert!(rewrite("SELECT set_config('immuta.user', 'x', false)", scope).is_err());
    assert!(rewrite("SET immuta.user = 'x'", scope).is_err());
    assert_eq!(
        rewrite("SELECT * FROM t", scope).unwrap(),
        Rewritten::default()
    );
}
