//! The query path end to end: registered tables reach clients only through their view, the
//! view sees the client's identity pinned by the proxy, and attempts to read or forge that
//! identity are refused with 42501 while the session stays usable.

mod common;

use common::demo_views::{count, eu_rows, sqlstate, start};

#[tokio::test]
async fn each_user_sees_their_view_of_the_table() {
    let p = start("").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    let admin = p.connect("admin").await.unwrap();
    let bi = p.connect("bi_service").await.unwrap();
    let total = "SELECT count(*) FROM hr.employees";
    assert_eq!(count(&analyst, total).await, eu);
    assert_eq!(count(&admin, total).await, 10_000);
    assert_eq!(count(&bi, total).await, 0);

    // Qualified columns, joins with itself, unqualified names through search_path,
    // parameters in the extended protocol.
    let ssn = "SELECT hr.employees.ssn FROM hr.employees WHERE hr.employees.id = $1";
    let row = admin.query_one(ssn, &[&1i32]).await.unwrap();
    assert!(row.get::<_, Option<String>>(0).is_some());
    let eu_id: i32 = analyst
        .query_one("SELECT min(id) FROM hr.employees", &[])
        .await
        .unwrap()
        .get(0);
    let row = analyst.query_one(ssn, &[&eu_id]).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    let pairs = "SELECT count(*) FROM hr.employees a JOIN hr.employees b ON a.id = b.id";
    assert_eq!(count(&analyst, pairs).await, eu);
    analyst.batch_execute("SET search_path = hr").await.unwrap();
    assert_eq!(count(&analyst, "SELECT count(*) FROM employees").await, eu);
    let regions: Vec<String> = analyst
        .query(
            "SELECT DISTINCT region FROM employees WHERE dept = ANY($1) ORDER BY 1",
            &[&vec!["hr", "eng", "sales", "ops"]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(regions, ["EU"]);
}

#[tokio::test]
async fn identities_never_cross_on_one_pooled_connection() {
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    let admin = p.connect("admin").await.unwrap();
    let statement = analyst
        .prepare("SELECT count(*) FROM hr.employees")
        .await
        .unwrap();
    for i in 0..1000 {
        if i % 2 == 0 {
            let n: i64 = analyst.query_one(&statement, &[]).await.unwrap().get(0);
            assert_eq!(n, eu, "iteration {i}");
        } else {
            let n = count(&admin, "SELECT count(*) FROM hr.employees").await;
            assert_eq!(n, 10_000, "iteration {i}");
        }
    }
}

/// 1 000 alternations, each a new connection (session mode holds the one backend connection
/// per client): every reuse of the connection must carry the new client's identity.
#[tokio::test]
async fn session_mode_pins_each_client_in_turn() {
    let p = start("[pool]\nmode = \"session\"\nsize = 1\n").await;
    let eu = eu_rows().await;
    for i in 0..1000 {
        let (user, expected) = if i % 2 == 0 {
            ("analyst", eu)
        } else {
            ("admin", 10_000)
        };
        let client = p.connect(user).await.unwrap();
        assert_eq!(
            count(&client, "SELECT count(*) FROM hr.employees").await,
            expected,
            "{user} in round {i}"
        );
    }
}

#[tokio::test]
async fn the_identity_setting_cannot_be_forged_or_read() {
    let p = start("").await;
    let analyst = p.connect("analyst").await.unwrap();
    for attempt in [
        "SET immuta.user = 'admin'",
        "SET SESSION \"IMMUTA\" . user TO admin",
        "SELECT set_config('immuta.user', 'admin', false)",
        "SELECT set_config('immu' || 'ta.user', 'admin', false)",
        "SELECT current_setting('immuta.user')",
        "SHOW immuta.user",
        "SET ROLE postgres",
        "SELECT 1; SET immuta.user = 'admin'",
    ] {
        let simple = analyst.simple_query(attempt).await.unwrap_err();
        assert_eq!(sqlstate(&simple), "42501", "{attempt}");
        if !attempt.contains(';') {
            let extended = analyst.prepare(attempt).await.unwrap_err();
            assert_eq!(sqlstate(&extended), "42501", "{attempt} (extended)");
        }
    }
    // The refusals did not change who the analyst is.
    assert_eq!(
        count(&analyst, "SELECT count(*) FROM hr.employees").await,
        eu_rows().await
    );
}

#[tokio::test]
async fn a_refusal_fails_the_transaction_like_postgres_would() {
    let p = start("").await;
    let analyst = p.connect("analyst").await.unwrap();
    analyst.batch_execute("BEGIN").await.unwrap();
    let refused = analyst
        .simple_query("UPDATE hr.employees SET salary = 0")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&refused), "42501");
    let message = refused.as_db_error().unwrap().message();
    assert!(message.contains("hr.employees"), "{message}");
    let aborted = analyst.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&aborted), "25P02");
    analyst.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        count(&analyst, "SELECT count(*) FROM (SELECT 1) t").await,
        1
    );
}

#[tokio::test]
async fn resetting_the_session_keeps_the_identity() {
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    for reset in ["RESET ALL", "DISCARD ALL"] {
        analyst.batch_execute(reset).await.unwrap();
        assert_eq!(
            count(&analyst, "SELECT count(*) FROM hr.employees").await,
            eu,
            "after {reset}"
        );
    }
}

#[tokio::test]
async fn unregistered_tables_and_copy_of_a_query_pass() {
    let p = start("").await;
    let analyst = p.connect("analyst").await.unwrap();
    assert_eq!(
        count(
            &analyst,
            "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'hr'"
        )
        .await,
        1
    );
    let copy = analyst
        .simple_query("COPY hr.employees TO STDOUT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&copy), "42501");
}

#[tokio::test]
async fn the_identity_cannot_be_set_at_connect_time() {
    let p = start("").await;
    for options in [
        "-c immuta.user=admin",
        "-c IMMUTA.USER=admin",
        "-c role=postgres",
    ] {
        let conn = format!("{} options='{options}'", p.conn_string("analyst"));
        let err = p.connect_with(&conn).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{options}");
    }
}

#[tokio::test]
async fn unnamed_statements_run_as_cached_backend_statements() {
    use tokio_postgres::types::Type;
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    let admin = p.connect("admin").await.unwrap();
    // query_typed sends an unnamed Parse every time, as JDBC and psycopg do.
    let sql = "SELECT count(*) FROM hr.employees WHERE id > $1";
    for round in 0..10 {
        let (client, expected) = if round % 2 == 0 {
            (&analyst, eu)
        } else {
            (&admin, 10_000)
        };
        let row = client
            .query_typed(sql, &[(&0i32, Type::INT4)])
            .await
            .unwrap();
        assert_eq!(row[0].get::<_, i64>(0), expected, "round {round}");
    }
    // Which backend statements served them is not for clients to see: a pooled backend's
    // statements are every client's (bench/README.md measures what the cache saves).
    let listed = analyst
        .simple_query("SELECT statement FROM pg_prepared_statements")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&listed), "42501");
}

/// SQL-level PREPARE of a registered table (psql, psycopg2): transaction pooling replays it on
/// every other backend connection that serves the client, and the replay must be the
/// rewritten statement, never the client's text naming the raw table. Found by the psql and
/// psycopg2 client sessions (tests/clients.rs).
#[tokio::test]
async fn sql_prepared_statements_replay_rewritten_on_another_backend() {
    let p = start("[pool]\nsize = 2\n").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    let other = p.connect("admin").await.unwrap();
    // Simple protocol (psql) and a PREPARE sent through Parse/Bind/Execute (drivers that
    // run every statement in the extended protocol).
    analyst
        .batch_execute(
            "PREPARE simple_upto(int) AS SELECT count(*) FROM hr.employees WHERE id <= $1",
        )
        .await
        .unwrap();
    analyst
        .execute(
            "PREPARE extended_upto(int) AS SELECT count(*) FROM hr.employees WHERE id <= $1",
            &[],
        )
        .await
        .unwrap();
    // The one backend connection so far is held by another client's transaction, so the
    // analyst's next statements run on a fresh one, where both PREPAREs are replayed.
    other.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let held = backend_pid(&other).await;
    for name in ["simple_upto", "extended_upto"] {
        let counted: i64 = analyst
            .simple_query(&format!("EXECUTE {name}(10000)"))
            .await
            .unwrap()
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
                _ => None,
            })
            .unwrap();
        assert_eq!(counted, eu, "{name}");
    }
    assert_ne!(backend_pid(&analyst).await, held, "ran on another backend");
    other.batch_execute("COMMIT").await.unwrap();
}

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn without_the_plan_cache_unnamed_statements_are_still_rewritten() {
    use tokio_postgres::types::Type;
    let p = start("[pool]\ncache_rewritten_plans = false\n").await;
    let analyst = p.connect("analyst").await.unwrap();
    let rows = analyst
        .query_typed(
            "SELECT count(*) FROM hr.employees WHERE id > $1",
            &[(&0i32, Type::INT4)],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), eu_rows().await);
}

/// A query of raw bytes: SQL as a client writes it in its own encoding.
fn query_bytes(sql: &[u8]) -> bytes::BytesMut {
    let mut body = sql.to_vec();
    body.push(0);
    let mut out = bytes::BytesMut::new();
    redveil::protocol::frontend::put_message(&mut out, redveil::protocol::tag::QUERY, &body);
    out
}

#[tokio::test]
async fn a_registered_table_is_rewritten_in_any_client_encoding_and_its_text_kept() {
    let p = start("").await;
    if common::dialect() == redveil::dialect::Dialect::Redshift {
        p.assert_refuses_client_encoding("LATIN1").await;
        return;
    }
    let eu = eu_rows().await;
    let mut latin1 =
        common::raw::RawConn::proxy(&p, "analyst", &[("client_encoding", "LATIN1")]).await;
    // A view of the table, and literals whose bytes must reach the server as sent.
    latin1
        .send(&query_bytes(
            b"SELECT count(*), '\xe9t\xe9' FROM hr.employees WHERE name <> 'Ren\xe9e'",
        ))
        .await;
    let replies = latin1.until_ready().await;
    let rows: Vec<_> = replies
        .iter()
        .filter(|m| m.tag == redveil::protocol::tag::DATA_ROW)
        .collect();
    assert_eq!(rows.len(), 1, "{replies:?}");
    let row = rows[0].body();
    let text = String::from_utf8_lossy(row);
    assert!(text.contains(&eu.to_string()), "EU rows only: {text}");
    assert!(
        row.ends_with(b"\0\0\0\x03\xe9t\xe9"),
        "the literal comes back in LATIN1, three bytes: {row:?}"
    );
    // Multibyte client-only encodings: a non-ASCII text is refused, never guessed at.
    let mut sjis = common::raw::RawConn::proxy(&p, "analyst", &[("client_encoding", "SJIS")]).await;
    sjis.send(&query_bytes(
        b"SELECT ssn FROM hr.employees WHERE name = '\x95\x5c'",
    ))
    .await;
    let replies = sjis.until_ready().await;
    assert_eq!(common::raw::error_codes(&replies), ["0A000"]);
}

/// Tools read `pg_settings` (DBeaver's server info, pgAdmin, Grafana) and `pg_stat_activity`
/// (session managers): on PostgreSQL they get sync's filtered views, without redveil's own
/// settings and with the client's own backend only, while another client is busy; Redshift
/// keeps refusing them.
#[tokio::test]
async fn settings_and_activity_show_only_the_clients_own() {
    let p = start("").await;
    let analyst = p.connect("analyst").await.unwrap();
    let admin = p.connect("admin").await.unwrap();
    admin.batch_execute("BEGIN").await.unwrap();
    count(&admin, "SELECT count(*) FROM hr.employees").await;
    let settings = "SELECT count(*) FROM pg_settings WHERE name LIKE 'immuta%'";
    let all_settings = "SELECT count(*) FROM pg_catalog.pg_settings";
    let activity = "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()";
    let own = "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()";
    match common::dialect() {
        redveil::dialect::Dialect::Postgres => {
            assert_eq!(count(&analyst, settings).await, 0);
            assert!(count(&analyst, all_settings).await > 100);
            assert_eq!(count(&analyst, activity).await, 0);
            assert_eq!(count(&analyst, own).await, 1);
        }
        redveil::dialect::Dialect::Redshift => {
            for sql in [settings, activity] {
                let refused = analyst.simple_query(sql).await.unwrap_err();
                assert_eq!(sqlstate(&refused), "42501", "{sql}");
            }
        }
    }
    admin.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        count(&analyst, "SELECT count(*) FROM hr.employees").await,
        eu_rows().await
    );
}
