//! Impersonation through the proxy: every dialect, both protocols, the permission rules, and
//! isolation from other clients sharing the pool.

mod common;

use common::demo_views::{count, eu_rows, sqlstate, start};
use tokio_postgres::{Client, SimpleQueryMessage};

const ROWS: &str = "SELECT count(*) FROM hr.employees";

/// The one-row answer of the SHOW forms: (impersonated user, login user).
async fn show(client: &Client, sql: &str) -> (String, String) {
    let rows: Vec<_> = client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((r.get(0).unwrap().to_string(), r.get(1).unwrap().to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1, "{sql}");
    rows.into_iter().next().unwrap()
}

/// The first column of the first row of a simple query's answer.
fn first_value(messages: Vec<SimpleQueryMessage>) -> Option<String> {
    messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

#[tokio::test]
async fn admin_sees_what_analyst_sees_then_returns() {
    let p = start("").await;
    let eu = eu_rows().await;
    let admin = p.connect("admin").await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    assert_eq!(count(&admin, ROWS).await, eu);
    let ssn: Option<String> = admin
        .query_one("SELECT ssn FROM hr.employees ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ssn, None, "masked as for analyst");
    assert_eq!(
        show(&admin, "SHOW immuta_user").await,
        ("analyst".into(), "admin".into())
    );
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user(NULL)")
        .await
        .unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);
    assert_eq!(
        show(&admin, "SHOW SESSION LIKE 'immuta.immuta_user'").await,
        ("".into(), "admin".into())
    );
}

#[tokio::test]
async fn permissions_decide_who_may_impersonate() {
    let p = start("").await;
    let eu = eu_rows().await;
    let bi = p.connect("bi_service").await.unwrap();
    assert_eq!(
        count(&bi, ROWS).await,
        0,
        "bi_service has no access of its own"
    );
    bi.batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    assert_eq!(count(&bi, ROWS).await, 10_000);

    let analyst = p.connect("analyst").await.unwrap();
    let refused = analyst
        .batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&refused), "42501");
    assert_eq!(count(&analyst, ROWS).await, eu);

    let admin = p.connect("admin").await.unwrap();
    let unknown = admin
        .batch_execute("CALL immuta_procedures.impersonate_user('nobody')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&unknown), "42704");
    assert_eq!(count(&admin, ROWS).await, 10_000);
}

#[tokio::test]
async fn every_dialect_starts_and_ends_it() {
    let p = start("").await;
    let eu = eu_rows().await;
    let admin = p.connect("admin").await.unwrap();
    for (begin, end) in [
        ("SET immuta_user = 'analyst'", "RESET immuta_user"),
        (
            "SET immuta.impersonate.user = analyst",
            "SET immuta.impersonate.user =",
        ),
        (
            "call \"IMMUTA_PROCEDURES\".Impersonate_User('analyst'::text)",
            "RESET SESSION immuta.immuta_user",
        ),
    ] {
        admin.batch_execute(begin).await.unwrap();
        assert_eq!(count(&admin, ROWS).await, eu, "{begin}");
        admin.batch_execute(end).await.unwrap();
        assert_eq!(count(&admin, ROWS).await, 10_000, "{end}");
    }
}

#[tokio::test]
async fn extended_protocol_with_a_bound_name() {
    let p = start("").await;
    let eu = eu_rows().await;
    let admin = p.connect("admin").await.unwrap();
    let call = admin
        .prepare("CALL immuta_procedures.impersonate_user($1)")
        .await
        .unwrap();
    admin.execute(&call, &[&"analyst"]).await.unwrap();
    assert_eq!(count(&admin, ROWS).await, eu);
    admin.execute(&call, &[&None::<&str>]).await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);
    let analyst = p.connect("analyst").await.unwrap();
    let call = analyst
        .prepare("CALL immuta_procedures.impersonate_user($1)")
        .await
        .unwrap();
    let refused = analyst.execute(&call, &[&"admin"]).await.unwrap_err();
    assert_eq!(sqlstate(&refused), "42501");
    assert_eq!(count(&analyst, ROWS).await, eu);
}

/// A SQL-level prepared statement made before an impersonation runs under the identity of
/// each EXECUTE, through both protocols (psql sends it as a simple query, drivers may Parse it).
#[tokio::test]
async fn sql_prepared_statements_follow_the_identity_of_each_execute() {
    let p = start("").await;
    let eu = eu_rows().await;
    let bi = p.connect("bi_service").await.unwrap();
    bi.batch_execute("PREPARE simple_rows AS SELECT count(*), count(ssn) FROM hr.employees")
        .await
        .unwrap();
    bi.execute(
        "PREPARE extended_rows AS SELECT count(*), count(ssn) FROM hr.employees",
        &[],
    )
    .await
    .unwrap();
    let seen = |sql: &'static str| {
        let bi = &bi;
        async move {
            let row = bi.query_one(sql, &[]).await.unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };
    for execute in ["EXECUTE simple_rows", "EXECUTE extended_rows"] {
        assert_eq!(seen(execute).await, (0, 0), "bi_service itself: {execute}");
    }
    bi.batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    for execute in ["EXECUTE simple_rows", "EXECUTE extended_rows"] {
        assert_eq!(seen(execute).await, (10_000, 10_000), "as admin: {execute}");
    }
    bi.batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    for execute in ["EXECUTE simple_rows", "EXECUTE extended_rows"] {
        assert_eq!(seen(execute).await, (eu, 0), "as analyst: {execute}");
    }
}

#[tokio::test]
async fn inside_a_multi_statement_string_and_a_transaction() {
    let p = start("").await;
    let eu = eu_rows().await;
    let admin = p.connect("admin").await.unwrap();
    let messages = admin
        .simple_query(&format!(
            "{ROWS}; CALL immuta_procedures.impersonate_user('analyst'); {ROWS}"
        ))
        .await
        .unwrap();
    let counts: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [10_000, eu]);
    assert_eq!(
        count(&admin, ROWS).await,
        eu,
        "kept after the string commits"
    );
    admin.batch_execute("RESET immuta_user").await.unwrap();

    // A rolled back transaction takes its impersonation with it.
    admin.batch_execute("BEGIN").await.unwrap();
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    assert_eq!(count(&admin, ROWS).await, eu, "effective at once");
    admin.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);
}

#[tokio::test]
async fn single_user_per_session_and_allowed_impersonators() {
    let p = start(
        "[impersonation]\nsingle_user_per_session = true\nallowed_impersonators = [\"admin\"]\n",
    )
    .await;
    let admin = p.connect("admin").await.unwrap();
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    for switch in [
        "CALL immuta_procedures.impersonate_user('bi_service')",
        "CALL immuta_procedures.impersonate_user(NULL)",
    ] {
        let refused = admin.batch_execute(switch).await.unwrap_err();
        assert_eq!(sqlstate(&refused), "42501", "{switch}");
    }
    let bi = p.connect("bi_service").await.unwrap();
    let refused = bi
        .batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&refused), "42501", "not in allowed_impersonators");
}

/// A pin sent behind a pipelined BEGIN belongs to that transaction; when it rolls back the
/// backend's settings are the old identity's again, and the next client on that backend
/// must be pinned afresh, not trusted to the record of the rolled-back pin.
#[tokio::test]
async fn a_pin_rolled_back_behind_a_pipelined_begin_is_sent_again() {
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let bi = p.connect("bi_service").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 0);
    // One write: tokio-postgres pipelines requests issued together.
    let (begin, call, failed, commit) = tokio::join!(
        bi.simple_query("BEGIN"),
        bi.simple_query("CALL immuta_procedures.impersonate_user('admin')"),
        bi.simple_query("SELECT count(*) FROM hr.employees WHERE 1/0 = 1"),
        bi.simple_query("COMMIT"),
    );
    assert!(begin.is_ok() && call.is_ok() && commit.is_ok());
    assert_eq!(sqlstate(&failed.unwrap_err()), "22012");
    drop(bi);
    let admin = p.connect("admin").await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);
    admin
        .batch_execute("PREPARE all_ssn AS SELECT count(ssn) FROM hr.employees")
        .await
        .unwrap();
    assert_eq!(count(&admin, "EXECUTE all_ssn").await, 10_000);
    let analyst = p.connect("analyst").await.unwrap();
    assert_eq!(count(&analyst, ROWS).await, eu);
}

/// An impersonation pipelined behind a BEGIN belongs to that transaction, though the proxy
/// answers it before the BEGIN's reply has arrived: rolled back with it.
#[tokio::test]
async fn an_impersonation_pipelined_behind_begin_rolls_back_with_it() {
    let p = start("").await;
    let bi = p.connect("bi_service").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 0);
    let (begin, call, inside, rollback) = tokio::join!(
        bi.simple_query("BEGIN"),
        bi.simple_query("CALL immuta_procedures.impersonate_user('admin')"),
        bi.simple_query(ROWS),
        bi.simple_query("ROLLBACK"),
    );
    assert!(begin.is_ok() && call.is_ok() && rollback.is_ok());
    let inside = first_value(inside.unwrap());
    assert_eq!(
        inside.as_deref(),
        Some("10000"),
        "admin inside the transaction"
    );
    assert_eq!(
        count(&bi, ROWS).await,
        0,
        "bi_service again after the rollback"
    );
    assert_eq!(
        show(&bi, "SHOW immuta_user").await,
        ("".into(), "bi_service".into())
    );
}

/// After an error the rest of an extended-protocol batch up to Sync is skipped, an
/// impersonation in it included, though the proxy answers that one itself.
#[tokio::test]
async fn an_impersonation_skipped_after_an_error_never_happens() {
    use common::raw::{self, RawConn};
    let p = start("").await;
    let mut bi = RawConn::proxy(&p, "bi_service", &[]).await;
    let mut batch = bytes::BytesMut::new();
    for sql in [
        "SELECT 1/0",
        "CALL immuta_procedures.impersonate_user('admin')",
    ] {
        raw::parse(&mut batch, "", sql);
        raw::bind(&mut batch, "", "", &[], &[]);
        raw::execute(&mut batch, "", 0);
    }
    raw::sync(&mut batch);
    bi.send(&batch).await;
    let replies = bi.until_ready().await;
    assert_eq!(raw::error_codes(&replies), ["22012"]);
    let rows = bi.simple(ROWS).await;
    let count = rows
        .iter()
        .find(|m| m.tag == b'D')
        .map(|m| String::from_utf8_lossy(&m.body()[6..]).into_owned());
    assert_eq!(count.as_deref(), Some("0"), "still bi_service: {rows:?}");
}

/// Changes settle in the order they were made, whether the proxy answered the statement
/// alone or inside a string, however the replies ahead of them are delayed.
#[tokio::test]
async fn pipelined_changes_settle_in_order() {
    let p = start("").await;
    let bi = p.connect("bi_service").await.unwrap();
    let (slow, first, second) = tokio::join!(
        bi.simple_query("SELECT pg_sleep(0.2)"),
        bi.simple_query("CALL immuta_procedures.impersonate_user('analyst')"),
        bi.simple_query(
            "CALL immuta_procedures.impersonate_user('admin'); SELECT count(*) FROM hr.employees"
        ),
    );
    assert!(slow.is_ok() && first.is_ok());
    let in_string = first_value(second.unwrap());
    assert_eq!(
        in_string.as_deref(),
        Some("10000"),
        "admin within the string"
    );
    assert_eq!(count(&bi, ROWS).await, 10_000, "and admin after it");
    assert_eq!(
        show(&bi, "SHOW immuta_user").await,
        ("admin".into(), "bi_service".into())
    );
}

/// ROLLBACK TO SAVEPOINT undoes settings made after the savepoint, the pin included.
#[tokio::test]
async fn a_pin_undone_by_rollback_to_savepoint_is_sent_again() {
    let p = start("").await;
    let bi = p.connect("bi_service").await.unwrap();
    bi.batch_execute("BEGIN; SAVEPOINT s").await.unwrap();
    bi.batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    assert_eq!(count(&bi, ROWS).await, 10_000);
    bi.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 10_000, "still admin, pinned again");
    bi.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn impersonation_never_leaks_through_the_pool() {
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let bi = p.connect("bi_service").await.unwrap();
    let analyst = p.connect("analyst").await.unwrap();
    bi.batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    for i in 0..1000 {
        if i % 2 == 0 {
            assert_eq!(count(&bi, ROWS).await, 10_000, "iteration {i}");
        } else {
            assert_eq!(count(&analyst, ROWS).await, eu, "iteration {i}");
        }
    }
    // Leaving mid-transaction while impersonating: the next client runs as itself.
    bi.batch_execute("BEGIN").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 10_000);
    drop(bi);
    assert_eq!(count(&analyst, ROWS).await, eu);
    // A new connection never starts impersonating.
    let bi = p.connect("bi_service").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 0);
}

#[tokio::test]
async fn connect_time_impersonation_follows_the_same_rules() {
    let p = start("").await;
    let eu = eu_rows().await;
    let as_analyst = format!(
        "{} options='-c immuta.immuta_user=analyst'",
        p.conn_string("admin")
    );
    let admin = p.connect_with(&as_analyst).await.unwrap();
    assert_eq!(count(&admin, ROWS).await, eu);
    assert_eq!(
        show(&admin, "SHOW immuta_user").await,
        ("analyst".into(), "admin".into())
    );
    let as_admin = format!(
        "{} options='-c immuta.immuta_user=admin'",
        p.conn_string("analyst")
    );
    let err = p.connect_with(&as_admin).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let unknown = format!(
        "{} options='-c immuta.immuta_user=nobody'",
        p.conn_string("admin")
    );
    let err = p.connect_with(&unknown).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42704");
}

#[tokio::test]
async fn every_start_end_and_refusal_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let p = start(&format!("[audit]\npath = \"{}\"\n", path.display())).await;
    let admin = p.connect("admin").await.unwrap();
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user(NULL)")
        .await
        .unwrap();
    let analyst = p.connect("analyst").await.unwrap();
    analyst
        .batch_execute("SET immuta_user = 'admin'")
        .await
        .unwrap_err();
    let mut records = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        records = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        if records.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let summary: Vec<(String, String, String, String)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["type"], "impersonation");
            assert!(r["time"].as_u64().unwrap() > 1_700_000_000_000);
            assert!(r["clientAddress"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"));
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("event"), s("loginUser"), s("targetUser"), s("outcome"))
        })
        .collect();
    let expect = |e: &str, l: &str, t: &str, o: &str| {
        (e.to_string(), l.to_string(), t.to_string(), o.to_string())
    };
    assert_eq!(
        summary,
        [
            expect("impersonation_start", "admin", "analyst", "allowed"),
            expect("impersonation_end", "admin", "analyst", "allowed"),
            expect("impersonation_start", "analyst", "admin", "refused"),
        ]
    );
    assert_eq!(records[2]["sqlstate"], "42501");
}
