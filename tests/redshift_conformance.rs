//! Every construct of the SQL redveil writes for Redshift is one AWS documents (issue 15 item
//! 6): the statements, functions, types and settings in it are checked against
//! `src/dialect/redshift.toml`, where each has the page of the Redshift Database Developer
//! Guide it comes from, and against the constructs Redshift lacks. A construct the file does
//! not know fails the test. No cluster: the SQL is what the dialect room, the masks and the
//! session replay write in Redshift mode.

mod common;

use common::conformance::{problems_in, unknown_constructs, Known};
use redveil::dialect::Dialect;
use redveil::policy::masks::{masked_expression, Column, ColumnKind, Context};
use redveil::policy::model::{MaskMethod, TruncateUnit};

/// The SQL redveil writes in Redshift mode for masks and sessions.
fn redshift_texts() -> Vec<String> {
    let dialect = Dialect::Redshift;
    let column = |name: &str, sql_type: &str, kind| Column {
        name: name.into(),
        sql_type: sql_type.into(),
        kind,
    };
    let text = || column("email", "character varying(256)", ColumnKind::Text);
    let salary = column("salary", "numeric(12,2)", ColumnKind::Number);
    let cases = [
        (MaskMethod::Null, text()),
        (MaskMethod::Constant(r"hidden \ 'x'".into()), text()),
        (
            MaskMethod::Hash {
                cast_to_text: false,
            },
            text(),
        ),
        (MaskMethod::Hash { cast_to_text: true }, salary.clone()),
        (
            MaskMethod::Regex {
                pattern: r"^(.)[^@]*@".into(),
                replacement: r"\1***@".into(),
            },
            text(),
        ),
        (
            MaskMethod::Round {
                step: "1000".into(),
            },
            salary.clone(),
        ),
        (
            MaskMethod::Round {
                step: "0.25".into(),
            },
            salary.clone(),
        ),
        (
            MaskMethod::Truncate {
                unit: TruncateUnit::Quarter,
            },
            column("hired", "date", ColumnKind::Date),
        ),
        (
            MaskMethod::RandomizedResponse {
                epsilon: 1.0,
                domain: vec!["EU".into(), "US".into()],
                key: "id".into(),
            },
            text(),
        ),
    ];
    let mut out: Vec<String> = cases
        .iter()
        .map(|(method, column)| {
            let cx = Context {
                dialect,
                raw: "t.c",
                column,
                salt: "a.salt",
                key: Some("t.id"),
            };
            format!("SELECT {}", masked_expression(method, &cx).expect("a mask"))
        })
        .collect();
    // The reset around a client's own settings (those are its SQL, not redveil's).
    let state = redveil::session::SessionState::default();
    let replay = redveil::backend::replay_sql(&state, false, false, dialect).expect("a replay");
    out.extend([
        replay.joined(),
        dialect
            .session_setup()
            .expect("Redshift sets its session up")
            .to_string(),
        dialect.set_bound_settings(&["immuta.token", "immuta.staged_1"]),
        dialect.copy_setting("immuta.token", "immuta.staged_1"),
        "SELECT version()".to_string(),
    ]);
    out
}

#[test]
fn everything_written_for_redshift_is_documented_by_aws() {
    let problems = problems_in(&redshift_texts());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_finds_what_redshift_lacks() {
    let known = Known::load();
    // PostgreSQL's spellings of the same things.
    let postgres = Dialect::Postgres;
    let select = |expr: String| format!("SELECT {expr}");
    for (sql, finding) in [
        (select(postgres.sha256_hex("x")), "encode"),
        (select(postgres.first_32_bits("h")), "bit"),
        (select(postgres.exact_number("x", 2)), "numeric"),
        (
            postgres.clean_sql().unwrap_or_default().to_string(),
            "unlisten",
        ),
        (
            "CREATE VIEW v WITH (security_barrier) AS SELECT 1".into(),
            "security_barrier",
        ),
        ("SELECT my_udf(1)".into(), "my_udf"),
        (
            "SET standard_conforming_strings = on".into(),
            "standard_conforming_strings",
        ),
    ] {
        let problems = unknown_constructs(&sql, &known);
        assert!(
            problems.iter().any(|p| p.contains(finding)),
            "{sql}: {problems:?}"
        );
    }
}
