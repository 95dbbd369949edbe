//! The query path on Redshift: its SQL is parsed with Redshift's grammar, and the relations and
//! statements that are dangerous only there are refused.

use super::*;
use crate::dialect::Dialect;

fn run_on(dialect: Dialect, sql: &str) -> Result<Rewritten, Denial> {
    let path = parse_search_path_list("public", "redveil_query");
    rewrite(
        sql,
        Scope {
            registry: &registry(),
            database: "demo",
            search_path: &path,
            backend_role: "redveil_query",
            dialect,
            lexing: dialect.lexing(None),
        },
    )
}

fn sent(sql: &str) -> String {
    match run_on(Dialect::Redshift, sql) {
        Ok(Rewritten {
            sql: Some(sent), ..
        }) => sent,
        other => panic!("{sql} => {other:?}"),
    }
}

#[test]
fn redshift_sql_on_a_registered_table_is_rewritten() {
    assert_eq!(
        sent("SELECT TOP 5 * FROM hr.employees"),
        "SELECT TOP 5 * FROM immuta.hr_employees AS employees"
    );
    assert!(sent(
        "SELECT name FROM hr.employees QUALIFY row_number() OVER (PARTITION BY region ORDER BY name) = 1"
    )
    .contains("FROM immuta.hr_employees AS employees QUALIFY"));
    assert!(
        sent("SELECT listagg(name, ',') WITHIN GROUP (ORDER BY name) FROM hr.employees")
            .contains("FROM immuta.hr_employees AS employees")
    );
}

#[test]
fn redshift_query_logs_are_refused_where_they_are_system_views() {
    for sql in [
        "SELECT querytxt FROM stl_query",
        "SELECT text FROM pg_catalog.stl_querytext",
        "SELECT * FROM STV_RECENTS",
        "SELECT query_text FROM sys_query_history",
        "SELECT * FROM svv_query_inflight",
        "SELECT * FROM svl_statementtext",
    ] {
        assert!(run_on(Dialect::Redshift, sql).is_err(), "{sql}");
        assert_eq!(
            run_on(Dialect::Postgres, sql).map(|r| r.sql),
            Ok(None),
            "{sql}"
        );
    }
    assert_eq!(
        run_on(Dialect::Redshift, "SELECT * FROM logs.sys_events").map(|r| r.sql),
        Ok(None)
    );
}

#[test]
fn redshift_refuses_client_functions_and_the_result_cache_setting() {
    for sql in [
        "CREATE FUNCTION f_leak(int) RETURNS int STABLE AS $$ SELECT $1 $$ LANGUAGE sql",
        "CREATE OR REPLACE FUNCTION f_leak(int) RETURNS int STABLE AS $$ SELECT $1 $$ LANGUAGE sql",
        "CREATE EXTERNAL FUNCTION f_leak(int) RETURNS int VOLATILE LAMBDA 'f' IAM_ROLE 'arn:aws:iam::1:role/r'",
        "SET enable_result_cache_for_session TO on",
        "RESET enable_result_cache_for_session",
        "SELECT set_config('enable_result_cache_for_session', 'on', false)",
    ] {
        assert!(run_on(Dialect::Redshift, sql).is_err(), "{sql}");
    }
    assert!(run_on(
        Dialect::Postgres,
        "SET enable_result_cache_for_session TO on"
    )
    .is_ok());
}

#[test]
fn unload_of_a_registered_table_is_refused() {
    let sql =
        "UNLOAD ('SELECT * FROM hr.employees') TO 's3://bucket/x' IAM_ROLE 'arn:aws:iam::1:role/r'";
    assert!(run_on(Dialect::Redshift, sql).is_err());
    let other = "UNLOAD ('SELECT 1') TO 's3://bucket/x' IAM_ROLE 'arn:aws:iam::1:role/r'";
    assert!(run_on(Dialect::Redshift, other).is_ok());
}
