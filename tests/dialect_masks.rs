//! Every mask method, written for Redshift, gives the same values as written for PostgreSQL on
//! the demo data (issue 15 item 6). The Redshift spelling runs on the test cluster the way a
//! Redshift would read it: plain literals take backslash escapes
//! (`standard_conforming_strings = off`), and PostgreSQL versions of the Redshift functions it
//! uses (SHA2, STRTOL, REGEXP_REPLACE replacing every match) come first in the search path:
//! the Redshift-like cluster's (`cluster::redshift_like`), installed by this test on either
//! cluster, never by sync.

mod common;

use redveil::dialect::Dialect;
use redveil::policy::masks::{masked_expression, Column, ColumnKind, Context};
use redveil::policy::model::{MaskMethod, TruncateUnit};

fn column(name: &str, sql_type: &str, kind: ColumnKind) -> Column {
    Column {
        name: name.into(),
        sql_type: sql_type.into(),
        kind,
    }
}

async fn values(client: &tokio_postgres::Client, expr: &str) -> Vec<Option<String>> {
    let sql = format!(
        "SELECT CAST({expr} AS text) FROM hr.employees AS e, (SELECT 'salt-1' AS s) AS k ORDER BY e.id"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn every_mask_gives_the_same_values_in_both_dialects() {
    let cluster = common::cluster();
    let postgres = cluster.connect_superuser("demo").await.unwrap();
    postgres
        .batch_execute(redveil::cluster::REDSHIFT_FUNCTIONS_SQL)
        .await
        .unwrap();
    // As PostgreSQL reads by default, whichever cluster the suite runs against.
    postgres
        .batch_execute("SET standard_conforming_strings = on; SET search_path = public")
        .await
        .unwrap();
    let redshift_like = cluster.connect_superuser("demo").await.unwrap();
    redshift_like
        .batch_execute(
            "SET standard_conforming_strings = off; SET escape_string_warning = off; \
             SET search_path = redshift_compat, pg_catalog",
        )
        .await
        .unwrap();

    let text = |name: &str| column(name, "text", ColumnKind::Text);
    let salary = column("salary", "numeric(12,2)", ColumnKind::Number);
    let id = column("id", "integer", ColumnKind::Number);
    let hired = column("hired", "date", ColumnKind::Date);
    let cases: Vec<(MaskMethod, Column)> = vec![
        (MaskMethod::Null, text("ssn")),
        (MaskMethod::Constant(r"it's \ hidden".into()), text("ssn")),
        (
            MaskMethod::Hash {
                cast_to_text: false,
            },
            text("email"),
        ),
        (MaskMethod::Hash { cast_to_text: true }, salary.clone()),
        (
            MaskMethod::Regex {
                pattern: r"^(.)[^@]*@".into(),
                replacement: r"\1***@".into(),
            },
            text("email"),
        ),
        (
            MaskMethod::Regex {
                pattern: r"\d".into(),
                replacement: "#".into(),
            },
            text("ssn"),
        ),
        (
            MaskMethod::Round {
                step: "10000".into(),
            },
            salary.clone(),
        ),
        (MaskMethod::Round { step: "0.1".into() }, salary.clone()),
        (
            MaskMethod::Round {
                step: "2500".into(),
            },
            salary.clone(),
        ),
        (
            MaskMethod::Round {
                step: "0.25".into(),
            },
            salary.clone(),
        ),
        (MaskMethod::Round { step: "100".into() }, id.clone()),
        (
            MaskMethod::Truncate {
                unit: TruncateUnit::Quarter,
            },
            hired.clone(),
        ),
        (
            MaskMethod::Truncate {
                unit: TruncateUnit::Year,
            },
            hired,
        ),
        (
            MaskMethod::RandomizedResponse {
                epsilon: 1.0,
                domain: vec!["EU".into(), "US".into(), "APAC".into()],
                key: "id".into(),
            },
            text("region"),
        ),
    ];
    for (method, column) in cases {
        let raw = format!("e.{}", column.name);
        let spelled = |dialect| {
            let cx = Context {
                dialect,
                raw: &raw,
                column: &column,
                salt: "k.s",
                key: Some("e.id"),
            };
            masked_expression(&method, &cx).unwrap()
        };
        let (pg, rs) = (spelled(Dialect::Postgres), spelled(Dialect::Redshift));
        let expected = values(&postgres, &pg).await;
        assert!(expected.iter().any(Option::is_some) || matches!(method, MaskMethod::Null));
        assert_eq!(
            values(&redshift_like, &rs).await,
            expected,
            "{method} on {}: {rs}",
            column.name
        );
    }
}
