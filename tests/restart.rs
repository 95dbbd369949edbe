//! The backend restarted under live sessions: statements in flight fail promptly with a clean
//! error, statements while it is down fail without ending the client, and the pool reconnects
//! once it is back. In its own test binary because it stops the binary's cluster.

mod common;

use common::raw::RawConn;
use common::{cluster, proxy};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;

/// 57P01 (admin shutdown) or 57P03 (starting up), relayed from the backend, or
/// connection-exception class 08.
fn assert_clean_error(err: &tokio_postgres::Error, what: &str) {
    let code = err
        .code()
        .unwrap_or_else(|| panic!("{what}: no SQLSTATE in {err:?}"));
    assert!(
        code == &SqlState::ADMIN_SHUTDOWN
            || code == &SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08"),
        "{what}: {} {err}",
        code.code()
    );
}

fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restart_fails_statements_cleanly_and_the_pool_recovers() {
    // A long checkout timeout: failing fast while the cluster is down must not rely on it.
    let p = proxy::start("[pool]\nsize = 6\ncheckout_timeout_ms = 20000\n").await;
    let simple = p.connect("analyst").await.unwrap();
    let extended = p.connect("analyst").await.unwrap();
    let mut in_tx = RawConn::proxy(&p, "bi_service", &[]).await;
    let idle = p.connect("admin").await.unwrap();
    idle.simple_query("SELECT 1").await.unwrap();
    assert_eq!(in_tx.simple("BEGIN").await.last().unwrap().body(), b"T");

    let slow_simple = tokio::spawn(async move {
        let r = simple.simple_query("SELECT pg_sleep(60)").await.map(drop);
        (r, Instant::now(), simple)
    });
    let slow_extended = tokio::spawn(async move {
        let r = extended.query("SELECT pg_sleep(60)", &[]).await.map(drop);
        (r, Instant::now(), extended)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    cluster().stop_server().await.expect("pg_ctl stop");

    for (what, task) in [("simple", slow_simple), ("extended", slow_extended)] {
        let (result, ended, client) = task.await.unwrap();
        let err = result.expect_err("a statement in flight fails");
        assert_clean_error(&err, what);
        assert!(
            ended.duration_since(stopping) < Duration::from_secs(10),
            "{what}: error took {:?}",
            ended.duration_since(stopping)
        );
        // The backend session is gone, so is the client's (as with PostgreSQL itself).
        assert!(
            client.simple_query("SELECT 1").await.is_err(),
            "{what}: no statement runs on a connection the server terminated"
        );
    }

    // A client idle inside a transaction is told at once, without sending anything: the
    // backend's FATAL 57P01 is relayed, then the connection ends.
    let told = tokio::time::timeout(Duration::from_secs(5), in_tx.until_closed())
        .await
        .expect("the client in a transaction is told promptly");
    assert!(!told.is_empty(), "an error before the close");
    let first = told[0].fields();
    assert_eq!(
        (first.severity.as_str(), first.code.as_str()),
        ("FATAL", "57P01")
    );
    for m in &told[1..] {
        let f = m.fields();
        assert_eq!(f.severity, "FATAL");
        assert!(f.code.starts_with("08"), "{f:?}");
    }

    // While the cluster is down: an error (not a hang, not a disconnect) for an idle client.
    let started = Instant::now();
    let err = idle.simple_query("SELECT 1").await.unwrap_err();
    assert_clean_error(&err, "while down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    cluster().start_server().await.expect("pg_ctl start");

    // The same idle client and a new one are served by fresh pool connections.
    let rows = idle
        .simple_query("SELECT 'back'")
        .await
        .expect("the pool reconnects");
    assert_eq!(first_value(&rows).as_deref(), Some("back"));
    let fresh = p.connect("bi_service").await.unwrap();
    let n: i64 = fresh
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10_000);
    let many = futures_util::future::join_all((0..6).map(|_| async {
        let c = p.connect("analyst").await.unwrap();
        c.query_one("SELECT pg_backend_pid()", &[])
            .await
            .map(|r| r.get::<_, i32>(0))
    }))
    .await;
    assert!(
        many.iter().all(Result::is_ok),
        "every pool slot reconnects: {many:?}"
    );
}
