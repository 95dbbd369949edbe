//! Table-driven rewrite cases: input SQL, search_path, and the text sent or the refusal.

use super::*;
use cases::{Case, Expect::*, GROUPS};

mod cases;
mod redshift;

fn registry() -> Registry {
    sample_registry()
}

fn run(sql: &str, search_path: &str) -> Result<Rewritten, Denial> {
    run_with(&registry(), sql, search_path)
}

fn run_with(registry: &Registry, sql: &str, search_path: &str) -> Result<Rewritten, Denial> {
    let path = parse_search_path_list(search_path, "redveil_query");
    rewrite(
        sql,
        Scope {
            registry,
            database: "demo",
            search_path: &path,
            backend_role: "redveil_query",
            dialect: crate::dialect::Dialect::Postgres,
            lexing: crate::dialect::Lexing::Standard,
        },
    )
}

#[test]
fn rewrite_cases() {
    let cases: Vec<&Case> = GROUPS.iter().flat_map(|group| group.iter()).collect();
    assert!(cases.len() >= 120);
    let mut failures = Vec::new();
    for Case {
        search_path: path,
        sql,
        expect,
    } in cases
    {
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

/// A statement forwarded as written may end in a `--` comment; the `;` after it must survive.
#[test]
fn a_trailing_line_comment_does_not_swallow_the_separator() {
    let sql = "SELECT 1 -- x\n; SELECT * FROM hr.employees";
    let sent = run(sql, "public").unwrap().sql.unwrap();
    assert_eq!(
        split_statements(&sent),
        [
            "SELECT 1 -- x",
            "SELECT * FROM immuta.hr_employees AS employees"
        ]
    );
}

/// With standard_conforming_strings on this is one SELECT of one string literal; with it off
/// (and on Redshift) the server would run the set_config after the `;`. Refused whichever way
/// the session's connection reads it, while tables are registered.
#[test]
fn a_text_the_two_readings_split_apart_is_refused() {
    let sql = r"SELECT '\''; SELECT set_config($q$immuta.user$q$, $q$admin$q$, false) --'";
    assert_eq!(split_statements(sql).len(), 1);
    let error = run(sql, "public").unwrap_err();
    assert!(
        error.message.contains("standard_conforming_strings"),
        "{error}"
    );
}

#[test]
fn an_empty_registry_still_guards_identity() {
    let empty = Registry::new("immuta", []);
    let scope = Scope {
        registry: &empty,
        database: "demo",
        search_path: &[],
        backend_role: "redveil_query",
        dialect: crate::dialect::Dialect::Postgres,
        lexing: crate::dialect::Lexing::Standard,
    };
    assert!(rewrite("SELECT set_config('immuta.user', 'x', false)", scope).is_err());
    assert!(rewrite("SET immuta.user = 'x'", scope).is_err());
    assert_eq!(
        rewrite("SELECT * FROM t", scope).unwrap(),
        Rewritten::default()
    );
    // Nothing registered, nothing to hide.
    assert_eq!(
        rewrite("EXPLAIN ANALYZE EXECUTE q", scope).unwrap(),
        Rewritten::default()
    );
}

/// A registry of `hr.employees` alone, read through `view` (or `prepared_view` by PREPARE).
fn employees_in(view_schema: &str, view: QualifiedName, prepared_view: QualifiedName) -> Registry {
    Registry::new(
        view_schema,
        [(
            QualifiedName::new("hr", "employees"),
            Registered {
                data_source: "hr.employees".into(),
                view,
                prepared_view,
                writable: false,
            },
        )],
    )
}

/// `sql` rewritten with `registry`, search path `public`.
fn rewrite_in(registry: &Registry, sql: &str) -> Result<Rewritten, Denial> {
    let path = parse_search_path_list("public", "redveil_query");
    rewrite(
        sql,
        Scope {
            registry,
            database: "demo",
            search_path: &path,
            backend_role: "redveil_query",
            dialect: crate::dialect::Dialect::Postgres,
            lexing: crate::dialect::Lexing::Standard,
        },
    )
}

#[test]
fn sql_level_prepare_reads_the_canonical_view_other_statements_the_class_view() {
    let registry = employees_in(
        "immuta",
        QualifiedName::new("immuta_classes", "hr_employees__c0"),
        QualifiedName::new("immuta", "hr_employees"),
    );
    let sql = |text: &str| rewrite_in(&registry, text).unwrap().sql.unwrap();
    assert_eq!(
        sql("PREPARE p AS SELECT ssn FROM hr.employees; SELECT ssn FROM hr.employees"),
        "PREPARE p AS SELECT ssn FROM immuta.hr_employees AS employees;\n\
         SELECT ssn FROM immuta_classes.hr_employees__c0 AS employees"
    );
    assert_eq!(
        sql("DECLARE c CURSOR FOR SELECT ssn FROM hr.employees"),
        "DECLARE c CURSOR FOR SELECT ssn FROM immuta_classes.hr_employees__c0 AS employees"
    );
}

/// The identity settings live under `immuta.` whatever the view schema is called.
#[test]
fn function_set_clauses_cannot_forge_identity_settings() {
    let view = || QualifiedName::new("policy", "hr_employees");
    let registry = employees_in("policy", view(), view());
    for forged in [
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET immuta.attributes = 'x' AS 'SELECT 1'",
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET \"immuta.user\" TO 'admin' AS 'SELECT 1'",
        "ALTER FUNCTION pg_temp.f() SET immuta.access = ' x:1 '",
        "ALTER FUNCTION pg_temp.f() RESET immuta.user",
        "ALTER FUNCTION pg_temp.f() SET \"IMMUTA.USER\" TO 'admin'",
    ] {
        let denial = rewrite_in(&registry, forged).expect_err(forged);
        assert!(
            denial.message.to_lowercase().contains("immuta"),
            "{forged}: {denial:?}"
        );
    }
    let immutable = "CREATE FUNCTION pg_temp.g() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 1'";
    assert!(rewrite_in(&registry, immutable).is_ok());
}

/// With no table registered there is nothing for most rules to protect: statements a direct
/// connection runs pass unchanged. redveil's own settings, schemas and statement names stay
/// refused (the identity pins and the shared backend statements exist all the same).
#[test]
fn where_nothing_is_registered_only_redveils_own_names_are_refused() {
    let registry = Registry::new("immuta", []);
    let run = |sql: &str| run_with(&registry, sql, "public");
    for sql in [
        "SET ROLE regress_user",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION regress_user",
        "ALTER ROLE regress_user SET work_mem = '1MB'",
        "SET standard_conforming_strings = off",
        "SELECT pid, query FROM pg_stat_activity",
        "SELECT current_setting($1)",
        "SELECT set_config('work_mem', '1MB', false)",
        "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
        "SELECT lo_creat(-1)",
        "SELECT query_to_xml('select 1', true, true, '')",
        "SELECT U&'d\\0061t\\+000061'",
        "SELECT name FROM pg_prepared_statements",
        "CREATE VIEW v AS SELECT current_setting('work_mem')",
        "SELECT this is not sql -- immutable",
    ] {
        assert_eq!(run(sql).map(|r| r.sql), Ok(None), "{sql}");
    }
    for sql in [
        "SET immuta.token = 'forged'",
        "SHOW immuta.token",
        "SELECT set_config('immuta.token', 'x', false)",
        "SELECT current_setting('immuta.token')",
        "SELECT * FROM immuta_system.session_tokens",
        "EXECUTE redveil_0123",
        "SELECT this is not sql FROM immuta_system.session_tokens",
    ] {
        assert!(run(sql).is_err(), "{sql} is refused");
    }
}

#[test]
fn statements_that_need_a_database_without_sessions() {
    for (sql, database) in [
        ("DROP DATABASE testdb", Some("testdb")),
        (
            "drop database if exists \"Test DB\" with (force)",
            Some("Test DB"),
        ),
        ("ALTER DATABASE old RENAME TO new", Some("old")),
        ("CREATE DATABASE copy TEMPLATE = source", Some("source")),
        ("CREATE DATABASE plain", None),
        ("ALTER DATABASE d SET work_mem = '1MB'", None),
        ("SELECT 'drop database x'", None),
    ] {
        assert_eq!(database_to_free(sql).as_deref(), database, "{sql}");
    }
}
