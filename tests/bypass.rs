//! The bypass corpus: attempts to reach raw data, hidden rows or the pinned identity through
//! the proxy, each of which must fail closed (an error with a SQLSTATE) or return only what
//! the user may see. One test per family, each on one proxy with a pool of one backend
//! connection, so every user's statements share it and cross-user effects show. The harness
//! (steps, expectations, the secrets checked) is in `common/bypass.rs`; the families of the
//! last line (SQL the proxy never sees, state left on pooled connections) are in
//! `bypass_last_line.rs` and `bypass_pooled_state.rs`.

mod common;

use common::bypass::*;
use common::demo_views::sqlstate;
use common::raw::{self, RawConn};
use redveil::protocol::{frontend, tag};
use std::time::Duration;

#[tokio::test]
async fn quoting_and_case() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("quoted upper case names", r#"SELECT * FROM "HR"."EMPLOYEES""#, Fails),
        both("unquoted upper case", "SELECT * FROM HR.EMPLOYEES", Safe),
        both("mixed case", "SELECT ssn, name FROM Hr.EmPlOyEeS", Safe),
        both("quoted lower case", r#"SELECT * FROM "hr"."employees""#, Safe),
        both("half quoted", r#"SELECT * FROM hr."employees""#, Safe),
        both("spaces around the dot", "SELECT * FROM hr . employees", Safe),
        both("comments inside the name", "SELECT * FROM hr/**/./* x */employees", Safe),
        both("line comment inside the name", "SELECT * FROM hr.-- x\nemployees", Safe),
        both("nested comment inside the name", "SELECT * FROM hr/* a /* b */ c */.employees", Safe),
        both("three-part name", "SELECT * FROM demo.hr.employees", Safe),
        both("quoted three-part name", r#"SELECT * FROM "demo"."hr"."employees""#, Safe),
        both("another database's name", "SELECT * FROM postgres.hr.employees", Fails),
        both("ONLY", "SELECT * FROM ONLY hr.employees", Safe),
        both("inheritance star", "SELECT * FROM hr.employees *", Safe),
        both("TABLE command", "TABLE hr.employees", Safe),
        both("TABLE command, upper case", "TABLE HR.EMPLOYEES", Safe),
        both("whole-row reference", "SELECT employees FROM hr.employees", Safe),
        both("row_to_json of the alias", "SELECT row_to_json(e) FROM hr.employees e", Safe),
        both("scalar subquery", "SELECT (SELECT string_agg(ssn || name || email || salary, ',') FROM hr.employees)", Safe),
        both("IN subquery", "SELECT * FROM pg_class WHERE relname IN (SELECT ssn FROM hr.employees)", Safe),
        both("EXISTS over the other regions", "SELECT count(*) FROM hr.employees WHERE EXISTS (SELECT 1 FROM hr.employees e2 WHERE e2.region <> 'EU')", Safe),
        both("LATERAL", "SELECT x.* FROM (SELECT 1) o, LATERAL (SELECT * FROM hr.employees) x", Safe),
        both("alias named like a redveil schema", r#"SELECT * FROM hr.employees AS "immuta_system""#, Safe),
        both("FOR UPDATE", "SELECT * FROM hr.employees FOR UPDATE", Safe),
        both("regclass cast of the name", "SELECT 'hr.employees'::regclass::oid", Safe),
        both("the view itself", "SELECT * FROM immuta.hr_employees", Safe),
        both("the view, quoted", r#"SELECT * FROM "immuta"."hr_employees""#, Safe),
        both("raw table by its view's alias", "SELECT employees.ssn FROM immuta.hr_employees AS employees", Safe),
    ])
    .await;
    h.finish("quoting_and_case", 25);
}

#[tokio::test]
async fn search_path_changes() {
    let mut h = Harness::new().await;
    h.run(vec![
        steps("SET search_path", vec![
            s(Analyst, "SET search_path = hr", Works),
            s(Analyst, "SELECT * FROM employees", Safe),
            x(Analyst, "SELECT ssn, email, salary::text FROM employees", &[], Safe),
            s(Analyst, "RESET search_path", Works),
        ]),
        steps("SET search_path to a literal and upper case", vec![
            s(Analyst, "SET search_path TO 'hr', public", Works),
            s(Analyst, "SELECT * FROM EMPLOYEES", Safe),
            s(Analyst, "SET search_path TO DEFAULT", Works),
        ]),
        steps("SET SESSION search_path", vec![
            s(Analyst, "SET SESSION search_path = public, \"hr\"", Works),
            s(Analyst, "SELECT * FROM employees", Safe),
            s(Analyst, "RESET ALL", Works),
        ]),
        steps("search_path to a quoted upper-case schema", vec![
            s(Analyst, "SET search_path = \"HR\"", Works),
            s(Analyst, "SELECT * FROM employees", Fails),
            s(Analyst, "RESET search_path", Works),
        ]),
        steps("search_path set and used in one string", vec![
            s(Analyst, "SET search_path = hr; SELECT ssn, name FROM employees; RESET search_path", Safe),
        ]),
        steps("SET LOCAL search_path in one string", vec![
            s(Analyst, "BEGIN; SET LOCAL search_path = hr; SELECT * FROM employees; COMMIT", Safe),
        ]),
        steps("SET LOCAL search_path, statement by statement", vec![
            s(Analyst, "BEGIN", Works),
            s(Analyst, "SET LOCAL search_path = hr", Works),
            s(Analyst, "SELECT * FROM employees", Safe),
            s(Analyst, "COMMIT", Any),
        ]),
        steps("SET LOCAL search_path in the extended protocol", vec![
            s(Analyst, "BEGIN", Works),
            x(Analyst, "SET LOCAL search_path = hr", &[], Works),
            x(Analyst, "SELECT ssn, name, email FROM employees", &[], Safe),
            s(Analyst, "COMMIT", Any),
        ]),
        steps("search_path in the extended protocol", vec![
            x(Analyst, "SET search_path = hr", &[], Works),
            x(Analyst, "SELECT ssn, name, email FROM employees", &[], Safe),
            x(Analyst, "RESET search_path", &[], Works),
        ]),
        // A whole-statement set_config is tracked like SET: the rewriter resolves with it.
        steps("set_config('search_path'), then an unqualified name", vec![
            s(Analyst, "SELECT set_config('search_path', 'hr', false)", Works),
            s(Analyst, "SELECT count(*) FROM employees", Own),
            x(Analyst, "SELECT count(*) FROM employees", &[], Own),
            s(Analyst, "SELECT pg_catalog.set_config('search_path', 'public, hr', false)", Works),
            x(Analyst, "SELECT count(*) FROM employees", &[], Own),
            s(Analyst, "RESET search_path", Works),
        ]),
        both("set_config('search_path') with more in the statement", "SELECT set_config('search_path', 'hr', false), current_setting('search_path')", Denied),
        both("set_config('SEARCH_PATH') local", "SELECT set_config('SEARCH_PATH', 'hr', true)", Denied),
        steps("search_path from a DO block", vec![
            s(Analyst, "DO $$ BEGIN SET search_path = hr; END $$", Any),
            s(Analyst, "SELECT * FROM employees", Safe),
            s(Analyst, "RESET search_path", Any),
        ]),
        steps("search_path through a function's SET clause", vec![
            s(Analyst, "CREATE FUNCTION pg_temp.n() RETURNS bigint LANGUAGE sql SET search_path = hr AS $$ SELECT count(*) FROM employees $$", Denied),
        ]),
        steps("ALTER ROLE ... SET search_path, then RESET ALL", vec![
            s(Analyst, "ALTER ROLE redveil_query SET search_path = hr", Denied),
            s(Analyst, "RESET ALL", Works),
            s(Analyst, "SELECT * FROM employees", Safe),
        ]),
        steps("pg_temp first, a temp table named employees", vec![
            s(Analyst, "CREATE TEMP TABLE employees AS SELECT * FROM hr.employees", Safe),
            s(Analyst, "SET search_path = hr", Works),
            s(Analyst, "SELECT * FROM employees", Safe),
            s(Analyst, "SELECT * FROM pg_temp.employees", Safe),
            s(Analyst, "RESET search_path", Works),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
    ])
    .await;
    // At connect time: options and a plain startup parameter.
    for conn in [
        format!(
            "{} options='-c search_path=hr'",
            h.proxy.conn_string("analyst")
        ),
        format!(
            "{} options='-csearch_path=HR,public'",
            h.proxy.conn_string("analyst")
        ),
    ] {
        let client = h.proxy.connect_with(&conn).await.unwrap();
        match client.simple_query("SELECT * FROM employees").await {
            Result::Ok(m) => assert_eq!(h.secrets.leak_in(Analyst, &texts(m).join("\n")), None),
            Err(e) => assert_ne!(sqlstate(&e), "none", "{conn}: {e}"),
        }
    }
    let mut raw = RawConn::proxy(&h.proxy, "analyst", &[("search_path", "hr")]).await;
    let replies = raw.simple("SELECT ssn, name, email FROM employees").await;
    let text: String = replies
        .iter()
        .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
        .collect();
    assert_eq!(h.secrets.leak_in(Analyst, &text), None);
    h.finish("search_path_changes", 15);
}

#[tokio::test]
async fn cte_and_alias_shadowing() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("CTE named like the table, unregistered path", "WITH employees AS (SELECT 1 AS id) SELECT * FROM employees", Works),
        both("CTE named like the table reads it", "WITH employees AS (SELECT * FROM hr.employees) SELECT * FROM employees", Safe),
        both("recursive CTE named like the table", "WITH RECURSIVE employees AS (SELECT * FROM hr.employees) SELECT * FROM employees", Safe),
        steps("a CTE defined after the one reading the table", vec![
            s(Analyst, "SET search_path = hr", Works),
            s(Analyst, "WITH a AS (SELECT * FROM employees), employees AS (SELECT 1) SELECT * FROM a", Safe),
            s(Analyst, "WITH employees AS (SELECT * FROM employees) SELECT * FROM employees", Safe),
            s(Analyst, "WITH x AS (SELECT 1), y AS (SELECT * FROM employees) SELECT * FROM y", Safe),
            s(Analyst, "RESET search_path", Works),
        ]),
        steps("a CTE shadowing only inside a subquery", vec![
            s(Analyst, "SET search_path = hr", Works),
            s(Analyst, "SELECT * FROM (WITH employees AS (SELECT 1 AS id) SELECT * FROM employees) a, employees", Safe),
            s(Analyst, "RESET search_path", Works),
        ]),
        both("materialized CTE", "WITH x AS MATERIALIZED (SELECT * FROM hr.employees) SELECT * FROM x", Safe),
        both("alias named like the table", "SELECT employees.* FROM hr.employees AS employees", Safe),
        both("subquery aliased like the table", "SELECT * FROM (SELECT * FROM hr.employees) AS employees", Safe),
        both("alias with a dot", r#"SELECT "hr.employees".ssn FROM hr.employees AS "hr.employees""#, Safe),
        both("self join", "SELECT a.ssn, b.name FROM hr.employees a JOIN hr.employees b USING (id)", Safe),
        both("union of both spellings", "SELECT * FROM hr.employees UNION ALL SELECT * FROM HR.Employees", Safe),
        both("data-modifying CTE", "WITH d AS (DELETE FROM hr.employees RETURNING *) SELECT * FROM d", Denied),
        both("UPDATE ... RETURNING in a CTE", "WITH u AS (UPDATE hr.employees SET salary = salary RETURNING ssn) SELECT * FROM u", Denied),
        both("UPDATE with FROM", "UPDATE hr.employees SET salary = 0 FROM (SELECT 1) x", Denied),
        both("INSERT ... SELECT from the table into itself", "INSERT INTO hr.employees SELECT * FROM hr.employees", Denied),
        both("MERGE", "MERGE INTO hr.employees t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE", Denied),
        both("TRUNCATE", "TRUNCATE hr.employees", Denied),
        both("ALTER TABLE", "ALTER TABLE hr.employees ADD COLUMN x int", Denied),
        both("GRANT", "GRANT SELECT ON hr.employees TO PUBLIC", Denied),
        both("LOCK", "LOCK TABLE hr.employees", Denied),
    ])
    .await;
    h.finish("cte_and_alias_shadowing", 20);
}

/// The query role is shared by every proxy user: an object one user leaves on a pooled
/// connection must never show another user data beyond their own.
#[tokio::test]
async fn objects_created_over_the_table() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("CREATE VIEW in public", "CREATE VIEW public.v AS SELECT * FROM hr.employees", Denied),
        both("CREATE TABLE AS in public", "CREATE TABLE public.t AS SELECT * FROM hr.employees", Denied),
        both("materialized view", "CREATE MATERIALIZED VIEW public.mv AS SELECT * FROM hr.employees", Denied),
        both("SELECT INTO a persistent table", "SELECT * INTO public.t2 FROM hr.employees", Denied),
        both("CREATE SCHEMA", "CREATE SCHEMA loot", Denied),
        steps("temp view read by another user", vec![
            s(Analyst, "CREATE TEMP VIEW v AS SELECT * FROM hr.employees", Works),
            s(Analyst, "SELECT * FROM v", Safe),
            s(Bi, "SELECT * FROM pg_temp.v", Safe),
            s(Analyst, "DROP VIEW IF EXISTS pg_temp.v", Any),
        ]),
        steps("temp table of analyst's rows read by bi_service", vec![
            s(Analyst, "CREATE TEMP TABLE t AS SELECT * FROM hr.employees", Works),
            s(Bi, "SELECT * FROM pg_temp.t", Safe),
            s(Analyst, "DROP TABLE IF EXISTS pg_temp.t", Any),
        ]),
        steps("temp table of admin's rows read by analyst", vec![
            s(Admin, "CREATE TEMP TABLE adm AS SELECT * FROM hr.employees", Works),
            s(Analyst, "SELECT * FROM pg_temp.adm", Safe),
            s(Admin, "DROP TABLE IF EXISTS pg_temp.adm", Any),
        ]),
        steps("SELECT INTO TEMP by admin, read by analyst", vec![
            s(Admin, "SELECT * INTO TEMP adm2 FROM hr.employees", Works),
            x(Analyst, "SELECT ssn, name, email FROM pg_temp.adm2", &[], Safe),
            s(Admin, "DROP TABLE IF EXISTS pg_temp.adm2", Any),
        ]),
        steps("WITH HOLD cursor of admin fetched by analyst", vec![
            s(Admin, "BEGIN; DECLARE held CURSOR WITH HOLD FOR SELECT * FROM hr.employees; COMMIT", Works),
            s(Analyst, "FETCH ALL FROM held", Safe),
            s(Admin, "CLOSE held", Any),
        ]),
        steps("temp function over a temp view, called by another user", vec![
            s(Analyst, "CREATE TEMP VIEW v3 AS SELECT * FROM hr.employees", Works),
            s(Analyst, "CREATE FUNCTION pg_temp.f3() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn || name || email FROM pg_temp.v3 $$", Works),
            s(Analyst, "SELECT pg_temp.f3()", Safe),
            s(Bi, "SELECT pg_temp.f3()", Safe),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        steps("a trojan: a temp view shadowing pg_namespace copies what the next user sees", vec![
            s(Analyst, "CREATE TEMP TABLE loot (v text)", Works),
            s(Analyst, "CREATE TEMP VIEW v4 AS SELECT * FROM hr.employees", Works),
            s(Analyst, "CREATE FUNCTION pg_temp.grab() RETURNS int LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pg_temp.loot SELECT ssn || ' ' || email FROM pg_temp.v4; RETURN 1; END $$", Works),
            s(Analyst, "CREATE TEMP VIEW pg_namespace AS SELECT n.* FROM pg_catalog.pg_namespace n, pg_temp.grab() g", Works),
            s(Admin, "SELECT count(*) FROM pg_namespace", Any),
            s(Analyst, "SELECT * FROM pg_temp.loot", Safe),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        both("SQL function over the table", "CREATE FUNCTION pg_temp.f() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn FROM hr.employees $$", Denied),
        both("SQL function over the table, quoted", r#"CREATE FUNCTION pg_temp.f() RETURNS SETOF text LANGUAGE sql AS 'SELECT ssn FROM "hr"."EMPLOYEES"'"#, Denied),
        both("plpgsql RETURN QUERY over the table", "CREATE FUNCTION pg_temp.f() RETURNS SETOF text LANGUAGE plpgsql AS $f$ BEGIN RETURN QUERY SELECT ssn FROM hr.employees; END $f$", Denied),
        both("SQL-standard function body", "CREATE FUNCTION pg_temp.f() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM hr.employees; END", Denied),
        both("procedure over the table", "CREATE PROCEDURE pg_temp.p() LANGUAGE sql AS $$ DELETE FROM hr.employees $$", Denied),
        steps("rule on a temp view that writes elsewhere", vec![
            s(Analyst, "CREATE TEMP TABLE sink (v text)", Works),
            s(Analyst, "CREATE TEMP VIEW v5 AS SELECT ssn AS v FROM hr.employees", Works),
            s(Analyst, "CREATE RULE r AS ON INSERT TO pg_temp.v5 DO INSTEAD INSERT INTO pg_temp.sink SELECT ssn FROM hr.employees", Denied),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        steps("trigger on a temp table", vec![
            s(Analyst, "CREATE TEMP TABLE tt (v text)", Works),
            s(Analyst, "CREATE FUNCTION pg_temp.trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pg_temp.tt SELECT ssn FROM hr.employees; RETURN NEW; END $$", Denied),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        both("event trigger", "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()", Denied),
        both("ALTER VIEW of the policy view", "ALTER VIEW immuta.hr_employees RESET (security_barrier)", Denied),
        both("DROP the policy view", "DROP VIEW immuta.hr_employees", Denied),
        both("CREATE OR REPLACE the policy view", "CREATE OR REPLACE VIEW immuta.hr_employees AS SELECT * FROM hr.employees", Denied),
    ])
    .await;
    h.finish("objects_created_over_the_table", 20);
}

#[tokio::test]
async fn functions_that_run_sql_text() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("query_to_xml", "SELECT query_to_xml('SELECT * FROM hr.employees', true, false, '')", Denied),
        both("query_to_xml of the view", "SELECT query_to_xml('SELECT * FROM immuta.hr_employees', true, false, '')", Denied),
        both("query_to_xml of computed text", "SELECT query_to_xml('SELECT * FROM hr.' || 'employees', true, false, '')", Denied),
        both("query_to_xml, qualified and quoted", r#"SELECT pg_catalog."query_to_xml"('SELECT 1', true, false, '')"#, Denied),
        both("QUERY_TO_XML upper case", "SELECT QUERY_TO_XML(E'SELECT ssn FROM hr.employees', true, false, '')", Denied),
        both("query_to_xmlschema", "SELECT query_to_xmlschema('SELECT * FROM hr.employees', true, false, '')", Denied),
        both("table_to_xml", "SELECT table_to_xml('hr.employees', true, false, '')", Denied),
        both("table_to_xml by regclass", "SELECT table_to_xml('hr.employees'::regclass, true, false, '')", Denied),
        both("schema_to_xml", "SELECT schema_to_xml('hr', true, false, '')", Denied),
        both("database_to_xml", "SELECT database_to_xml(true, false, '')", Denied),
        steps("cursor_to_xml over a cursor on the table", vec![
            s(Analyst, "BEGIN", Works),
            s(Analyst, "DECLARE c CURSOR FOR SELECT * FROM hr.employees", Works),
            s(Analyst, "SELECT cursor_to_xml('c', 100, false, false, '')", Denied),
            s(Analyst, "ROLLBACK", Any),
        ]),
        steps("a cursor on the table fetched", vec![
            s(Analyst, "BEGIN", Works),
            s(Analyst, "DECLARE c2 CURSOR FOR SELECT ssn, name, email, salary FROM hr.employees", Works),
            s(Analyst, "FETCH ALL FROM c2", Safe),
            s(Analyst, "ROLLBACK", Any),
        ]),
        both("xpath over query_to_xml", "SELECT xpath('//ssn/text()', query_to_xml('SELECT ssn FROM hr.employees', true, false, ''))", Denied),
        both("xmltable over query_to_xml", "SELECT * FROM XMLTABLE('//row' PASSING query_to_xml('SELECT ssn FROM hr.employees', true, false, '') COLUMNS ssn text)", Denied),
        both("xmlelement of a subquery", "SELECT xmlelement(name x, (SELECT string_agg(ssn, ',') FROM hr.employees))", Safe),
        both("ts_stat", "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM hr.employees')", Denied),
        both("ts_stat of computed text", "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM hr.' || 'employees')", Denied),
        both("ts_rewrite with a query", "SELECT ts_rewrite('a'::tsquery, 'SELECT to_tsquery(id::text), to_tsquery(id::text) FROM hr.employees')", Denied),
        both("ts_rewrite with computed text", "SELECT ts_rewrite('a'::tsquery, 'SELECT to_tsquery(id::text), to_tsquery(id::text) FROM hr.' || 'employees')", Safe),
        both("dblink", "SELECT * FROM dblink('dbname=demo', 'SELECT ssn FROM hr.employees') AS t(ssn text)", Denied),
        both("dblink_exec", "SELECT dblink_exec('dbname=demo', 'SET immuta.user = admin')", Denied),
        both("DO with EXECUTE", "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$", Denied),
        both("DO with a loop over the table", "DO $$ DECLARE r record; BEGIN FOR r IN SELECT * FROM hr.employees LOOP RAISE NOTICE '%', r; END LOOP; END $$", Denied),
        both("DO with EXECUTE format", "DO $$ BEGIN EXECUTE format('CREATE TEMP TABLE x AS SELECT * FROM %I.%I', 'hr', 'employees'); END $$", Denied),
        both("function with EXECUTE", "CREATE FUNCTION pg_temp.run(q text) RETURNS SETOF record LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE q; END $$", Denied),
        both("DO with a cursor over computed text", "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END $$", Denied),
        steps("PREPARE and EXECUTE", vec![
            s(Analyst, "PREPARE p AS SELECT ssn, name, email, salary FROM hr.employees", Works),
            s(Analyst, "EXECUTE p", Safe),
            s(Analyst, "DEALLOCATE p", Any),
        ]),
        both("format() only builds text", "SELECT format('SELECT * FROM %I.%I', 'hr', 'employees')", Safe),
        both("pg_read_file", "SELECT pg_read_file('postgresql.conf')", Denied),
        both("pg_ls_dir", "SELECT pg_ls_dir('.')", Denied),
        both("lo_import of a server file", "SELECT lo_import('/etc/passwd')", Denied),
    ])
    .await;
    h.finish("functions_that_run_sql_text", 30);
}

#[tokio::test]
async fn copy() {
    use futures_util::StreamExt;
    let mut h = Harness::new().await;
    h.run(vec![
        one(
            "COPY table TO STDOUT",
            "COPY hr.employees TO STDOUT",
            Denied,
        ),
        one(
            "COPY table, upper case, columns",
            "COPY HR.EMPLOYEES (ssn, name) TO STDOUT",
            Denied,
        ),
        one(
            "COPY table, quoted",
            r#"COPY "hr"."employees" TO STDOUT WITH (FORMAT csv)"#,
            Denied,
        ),
        steps(
            "COPY table through search_path",
            vec![
                s(Analyst, "SET search_path = hr", Works),
                s(Analyst, "COPY employees TO STDOUT", Denied),
                s(Analyst, "RESET search_path", Works),
            ],
        ),
        one(
            "COPY table FROM STDIN",
            "COPY hr.employees FROM STDIN",
            Denied,
        ),
        one(
            "COPY the policy view",
            "COPY immuta.hr_employees TO STDOUT",
            Fails,
        ),
        one(
            "COPY a redveil table",
            "COPY immuta_system.profile_access TO STDOUT",
            Denied,
        ),
        one(
            "COPY query TO PROGRAM",
            "COPY (SELECT * FROM hr.employees) TO PROGRAM 'cat > /tmp/redveil-loot'",
            Denied,
        ),
        one(
            "COPY query TO a server file",
            "COPY (SELECT * FROM hr.employees) TO '/tmp/redveil-loot'",
            Denied,
        ),
        one(
            "COPY FROM PROGRAM",
            "COPY pg_temp.x FROM PROGRAM 'id'",
            Fails,
        ),
        x(Analyst, "COPY hr.employees TO STDOUT", &[], Denied).into(),
    ])
    .await;
    // COPY of a query is rewritten: what comes out is the analyst's view.
    let mut checked = 0;
    for sql in [
        "COPY (SELECT * FROM hr.employees) TO STDOUT",
        "COPY (TABLE hr.employees) TO STDOUT WITH (FORMAT csv, HEADER)",
        "COPY (SELECT ssn, name, email, salary FROM HR.Employees WHERE region <> 'EU' OR true) TO STDOUT",
        "COPY (WITH employees AS (SELECT * FROM hr.employees) SELECT * FROM employees) TO STDOUT",
    ] {
        let stream = h.user(Analyst).client.copy_out(sql).await.unwrap();
        let chunks: Vec<_> = stream.collect().await;
        let mut text = String::new();
        for c in chunks {
            text.push_str(&String::from_utf8_lossy(&c.unwrap()));
        }
        assert_eq!(text.lines().filter(|l| !l.starts_with("id")).count() as i64, h.eu, "{sql}");
        assert_eq!(h.secrets.leak_in(Analyst, &text), None, "{sql}");
        checked += 1;
    }
    h.attempts += checked;
    h.finish("copy", 15);
}

/// After each of these, `settle` checks the analyst still counts exactly the EU rows.
#[tokio::test]
async fn identity_forgery() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("set_config", "SELECT set_config('immuta.user', 'admin', false)", Denied),
        both("set_config upper case", "SELECT set_config('IMMUTA.USER', 'admin', false)", Denied),
        both("set_config mixed case", "SELECT set_config('Immuta.User', 'admin', false)", Denied),
        both("set_config with spaces", "SELECT set_config(' immuta.user ', 'admin', false)", Denied),
        both("set_config with quoted parts", r#"SELECT set_config('"immuta".user', 'admin', false)"#, Safe),
        both("set_config E''", r"SELECT set_config(E'immuta.user', 'admin', false)", Denied),
        both("set_config E'' with an octal escape", r"SELECT set_config(E'\151mmuta.user', 'admin', false)", Denied),
        both("set_config E'' with a hex escape", r"SELECT set_config(E'\x69mmuta.user', 'admin', false)", Denied),
        both("set_config U&''", r"SELECT set_config(U&'\0069mmuta.user', 'admin', false)", Denied),
        both("set_config dollar-quoted", "SELECT set_config($$immuta.user$$, 'admin', false)", Denied),
        both("set_config concatenation", "SELECT set_config('immu' || 'ta.user', 'admin', false)", Denied),
        both("set_config format()", "SELECT set_config(format('%s.%s', 'immuta', 'user'), 'admin', false)", Denied),
        both("set_config concat()", "SELECT set_config(concat('imm', 'uta.user'), 'admin', false)", Denied),
        both("set_config lower()", "SELECT set_config(lower('IMMUTA.USER'), 'admin', false)", Denied),
        both("set_config chr()", "SELECT set_config(chr(105) || 'mmuta.user', 'admin', false)", Denied),
        both("set_config of a column", "SELECT set_config(n, 'admin', false) FROM (VALUES ('immuta.user')) v(n)", Denied),
        both("set_config local", "SELECT set_config('immuta.user', 'admin', true)", Denied),
        both("set_config schema-qualified", "SELECT pg_catalog.set_config('immuta.user', 'admin', false)", Denied),
        both("set_config quoted name", r#"SELECT "pg_catalog"."set_config"('immuta.user', 'admin', false)"#, Denied),
        both("set_config upper-case function", "SELECT PG_CATALOG.SET_CONFIG('immuta.user', 'admin', false)", Denied),
        both("set_config in FROM", "SELECT * FROM set_config('immuta.user', 'admin', false)", Denied),
        both("set_config in ROWS FROM", "SELECT * FROM ROWS FROM (set_config('immuta.user', 'admin', false))", Denied),
        both("set_config with named arguments", "SELECT set_config(setting_name => 'immuta.user', new_value => 'admin', is_local => false)", Denied),
        both("set_config with named arguments reordered", "SELECT set_config(new_value => 'admin', setting_name => 'immuta.user', is_local => false)", Fails),
        both("set_config with named arguments, computed", "SELECT set_config(new_value => 'admin', setting_name => 'imm' || 'uta.user', is_local => false)", Fails),
        both("set_config in a subquery of WHERE", "SELECT 1 WHERE EXISTS (SELECT set_config('immuta.user', 'admin', false))", Denied),
        both("SET", "SET immuta.user = 'admin'", Denied),
        both("SET quoted parts", r#"SET "immuta"."user" TO 'admin'"#, Denied),
        both("SET one quoted name with a dot", r#"SET "immuta.user" = 'admin'"#, Denied),
        both("SET upper case", "set IMMUTA.USER = admin", Denied),
        both("SET SESSION", "SET SESSION immuta.user = 'admin'", Denied),
        both("SET LOCAL", "SET LOCAL immuta.user = 'admin'", Denied),
        both("SET with spaces around the dot", "SET immuta . user = admin", Denied),
        both("SET after a comment", "/* x */ SET /* y */ immuta.user = 'admin'", Denied),
        both("SET with a U& identifier", r#"SET U&"\0069mmuta".user = 'admin'"#, Denied),
        both("SET TO DEFAULT", "SET immuta.user TO DEFAULT", Denied),
        both("RESET", "RESET immuta.user", Denied),
        both("impersonation alias without permission", "SET immuta_user = 'admin'", Denied),
        both("impersonation without permission", "CALL immuta_procedures.impersonate_user('admin')", Denied),
        both("SET in a DO block", "DO $$ BEGIN SET immuta.user = 'admin'; END $$", Denied),
        both("PERFORM set_config in a DO block", "DO $$ BEGIN PERFORM set_config('imm' || 'uta.user', 'admin', false); END $$", Denied),
        both("function SET clause", "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET immuta.user = 'admin' AS 'SELECT 1'", Denied),
        both("SQL function wrapping set_config", "CREATE FUNCTION pg_temp.f(text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('imm' || 'uta.user', $1, false) $$", Denied),
        steps("aggregate whose transition function is set_config", vec![
            s(Analyst, r"CREATE AGGREGATE pg_temp.forge(text, boolean) (SFUNC = set_config, STYPE = text, INITCOND = E'\151mmuta.user')", Denied),
            s(Analyst, "SELECT pg_temp.forge('admin', false)", Fails),
        ]),
        steps("aggregate naming set_config schema-qualified", vec![
            s(Analyst, r"CREATE AGGREGATE pg_temp.forge2(text, boolean) (SFUNC = pg_catalog.set_config, STYPE = text, INITCOND = $$x$$)", Denied),
        ]),
        both("ALTER ROLE SET", "ALTER ROLE redveil_query SET immuta.user = 'admin'", Denied),
        both("ALTER ROLE CURRENT_USER SET, quoted", r#"ALTER ROLE CURRENT_USER SET "immuta.user" TO 'admin'"#, Denied),
        both("ALTER USER SET", "ALTER USER redveil_query SET work_mem = 64", Denied),
        both("ALTER DATABASE SET", "ALTER DATABASE demo SET immuta.user = 'admin'", Denied),
        x(Analyst, "SELECT set_config($1, $2, false)", &["immuta.user", "admin"], Denied).into(),
        x(Analyst, "SELECT set_config('immuta.user', $1, false)", &["admin"], Denied).into(),
        x(Analyst, "SELECT set_config($1::text, 'admin', false)", &["immuta.user"], Denied).into(),
        x(Analyst, "SELECT set_config(lower($1), 'admin', false)", &["IMMUTA.USER"], Denied).into(),
        steps("standard_conforming_strings off, then a string the proxy reads differently", vec![
            s(Analyst, "SET standard_conforming_strings = off", Denied),
            s(Analyst, r"SELECT '\''; SELECT set_config($q$immuta.user$q$, $q$admin$q$, false) --'", Safe),
            s(Analyst, "RESET standard_conforming_strings", Any),
        ]),
        both("standard_conforming_strings off through set_config", "SELECT set_config('standard_conforming_strings', 'off', false)", Denied),
        both("standard_conforming_strings off in a DO block", "DO $$ BEGIN SET standard_conforming_strings = off; END $$", Denied),
    ])
    .await;
    // At connect time, as a startup parameter rather than options.
    for (name, value) in [
        ("immuta.user", "admin"),
        ("IMMUTA.USER", "admin"),
        ("standard_conforming_strings", "off"),
    ] {
        let stream = raw::tls_to_proxy(&h.proxy).await;
        let mut conn = RawConn::unstarted(stream);
        let startup = redveil::protocol::startup::StartupMessage::encode(&[
            ("user".to_string(), "analyst".to_string()),
            ("database".to_string(), "demo".to_string()),
            (name.to_string(), value.to_string()),
        ]);
        conn.send(&startup).await;
        let replies = login_replies(&mut conn, "analyst").await;
        if !raw::error_codes(&replies).contains(&"42501".to_string()) {
            h.failures
                .push(format!("[startup parameter {name}={value}] was accepted"));
        }
        h.attempts += 1;
    }
    h.finish("identity_forgery", 55);
}

/// Drives a SCRAM login by hand and returns every message up to the end of startup.
async fn login_replies(conn: &mut RawConn, user: &str) -> Vec<raw::Msg> {
    use redveil::auth::ScramClient;
    use redveil::protocol::backend::{decode_auth, AuthRequest};
    let password = common::proxy::PASSWORD_OF(user);
    let mut scram: Option<ScramClient> = None;
    let mut out_msgs = Vec::new();
    loop {
        let Some(m) = conn.recv().await.expect("read") else {
            return out_msgs;
        };
        out_msgs.push(m.clone());
        let mut out = bytes::BytesMut::new();
        match m.tag {
            tag::AUTHENTICATION => match decode_auth(m.body()).expect("auth") {
                AuthRequest::Sasl(mechanisms) => {
                    let mechanism = ScramClient::choose_mechanism(mechanisms).expect("SCRAM");
                    let mut client = ScramClient::new(&password);
                    let first = client.client_first();
                    frontend::encode_sasl_initial(&mut out, mechanism, &first);
                    scram = Some(client);
                }
                AuthRequest::SaslContinue(data) => {
                    let reply = scram.as_mut().unwrap().server_first(data).expect("SCRAM");
                    frontend::put_message(&mut out, tag::PASSWORD, &reply);
                }
                _ => {}
            },
            tag::ERROR_RESPONSE | tag::READY_FOR_QUERY => return out_msgs,
            _ => {}
        }
        if !out.is_empty() {
            conn.send(&out).await;
        }
    }
}

#[tokio::test]
async fn identity_reads_roles_and_resets() {
    let mut h = Harness::new().await;
    h.run(vec![
        both("current_setting", "SELECT current_setting('immuta.user')", Denied),
        both("current_setting missing_ok", "SELECT current_setting('IMMUTA.user', true)", Denied),
        both("current_setting computed", "SELECT current_setting('imm' || 'uta.user', true)", Denied),
        both("current_setting E''", r"SELECT current_setting(E'\151mmuta.user', true)", Denied),
        both("current_setting named, reordered", "SELECT current_setting(missing_ok => true, setting_name => 'immuta.user')", Denied),
        both("current_setting qualified", "SELECT pg_catalog.current_setting('immuta.user')", Denied),
        both("SHOW", "SHOW immuta.user", Denied),
        both("SHOW quoted", r#"SHOW "immuta"."user""#, Denied),
        both("SHOW ALL", "SHOW ALL", Hidden),
        // PostgreSQL: sync's filtered views answer (policy::schema::SESSION_VIEWS); Redshift: refused.
        both("pg_settings", "SELECT * FROM pg_settings WHERE name LIKE 'immuta%'", Hidden),
        both("pg_settings qualified and quoted", r#"SELECT name, setting FROM "pg_catalog"."pg_settings""#, Hidden),
        both("pg_show_all_settings", "SELECT * FROM pg_show_all_settings()", Denied),
        both("pg_file_settings", "SELECT * FROM pg_file_settings", Denied),
        both("pg_db_role_setting", "SELECT setconfig::text FROM pg_db_role_setting", Hidden),
        both("pg_options_to_table of role settings", "SELECT o.* FROM pg_db_role_setting, pg_options_to_table(setconfig) o", Hidden),
        both("current_setting inside a function body", "CREATE FUNCTION pg_temp.who() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN current_setting('imm' || 'uta.user', true); END $$", Denied),
        both("current_setting inside a SQL function body", "CREATE FUNCTION pg_temp.who2() RETURNS text LANGUAGE sql AS $$ SELECT current_setting(chr(105) || 'mmuta.user', true) $$", Denied),
        both("current_setting into application_name", "SELECT set_config('application_name', current_setting('imm' || 'uta.user'), false)", Denied),
        both("SET ROLE", "SET ROLE postgres", Denied),
        both("SET ROLE to the system role", "SET ROLE redveil_system", Denied),
        both("SET LOCAL ROLE", "SET LOCAL ROLE redveil_system", Denied),
        both("SET SESSION ROLE quoted", r#"SET SESSION "role" = 'redveil_system'"#, Denied),
        both("SET ROLE NONE", "SET ROLE NONE", Denied),
        both("RESET ROLE", "RESET ROLE", Denied),
        both("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres", Denied),
        both("SET session_authorization as a setting", "SET session_authorization = 'postgres'", Denied),
        both("set_config('role')", "SELECT set_config('role', 'redveil_system', false)", Denied),
        both("set_config('session_authorization')", "SELECT set_config('session_authorization', 'postgres', false)", Denied),
        both("ALTER ROLE SET role", "ALTER ROLE redveil_query SET role = 'redveil_system'", Denied),
        both("GRANT a role to the query role", "GRANT redveil_system TO redveil_query", Denied),
        both("CREATE ROLE", "CREATE ROLE x SUPERUSER", Denied),
        both("SET ROLE in a DO block", "DO $$ BEGIN SET ROLE redveil_system; END $$", Denied),
        steps("RESET ALL then read", vec![
            s(Analyst, "RESET ALL", Works),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
        ]),
        steps("DISCARD ALL then read", vec![
            s(Analyst, "DISCARD ALL", Works),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
        ]),
        // The pin precedes the string, so its statements after RESET ALL run with no identity
        // and see no rows (fails closed); the next statement is pinned again.
        steps("RESET ALL and a read in one string", vec![
            s(Analyst, "RESET ALL; SELECT ssn, email FROM hr.employees", Safe),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
        ]),
        steps("DISCARD ALL and a read in one string", vec![
            s(Analyst, "SELECT 1; DISCARD ALL; SELECT count(*) FROM hr.employees", Any),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
        ]),
        steps("RESET ALL in the extended protocol", vec![
            x(Analyst, "RESET ALL", &[], Works),
            x(Analyst, "SELECT count(*) FROM hr.employees", &[], Own),
        ]),
        steps("DISCARD ALL in the extended protocol", vec![
            x(Analyst, "DISCARD ALL", &[], Works),
            x(Analyst, "SELECT count(*) FROM hr.employees", &[], Own),
        ]),
        steps("RESET ALL in a DO block", vec![
            s(Analyst, "DO $$ BEGIN RESET ALL; END $$", Any),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
        ]),
        steps("RESET ALL by bi_service between analyst statements", vec![
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
            s(Bi, "RESET ALL", Works),
            s(Analyst, "SELECT count(*) FROM hr.employees", Own),
            s(Bi, "SELECT count(*) FROM hr.employees", Own),
        ]),
    ])
    .await;
    h.finish("identity_reads_roles_and_resets", 40);
}

#[tokio::test]
async fn smuggling_comments_and_escapes() {
    let mut h = Harness::new().await;
    h.run(vec![
        one(
            "a second statement",
            "SELECT 1; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a second set_config",
            "SELECT 1; SELECT set_config('immuta.user', 'admin', false)",
            Denied,
        ),
        one(
            "a second COPY",
            "SELECT 1; COPY hr.employees TO STDOUT",
            Denied,
        ),
        one(
            "a second SET ROLE, no space",
            "SELECT 1;SET ROLE redveil_system",
            Denied,
        ),
        one(
            "a semicolon in a string first",
            "SELECT ';'; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a semicolon in dollar quotes first",
            "SELECT $$;$$; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a semicolon in tagged dollar quotes",
            "SELECT $a$ $$; $a$; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a semicolon in a block comment",
            "SELECT 1 /* ; */; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a semicolon in a nested comment",
            "SELECT 1 /* /* ; */ ; */; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a semicolon in a line comment",
            "SELECT 1 -- ;\n; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "an escaped quote in E''",
            r"SELECT E'\';'; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a doubled quote",
            "SELECT 'a'';'; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "a quoted identifier with a semicolon",
            r#"SELECT 1 AS "a;b"; SET immuta.user = 'admin'"#,
            Denied,
        ),
        one(
            "inside a transaction",
            "BEGIN; SET LOCAL immuta.user = 'admin'; SELECT count(*) FROM hr.employees; COMMIT",
            Denied,
        ),
        one(
            "after an impersonation statement",
            "CALL immuta_procedures.impersonate_user(NULL); SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "an unterminated comment hiding the rest",
            "SELECT 1; /* SET immuta.user = 'admin'",
            Fails,
        ),
        one(
            "an unterminated string",
            "SELECT 'abc; SET immuta.user = 'admin'",
            Denied,
        ),
        one(
            "registered table after a semicolon in a comment",
            "SELECT 1 /* ; */; SELECT ssn, name FROM hr.employees",
            Safe,
        ),
        one(
            "registered table inside a comment only",
            "SELECT 1 /* FROM hr.employees */",
            Works,
        ),
        one(
            "registered table in a string only",
            "SELECT 'SELECT * FROM hr.employees'",
            Works,
        ),
        one(
            "unparseable with the table named in a comment",
            "SELECT FROM WHERE /* hr.employees */",
            Fails,
        ),
        one(
            "dollar-quoted table name as a string",
            "SELECT $x$hr.employees$x$::regclass",
            Safe,
        ),
        one(
            "U& identifier of the table",
            r#"SELECT * FROM U&"hr".U&"\0065mployees""#,
            Denied,
        ),
        one(
            "U& identifier of another name",
            r#"SELECT * FROM U&"\0068r".employees"#,
            Denied,
        ),
        one(
            "U& with a custom escape",
            r#"SELECT * FROM hr.U&"!0065mployees" UESCAPE '!'"#,
            Denied,
        ),
        one("U& string", r"SELECT U&'\0041'", Denied),
        one(
            "table name split by a newline",
            "SELECT ssn FROM hr\n.\nemployees",
            Safe,
        ),
        one(
            "tab-separated keywords",
            "SELECT\tssn\tFROM\thr.employees",
            Safe,
        ),
        one(
            "form feed and vertical tab",
            "SELECT\x0cssn FROM\x0bhr.employees",
            Safe,
        ),
        one(
            "non-breaking space in the name",
            "SELECT ssn FROM hr.\u{a0}employees",
            Fails,
        ),
        one(
            "zero-width space in the name",
            "SELECT ssn FROM hr.employ\u{200b}ees",
            Fails,
        ),
        one(
            "Cyrillic е in the table name",
            "SELECT ssn FROM hr.\u{435}mployees",
            Fails,
        ),
        one(
            "Turkish dotless i in the schema",
            "SELECT * FROM \u{131}mmuta_system.profile_access",
            Fails,
        ),
        one(
            "upper-case Unicode fold",
            "SELECT ssn FROM HR.EMPLOYEE\u{17f}",
            Fails,
        ),
        one(
            "E'' string naming the table in a function",
            r"SELECT to_regclass(E'hr.\145mployees')",
            Safe,
        ),
        one(
            "backslash line continuation",
            "SELECT ssn FROM hr.\\\nemployees",
            Fails,
        ),
        one(
            "psql meta-command text",
            "\\copy hr.employees to stdout",
            Denied,
        ),
    ])
    .await;
    h.finish("smuggling_comments_and_escapes", 35);
}

#[tokio::test]
async fn leaks_through_predicates_errors_statistics_and_catalogs() {
    let mut h = Harness::new().await;
    // PostgreSQL: sync's view of pg_stat_activity shows the client's own backend only
    // (policy::schema::SESSION_VIEWS); Redshift: refused.
    let other_backends = match common::dialect() {
        redveil::dialect::Dialect::Postgres => Is("0"),
        redveil::dialect::Dialect::Redshift => Denied,
    };
    h.run(vec![
        steps("a leaky plpgsql function in WHERE", vec![
            s(Analyst, "CREATE FUNCTION pg_temp.peek(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'peek %', $1; RETURN true; END $$", Works),
            s(Analyst, "SELECT count(*) FROM hr.employees WHERE pg_temp.peek(ssn)", Safe),
            s(Analyst, "SELECT count(*) FROM hr.employees WHERE pg_temp.peek(email)", Safe),
            s(Analyst, "SELECT count(*) FROM hr.employees WHERE pg_temp.peek(name || ' ' || salary::text)", Safe),
            x(Analyst, "SELECT count(*) FROM hr.employees e WHERE pg_temp.peek(e.email) AND e.id > 0", &[], Safe),
            s(Analyst, "SELECT count(*) FROM (SELECT * FROM hr.employees) s WHERE pg_temp.peek(s.email)", Safe),
            s(Analyst, "SELECT count(*) FROM hr.employees a JOIN hr.employees b ON pg_temp.peek(b.email) AND a.id = b.id", Safe),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        steps("a leaky operator", vec![
            s(Analyst, "CREATE FUNCTION pg_temp.peek2(text, text) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'peek %', $1; RETURN true; END $$", Works),
            s(Analyst, "CREATE OPERATOR pg_temp.<<< (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.peek2)", Works),
            s(Analyst, "SELECT count(*) FROM hr.employees WHERE email OPERATOR(pg_temp.<<<) 'x'", Safe),
            s(Analyst, "DISCARD TEMP", Any),
        ]),
        both("LEAKPROOF needs a superuser", "CREATE FUNCTION pg_temp.lp(text) RETURNS bool LANGUAGE sql LEAKPROOF AS 'SELECT true'", Denied),
        both("division by zero on hidden rows", "SELECT count(*) FROM hr.employees WHERE CASE WHEN region <> 'EU' THEN 1/(id - id) ELSE 1 END = 1", Own),
        both("division by zero on raw ssn", "SELECT count(*) FROM hr.employees WHERE CASE WHEN ssn IS NOT NULL THEN 1/(id - id) ELSE 1 END = 1", Own),
        both("cast of a masked ssn", "SELECT ssn::int FROM hr.employees", Safe),
        both("cast of a masked name", "SELECT name::int FROM hr.employees", Safe),
        both("cast of a masked email", "SELECT email::date FROM hr.employees", Safe),
        both("cast of a masked salary", "SELECT salary::text::int FROM hr.employees", Safe),
        both("error message built from a value", "SELECT CAST(name || ' ' || email || ' ' || salary AS int) FROM hr.employees", Safe),
        both("division by a masked salary", "SELECT 1 / (salary - salary) FROM hr.employees", Safe),
        both("pg_stats", "SELECT * FROM pg_stats WHERE tablename IN ('employees', 'hr_employees')", Works),
        both("pg_stats most common values", "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE schemaname = 'hr'", Safe),
        both("pg_statistic", "SELECT * FROM pg_statistic", Denied),
        both("pg_stats_ext", "SELECT * FROM pg_stats_ext", Safe),
        both("CREATE STATISTICS", "CREATE STATISTICS s ON ssn, name FROM hr.employees", Denied),
        both("EXPLAIN", "EXPLAIN SELECT * FROM hr.employees", Works),
        both("EXPLAIN VERBOSE", "EXPLAIN (VERBOSE) SELECT * FROM hr.employees", Works),
        both("EXPLAIN VERBOSE of the view", "EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM immuta.hr_employees", Works),
        both("EXPLAIN ANALYZE counts the hidden rows", "EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM hr.employees", Denied),
        both("EXPLAIN ANALYZE of the view", "EXPLAIN ANALYZE SELECT * FROM immuta.hr_employees", Denied),
        both("EXPLAIN of a write", "EXPLAIN UPDATE hr.employees SET salary = 0", Denied),
        both("pg_get_viewdef", "SELECT pg_get_viewdef('immuta.hr_employees'::regclass, true)", Works),
        both("pg_views", "SELECT definition FROM pg_views WHERE schemaname = 'immuta'", Works),
        both("view text via pg_rewrite", "SELECT ev_action::text FROM pg_rewrite WHERE ev_class = 'immuta.hr_employees'::regclass", Safe),
        both("immuta_system profile", "SELECT * FROM immuta_system.profile_access", Denied),
        both("immuta_system data sources (the salt)", "SELECT salt FROM immuta_system.data_sources", Denied),
        both("immuta_system, upper case", "SELECT * FROM IMMUTA_SYSTEM.PROFILE_ACCESS", Denied),
        both("immuta_system, spaced and commented", "SELECT * FROM immuta_system /**/ . profile_users", Denied),
        both("immuta_system, three-part", "SELECT * FROM demo.immuta_system.user_access", Denied),
        both("immuta_system in a subquery", "SELECT (SELECT count(*) FROM immuta_system.profile_attributes)", Denied),
        both("immuta_system in TABLE", "TABLE immuta_system.profile_groups", Denied),
        both("immuta_system via search_path", "SET search_path = immuta_system", Denied),
        both("immuta_functions", "SELECT immuta_functions.mask_hash('x', 'y')", Denied),
        both("immuta_procedures", "SELECT * FROM immuta_procedures.impersonate_user('admin')", Denied),
        both("a temp view over immuta_system", "CREATE TEMP VIEW pa AS SELECT * FROM immuta_system.profile_access", Denied),
        both("catalog row count", "SELECT reltuples::bigint FROM pg_class WHERE oid = 'hr.employees'::regclass", Safe),
        both("pg_stat_activity of other sessions (their statements, the pins with salts)", "SELECT query FROM pg_stat_activity", Hidden),
        both("pg_stat_activity, qualified and quoted", "SELECT query FROM pg_catalog.\"pg_stat_activity\"", Hidden),
        both("pg_stat_get_activity", "SELECT query FROM pg_stat_get_activity(NULL)", Denied),
        both("statements other clients prepared on a pooled backend", "SELECT statement FROM pg_prepared_statements", Denied),
        both("pg_prepared_statement()", "SELECT statement FROM pg_prepared_statement()", Denied),
        both("pg_stat_activity shows no other backend", "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()", other_backends),
        steps("pg_stat_activity in a view body", vec![
            s(Analyst, "CREATE TEMP VIEW act AS SELECT pid, query FROM pg_stat_activity", Hidden),
            s(Analyst, "SELECT query FROM act WHERE pid <> pg_backend_pid()", Hidden),
            s(Analyst, "DROP VIEW IF EXISTS act", Any),
        ]),
        both("pg_stat_activity in a function body", "CREATE FUNCTION pg_temp.act() RETURNS SETOF text LANGUAGE sql AS 'SELECT query FROM pg_stat_activity'", Denied),
        steps("LISTEN, then another user's NOTIFY", vec![
            s(Analyst, "LISTEN redveil_bypass", Works),
            s(Admin, "NOTIFY redveil_bypass, 'admin payload'", Works),
            s(Analyst, "SELECT 1", Works),
            s(Analyst, "UNLISTEN *", Any),
        ]),
        both("pg_notify of the table", "SELECT pg_notify('redveil_bypass', (SELECT string_agg(ssn || email, ',') FROM hr.employees))", Safe),
        steps("large object of analyst's rows read by bi_service", vec![
            s(Analyst, "SELECT lo_from_bytea(0, convert_to((SELECT string_agg(email, ',') FROM hr.employees), 'UTF8'))", Denied),
            s(Bi, "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata", Denied),
        ]),
        steps("large object of admin's rows read by analyst", vec![
            s(Admin, "SELECT lo_from_bytea(0, convert_to((SELECT string_agg(ssn, ',') FROM hr.employees), 'UTF8'))", Any),
            s(Analyst, "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata", Denied),
            s(Analyst, "SELECT convert_from(data, 'UTF8') FROM pg_largeobject", Denied),
            s(Analyst, "SELECT loread(lo_open(oid, 262144), 100000) FROM pg_largeobject_metadata", Denied),
        ]),
    ])
    .await;
    let su = common::cluster().connect_superuser("demo").await.unwrap();
    su.batch_execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
        .await
        .unwrap();
    h.finish(
        "leaks_through_predicates_errors_statistics_and_catalogs",
        40,
    );
}

/// Sends `messages` and reads up to ReadyForQuery; returns the replies and everything in them
/// as text for the leak check.
async fn exchange(conn: &mut RawConn, messages: &bytes::BytesMut) -> (Vec<raw::Msg>, String) {
    conn.send(messages).await;
    let replies = tokio::time::timeout(STEP_TIMEOUT, conn.until_ready())
        .await
        .expect("no hang");
    let text = replies
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    (replies, text)
}

fn parse_bind_execute(name: &str, sql: &str, params: &[Option<&[u8]>]) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    raw::parse(&mut out, name, sql);
    raw::bind(&mut out, "", name, params, &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    out
}

fn bind_execute(name: &str) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    raw::bind(&mut out, "", name, &[], &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    out
}

fn count_of(replies: &[raw::Msg]) -> Option<i64> {
    let row = replies.iter().find(|m| m.tag == tag::DATA_ROW)?;
    let body = row.body();
    let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
    std::str::from_utf8(&body[6..6 + len]).ok()?.parse().ok()
}

#[tokio::test]
async fn prepared_statements_and_protocol_tricks() {
    let h = Harness::new().await;
    let (eu, secrets) = (h.eu, h.secrets);
    let mut attempts = 0;
    let mut admin = RawConn::proxy(&h.proxy, "admin", &[]).await;
    let mut analyst = RawConn::proxy(&h.proxy, "analyst", &[]).await;
    let count_sql = "SELECT count(*) FROM hr.employees";
    let own = |replies: &[raw::Msg]| count_of(replies);

    // A name another user prepared: admin's "s1" reads raw rows.
    let secret_sql = "SELECT ssn, name, email, salary FROM hr.employees";
    let (_, text) = exchange(&mut admin, &parse_bind_execute("s1", secret_sql, &[])).await;
    assert!(
        secrets.leak_in(Analyst, &text).is_some(),
        "admin sees raw rows"
    );
    for message in [bind_execute("s1"), {
        let mut out = bytes::BytesMut::new();
        raw::describe(&mut out, b'S', "s1");
        raw::sync(&mut out);
        out
    }] {
        let (replies, text) = exchange(&mut analyst, &message).await;
        assert_eq!(
            secrets.leak_in(Analyst, &text),
            None,
            "admin's s1 reached the analyst"
        );
        assert!(!raw::error_codes(&replies).is_empty(), "{replies:?}");
        attempts += 1;
    }
    // The analyst prepares the same name with the same text: its own view.
    let (replies, text) = exchange(&mut analyst, &parse_bind_execute("s1", secret_sql, &[])).await;
    assert_eq!(secrets.leak_in(Analyst, &text), None);
    assert_eq!(
        replies.iter().filter(|m| m.tag == tag::DATA_ROW).count() as i64,
        eu
    );
    attempts += 1;
    // …and admin's s1 still runs as admin.
    let (_, text) = exchange(&mut admin, &bind_execute("s1")).await;
    assert!(secrets.leak_in(Analyst, &text).is_some());
    // The analyst redefines s1 as something else; admin's s1 is untouched.
    let (_, _) = exchange(
        &mut analyst,
        &parse_bind_execute("s1", "SELECT 'x' AS ssn", &[]),
    )
    .await;
    let (_, text) = exchange(&mut admin, &bind_execute("s1")).await;
    assert!(
        secrets.leak_in(Analyst, &text).is_some(),
        "admin's s1 was replaced"
    );
    attempts += 1;

    // The backend names the proxy uses are not listed (pg_prepared_statements would show
    // every client's statements on a pooled backend); derived from the text, as the proxy
    // derives them, running, replacing or dropping one is refused.
    let (replies, _) = exchange(
        &mut analyst,
        &parse_bind_execute("", "SELECT name FROM pg_prepared_statements", &[]),
    )
    .await;
    assert_eq!(raw::error_codes(&replies), ["42501"]);
    let backend_name = redveil::proxy::backend_statement_name(
        "SELECT ssn, name, email, salary FROM immuta_classes.hr_employees__c1 AS employees",
        &[0, 0],
        Default::default(),
    );
    for sql in [
        format!("EXECUTE {backend_name}"),
        format!("DEALLOCATE {backend_name}"),
        format!("DEALLOCATE PREPARE \"{backend_name}\""),
        format!("PREPARE {backend_name} AS SELECT 1"),
    ] {
        let replies = analyst.simple(&sql).await;
        let text: String = replies
            .iter()
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .collect();
        assert_eq!(secrets.leak_in(Analyst, &text), None, "{sql}");
        assert_eq!(raw::error_codes(&replies), ["42501"], "{sql}");
        attempts += 1;
    }
    let (_, text) = exchange(&mut admin, &bind_execute("s1")).await;
    assert!(
        secrets.leak_in(Analyst, &text).is_some(),
        "admin's statement still works"
    );

    // Parse with set_config, the setting name as a Bind parameter, pipelined with a read.
    for (sql, params) in [
        (
            "SELECT set_config($1, $2, false)",
            vec![Some(&b"immuta.user"[..]), Some(&b"admin"[..])],
        ),
        (
            "SELECT set_config($1::text, 'admin', false)",
            vec![Some(&b"immuta.user"[..])],
        ),
        (
            "SELECT current_setting($1)",
            vec![Some(&b"immuta.user"[..])],
        ),
        ("SELECT set_config('immuta.user', 'admin', false)", vec![]),
        ("SET immuta.user = 'admin'", vec![]),
        ("SET ROLE redveil_system", vec![]),
    ] {
        let mut out = parse_bind_execute("", sql, &params);
        raw::parse(&mut out, "", count_sql);
        raw::bind(&mut out, "", "", &[], &[]);
        raw::execute(&mut out, "", 0);
        raw::sync(&mut out);
        analyst.send(&out).await;
        let first = analyst.until_ready().await;
        assert_eq!(raw::error_codes(&first), ["42501"], "{sql}: {first:?}");
        let second = analyst.until_ready().await;
        assert_eq!(own(&second), Some(eu), "{sql}: {second:?}");
        attempts += 1;
    }
    // A refused Parse in the middle of a pipeline skips to Sync; the next batch is the analyst's.
    let mut out = bytes::BytesMut::new();
    raw::parse(&mut out, "", count_sql);
    raw::parse(
        &mut out,
        "evil",
        "SELECT set_config('immuta.user', 'admin', false)",
    );
    raw::bind(&mut out, "", "evil", &[], &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    let (replies, _) = exchange(&mut analyst, &out).await;
    assert_eq!(raw::error_codes(&replies), ["42501"]);
    let (replies, _) = exchange(&mut analyst, &parse_bind_execute("", count_sql, &[])).await;
    assert_eq!(own(&replies), Some(eu));
    attempts += 1;

    // Fast-path FunctionCall of set_config by OID.
    let su = common::cluster().connect_superuser("demo").await.unwrap();
    let mut oids = Vec::new();
    for f in [
        "set_config(text,text,boolean)",
        "current_setting(text)",
        "lo_open(oid,integer)",
    ] {
        let oid: u32 = su
            .query_one(&format!("SELECT '{f}'::regprocedure::oid"), &[])
            .await
            .unwrap()
            .get(0);
        oids.push(oid);
    }
    for (oid, args) in [
        (oids[0], vec![&b"immuta.user"[..], b"admin", b"false"]),
        (oids[1], vec![&b"immuta.user"[..]]),
        (oids[2], vec![&b"1"[..], b"262144"]),
    ] {
        use bytes::BufMut;
        let mut body = bytes::BytesMut::new();
        body.put_u32(oid);
        body.put_i16(0);
        body.put_i16(args.len() as i16);
        for a in &args {
            body.put_i32(a.len() as i32);
            body.put_slice(a);
        }
        body.put_i16(0);
        let mut out = bytes::BytesMut::new();
        frontend::put_message(&mut out, tag::FUNCTION_CALL, &body);
        let (replies, text) = exchange(&mut analyst, &out).await;
        assert_eq!(
            raw::error_codes(&replies),
            ["42501"],
            "FunctionCall {oid}: {replies:?}"
        );
        assert!(!text.contains("analyst"), "{text}");
        let (replies, _) = exchange(&mut analyst, &parse_bind_execute("", count_sql, &[])).await;
        assert_eq!(own(&replies), Some(eu), "after FunctionCall {oid}");
        attempts += 1;
    }
    eprintln!("prepared_statements_and_protocol_tricks: {attempts} attempts");
    assert!(attempts >= 15, "{attempts}");
}

/// Pool reuse after a cancel, an abort or a client that vanished mid-transaction: the next
/// user of the one pooled connection always runs as themselves.
#[tokio::test]
async fn pooled_connection_reuse() {
    let h = Harness::new().await;
    let eu = h.eu;
    let count = "SELECT count(*) FROM hr.employees";
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(h.proxy.client_tls());
    let mut attempts = 0;
    for (victim, next, expected) in [
        ("admin", "analyst", eu),
        ("analyst", "bi_service", 0),
        ("admin", "bi_service", 0),
    ] {
        // Cancelled mid-statement inside a transaction, then the client goes away.
        let c = h.proxy.connect(victim).await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        c.query_one(count, &[]).await.unwrap();
        let cancel = c.cancel_token();
        let sleeper = tokio::spawn(async move {
            let r = c.simple_query("SELECT pg_sleep(30)").await;
            (c, r)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel_query(tls.clone()).await.unwrap();
        let (c, r) = tokio::time::timeout(STEP_TIMEOUT, sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sqlstate(&r.unwrap_err()), "57014");
        drop(c);
        let other = h.proxy.connect(next).await.unwrap();
        let n: i64 = tokio::time::timeout(STEP_TIMEOUT, other.query_one(count, &[]))
            .await
            .unwrap()
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{next} after {victim} was cancelled");
        attempts += 1;

        // Aborted by an error, then the client vanishes.
        let c = h.proxy.connect(victim).await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        c.query_one(count, &[]).await.unwrap();
        assert!(c.simple_query("SELECT 1/0").await.is_err());
        drop(c);
        let n: i64 = tokio::time::timeout(STEP_TIMEOUT, other.query_one(count, &[]))
            .await
            .unwrap()
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{next} after {victim} aborted");
        attempts += 1;

        // Open transaction, client vanishes without a word.
        let c = h.proxy.connect(victim).await.unwrap();
        c.batch_execute("BEGIN; SELECT count(*) FROM hr.employees")
            .await
            .unwrap();
        drop(c);
        let n: i64 = tokio::time::timeout(STEP_TIMEOUT, other.query_one(count, &[]))
            .await
            .unwrap()
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{next} after {victim} vanished");
        attempts += 1;
    }

    // Impersonation inside a transaction, rolled back to a savepoint.
    let bi = h.proxy.connect("bi_service").await.unwrap();
    let analyst = h.proxy.connect("analyst").await.unwrap();
    bi.batch_execute("BEGIN; SAVEPOINT s; CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    let n: i64 = bi.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(n, 10_000);
    bi.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    let _ = bi.query_one(count, &[]).await;
    bi.batch_execute("COMMIT").await.unwrap();
    let n: i64 = analyst.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(n, eu, "analyst after bi_service's savepoint games");
    attempts += 1;

    // Session mode: temp objects and held cursors die with the client.
    let p = common::demo_views::start("[pool]\nmode = \"session\"\nsize = 1\n").await;
    let admin = p.connect("admin").await.unwrap();
    admin
        .batch_execute("CREATE TEMP TABLE adm AS SELECT * FROM hr.employees; BEGIN; DECLARE held CURSOR WITH HOLD FOR SELECT ssn FROM hr.employees; COMMIT")
        .await
        .unwrap();
    drop(admin);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let analyst = p.connect("analyst").await.unwrap();
    for sql in ["SELECT * FROM pg_temp.adm", "FETCH ALL FROM held"] {
        let r = tokio::time::timeout(STEP_TIMEOUT, analyst.simple_query(sql))
            .await
            .unwrap();
        match r {
            Result::Ok(m) => assert_eq!(
                h.secrets.leak_in(Analyst, &texts(m).join("\n")),
                None,
                "{sql}"
            ),
            Err(e) => assert_ne!(sqlstate(&e), "none"),
        }
        attempts += 1;
    }
    eprintln!("pooled_connection_reuse: {attempts} attempts");
    assert!(attempts >= 10);
}
