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

/// ROLLBACK TO SAVEPOINT undoes settings made after the savepoint, the impersonation and its
/// pin included: the session's own identity is pinned again.
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
    assert_eq!(count(&bi, ROWS).await, 0, "bi_service again");
    bi.batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .unwrap();
    bi.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 10_000, "committed");
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

// Savepoints. Each scenario runs three ways (statement by statement over the simple and over
// the extended protocol, and as multi-statement strings), through the proxy as admin and on a
// direct connection doing the same with `set_config('my.x', ..., false)`: impersonation must
// follow PostgreSQL's rules for that setting exactly.

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Run by both sides as is.
    Sql(&'static str),
    /// Fails on both sides with this SQLSTATE.
    Fails(&'static str, &'static str),
    /// Impersonate (`None` ends it); directly, set my.x.
    As(Option<&'static str>),
    /// Records whom the session acts as (SHOW immuta_user, and checks the rows admin then
    /// reads); directly, my.x.
    Check,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Simple,
    Extended,
    /// One simple query per segment of the scenario.
    Strings,
}

use Step::{As, Check, Fails, Sql};

/// Runs `segments` in every mode, through the proxy and directly; both must record `expected`.
async fn savepoint_scenario(segments: &[&[Step]], expected: &[&str]) {
    let p = start("").await;
    let eu = eu_rows().await;
    for mode in [Mode::Simple, Mode::Extended, Mode::Strings] {
        let direct = common::cluster().connect_superuser("demo").await.unwrap();
        let seen = observe(&direct, None, mode, segments).await;
        assert_eq!(seen, expected, "PostgreSQL itself, {mode:?}");
        let admin = p.connect("admin").await.unwrap();
        let seen = observe(&admin, Some(eu), mode, segments).await;
        assert_eq!(seen, expected, "through the proxy, {mode:?}");
    }
}

/// The value at each Check; `proxied` holds the EU row count when `client` is the proxy's.
async fn observe(
    client: &Client,
    proxied: Option<i64>,
    mode: Mode,
    segments: &[&[Step]],
) -> Vec<String> {
    let mut seen = Vec::new();
    if mode == Mode::Extended {
        for step in segments.iter().flat_map(|s| s.iter()) {
            extended_step(client, proxied, *step, &mut seen).await;
        }
        return seen;
    }
    let rounds: Vec<Vec<Step>> = match mode {
        Mode::Strings => segments.iter().map(|s| s.to_vec()).collect(),
        _ => segments
            .iter()
            .flat_map(|s| s.iter().map(|step| vec![*step]))
            .collect(),
    };
    for round in rounds {
        let text: Vec<String> = round.iter().map(|s| step_text(*s, proxied)).collect();
        let result = client.simple_query(&text.join("; ")).await;
        if let Some(Fails(_, code)) = round.last() {
            assert!(!round.iter().any(|s| matches!(s, Check)), "{round:?}");
            assert_eq!(sqlstate(&result.unwrap_err()), *code, "{round:?}");
            continue;
        }
        let rows: Vec<Vec<String>> = result
            .unwrap_or_else(|e| panic!("{round:?}: {e}"))
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            match (row.as_slice(), proxied) {
                // SHOW immuta_user, then the row count.
                ([user, _login], Some(eu)) => {
                    let n: i64 = rows.next().expect("a count after SHOW")[0].parse().unwrap();
                    assert_eq!(n, rows_of(user, eu), "rows as {user:?} in {round:?}");
                    seen.push(user.clone());
                }
                ([check, value], None) if check == "check" => seen.push(value.clone()),
                _ => {}
            }
        }
    }
    seen
}

fn step_text(step: Step, proxied: Option<i64>) -> String {
    match (step, proxied.is_some()) {
        (Sql(sql) | Fails(sql, _), _) => sql.to_string(),
        (As(Some(user)), true) => format!("CALL immuta_procedures.impersonate_user('{user}')"),
        (As(None), true) => "CALL immuta_procedures.impersonate_user(NULL)".to_string(),
        (As(user), false) => format!("SELECT set_config('my.x', '{}', false)", user.unwrap_or("")),
        (Check, true) => format!("SHOW immuta_user; {ROWS}"),
        (Check, false) => "SELECT 'check', coalesce(current_setting('my.x', true), '')".into(),
    }
}

async fn extended_step(client: &Client, proxied: Option<i64>, step: Step, seen: &mut Vec<String>) {
    match (step, proxied) {
        (Sql(sql), _) => {
            client
                .execute(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        (Fails(sql, code), _) => {
            let error = client.execute(sql, &[]).await.unwrap_err();
            assert_eq!(sqlstate(&error), code, "{sql}");
        }
        (As(user), Some(_)) => {
            client
                .execute("CALL immuta_procedures.impersonate_user($1)", &[&user])
                .await
                .unwrap();
        }
        (As(user), None) => {
            client
                .execute(
                    "SELECT set_config('my.x', $1, false)",
                    &[&user.unwrap_or("")],
                )
                .await
                .unwrap();
        }
        (Check, Some(eu)) => {
            let user: String = client
                .query_one("SHOW immuta_user", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(count(client, ROWS).await, rows_of(&user, eu), "as {user:?}");
            seen.push(user);
        }
        (Check, None) => {
            let row = client
                .query_one("SELECT coalesce(current_setting('my.x', true), '')", &[])
                .await
                .unwrap();
            seen.push(row.get(0));
        }
    }
}

/// What admin, impersonating `user` ("" for nobody), reads of hr.employees.
fn rows_of(user: &str, eu: i64) -> i64 {
    match user {
        "" | "admin" => 10_000,
        "analyst" => eu,
        "bi_service" => 0,
        other => panic!("unexpected user {other}"),
    }
}

const ANALYST: Option<&str> = Some("analyst");
const BI: Option<&str> = Some("bi_service");

/// The red team's case: an impersonation made after a savepoint is undone by ROLLBACK TO,
/// which keeps the savepoint for another rollback.
#[tokio::test]
async fn rollback_to_savepoint_undoes_an_impersonation_made_after_it() {
    savepoint_scenario(
        &[&[
            Sql("BEGIN"),
            Sql("SAVEPOINT a"),
            As(ANALYST),
            Check,
            Sql("ROLLBACK TO SAVEPOINT a"),
            Check,
            As(BI),
            Check,
            Sql("ROLLBACK TO a"),
            Check,
            As(ANALYST),
            Sql("COMMIT"),
            Check,
        ]],
        &["analyst", "", "bi_service", "", "analyst"],
    )
    .await;
}

/// RELEASE keeps the changes for the enclosing level (a whole rollback still undoes them) and
/// destroys the savepoints after the released one; ROLLBACK TO an outer savepoint destroys
/// the inner ones.
#[tokio::test]
async fn release_and_nested_savepoints() {
    savepoint_scenario(
        &[
            &[
                Sql("BEGIN"),
                Sql("SAVEPOINT a"),
                As(ANALYST),
                Sql("SAVEPOINT b"),
                As(BI),
                Sql("RELEASE SAVEPOINT b"),
                Check,
                Sql("ROLLBACK TO a"),
                Check,
                As(ANALYST),
                Sql("SAVEPOINT c"),
                As(BI),
                Sql("RELEASE a"),
                Check,
            ],
            &[Fails("ROLLBACK TO c", "3B001")],
            &[Sql("ROLLBACK"), Check],
            &[
                Sql("BEGIN"),
                As(ANALYST),
                Sql("SAVEPOINT a"),
                As(BI),
                Sql("SAVEPOINT b"),
                As(None),
                Check,
                Sql("ROLLBACK TO b"),
                Check,
                Sql("ROLLBACK TRANSACTION TO SAVEPOINT a"),
                Check,
            ],
            &[Fails("RELEASE b", "3B001")],
            // The failed RELEASE failed the transaction; the rollback to a recovers it.
            &[Sql("ROLLBACK TO a"), Check, Sql("COMMIT"), Check],
        ],
        &[
            "bi_service",
            "",
            "bi_service",
            "",
            "",
            "bi_service",
            "analyst",
            "analyst",
            "analyst",
        ],
    )
    .await;
}

/// Names fold unless quoted; ROLLBACK TO and RELEASE take the most recent savepoint of a name.
#[tokio::test]
async fn savepoint_names_are_identifiers_and_the_most_recent_wins() {
    savepoint_scenario(
        &[&[
            Sql("BEGIN"),
            Sql("SAVEPOINT Sp"),
            As(ANALYST),
            Sql("SAVEPOINT \"Sp\""),
            As(BI),
            Sql("SAVEPOINT sp"),
            As(None),
            Sql("ROLLBACK WORK TO SP"),
            Check,
            Sql("RELEASE sp"),
            Sql("ROLLBACK TO SAVEPOINT \"Sp\""),
            Check,
            Sql("RELEASE SAVEPOINT \"Sp\""),
            Sql("ROLLBACK TO sp"),
            Check,
            As(BI),
            Sql("END"),
            Check,
        ]],
        &["bi_service", "analyst", "", "bi_service"],
    )
    .await;
}

/// After an error, ROLLBACK TO a savepoint made before it recovers the transaction, whose
/// COMMIT then keeps what the rollback left.
#[tokio::test]
async fn rollback_to_savepoint_recovers_a_failed_transaction() {
    savepoint_scenario(
        &[
            &[
                Sql("BEGIN"),
                As(ANALYST),
                Sql("SAVEPOINT a"),
                As(BI),
                Fails("SELECT 1/0", "22012"),
            ],
            &[Fails("ROLLBACK TO nowhere", "3B001")],
            &[Sql("ROLLBACK TO SAVEPOINT a"), Check, Sql("COMMIT"), Check],
        ],
        &["analyst", "analyst"],
    )
    .await;
}

/// COMMIT AND CHAIN keeps the change at once and ROLLBACK AND CHAIN undoes the new
/// transaction's, though neither leaves the transaction block; a whole ROLLBACK undoes
/// everything since BEGIN, released savepoints included; a COMMIT without BEGIN ends a
/// string's implicit transaction.
#[tokio::test]
async fn chained_and_whole_transaction_ends() {
    savepoint_scenario(
        &[
            &[
                Sql("BEGIN"),
                As(ANALYST),
                Sql("COMMIT AND CHAIN"),
                As(BI),
                Check,
                Sql("ROLLBACK AND CHAIN"),
                Check,
                As(None),
                Sql("SAVEPOINT a"),
                As(BI),
                Sql("RELEASE a"),
                Sql("ROLLBACK"),
                Check,
            ],
            &[As(BI), Sql("COMMIT"), Fails("SELECT 1/0", "22012")],
            &[Check],
        ],
        &["bi_service", "analyst", "analyst", "bi_service"],
    )
    .await;
}

/// SET follows savepoints as impersonation does: what ROLLBACK TO undoes is never recorded as
/// the session's (the rewriter resolves names by the recorded search_path), and a rollback to
/// a savepoint does not drop what the transaction keeps.
#[tokio::test]
async fn session_settings_follow_savepoints() {
    let p = start("").await;
    let admin = p.connect("admin").await.unwrap();
    for statement in [
        "BEGIN",
        "SAVEPOINT a",
        "SET search_path = hr",
        "ROLLBACK TO a",
        "COMMIT",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    let unknown = admin
        .simple_query("SELECT count(*) FROM employees")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&unknown), "42P01", "search_path was rolled back");
    for statement in [
        "BEGIN",
        "SAVEPOINT a",
        "SET search_path = hr",
        "ROLLBACK TO a",
    ] {
        admin.execute(statement, &[]).await.unwrap();
    }
    admin.execute("COMMIT", &[]).await.unwrap();
    let unknown = admin
        .query_one("SELECT count(*) FROM employees", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&unknown), "42P01", "extended protocol");
    admin
        .batch_execute("BEGIN; SET search_path = hr; SAVEPOINT a; ROLLBACK TO a; COMMIT")
        .await
        .unwrap();
    let rows = admin
        .simple_query("SELECT count(*) FROM employees")
        .await
        .unwrap();
    assert_eq!(first_value(rows).as_deref(), Some("10000"), "kept");
}

/// Savepoint commands and impersonations pipelined together: the proxy answers the
/// impersonations before the backend has replied to the statements ahead of them, yet each
/// change takes effect in its place among them.
#[tokio::test]
async fn savepoints_and_impersonations_pipelined_together() {
    use common::raw::{self, RawConn};
    let p = start("").await;
    let eu = eu_rows().await;
    let mut admin = RawConn::proxy(&p, "admin", &[]).await;
    let mut batch = bytes::BytesMut::new();
    raw::parse(
        &mut batch,
        "call",
        "CALL immuta_procedures.impersonate_user($1)",
    );
    for step in [
        Sql("BEGIN"),
        As(ANALYST),
        Sql("SAVEPOINT a"),
        As(BI),
        Sql("ROLLBACK TO a"),
        Sql("COMMIT"),
    ] {
        match step {
            As(user) => raw::bind(&mut batch, "", "call", &[user.map(str::as_bytes)], &[]),
            Sql(sql) => {
                raw::parse(&mut batch, "", sql);
                raw::bind(&mut batch, "", "", &[], &[]);
            }
            _ => unreachable!(),
        }
        raw::execute(&mut batch, "", 0);
    }
    raw::sync(&mut batch);
    admin.send(&batch).await;
    let replies = admin.until_ready().await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");
    let first_column = |messages: Vec<raw::Msg>| {
        let row = messages.into_iter().find(|m| m.tag == b'D').expect("a row");
        let body = row.body();
        let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
        String::from_utf8_lossy(&body[6..6 + len]).into_owned()
    };
    assert_eq!(
        first_column(admin.simple("SHOW immuta_user").await),
        "analyst"
    );
    assert_eq!(first_column(admin.simple(ROWS).await), eu.to_string());

    let bi = p.connect("bi_service").await.unwrap();
    let call = |user: &str| format!("CALL immuta_procedures.impersonate_user('{user}')");
    let (analyst, admin) = (call("analyst"), call("admin"));
    let replies = tokio::join!(
        bi.simple_query("BEGIN"),
        bi.simple_query(&analyst),
        bi.simple_query("SAVEPOINT a"),
        bi.simple_query(&admin),
        bi.simple_query("ROLLBACK TO a"),
        bi.simple_query("COMMIT"),
    );
    assert!(replies.0.is_ok() && replies.1.is_ok() && replies.2.is_ok());
    assert!(replies.3.is_ok() && replies.4.is_ok() && replies.5.is_ok());
    assert_eq!(
        show(&bi, "SHOW immuta_user").await,
        ("analyst".into(), "bi_service".into())
    );
    assert_eq!(count(&bi, ROWS).await, eu);
}

/// A statement ending in a line comment before an impersonation in the same string: the
/// proxy rejoins the string around its pin without the comment swallowing the separator.
#[tokio::test]
async fn an_impersonation_after_a_line_comment_in_one_string() {
    let p = start("").await;
    let eu = eu_rows().await;
    let admin = p.connect("admin").await.unwrap();
    let replies = admin
        .simple_query(
            "SELECT 1 -- a note\n; CALL immuta_procedures.impersonate_user('analyst'); \
             SELECT count(*) FROM hr.employees",
        )
        .await
        .expect("the string runs");
    let counts: Vec<String> = replies
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(counts, ["1".to_string(), eu.to_string()]);
}
