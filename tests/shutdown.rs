//! Stopping the proxy: a graceful stop lets open transactions finish and closes idle sessions;
//! past `limits.shutdown_timeout_s`, or on an immediate stop, sessions end with 57P01.

mod common;

use common::proxy;
use std::time::Duration;

fn code(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|c| c.code())
}

#[tokio::test]
async fn graceful_stop_lets_open_transactions_finish() {
    let p = proxy::start("[limits]\nshutdown_timeout_s = 30\n").await;
    let busy = p.connect("analyst").await.unwrap();
    let idle = p.connect("admin").await.unwrap();
    busy.batch_execute("BEGIN; SELECT 1").await.unwrap();
    p.stopper.graceful();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.connect("bi_service").await.is_err(), "no new clients");
    assert!(idle.is_closed() || idle.simple_query("SELECT 1").await.is_err());
    // The open transaction may still finish, then the session closes.
    busy.simple_query("SELECT 2").await.unwrap();
    busy.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(busy.simple_query("SELECT 3").await.is_err());
}

#[tokio::test]
async fn sessions_left_after_the_timeout_end_with_57p01() {
    let p = proxy::start("[limits]\nshutdown_timeout_s = 1\n").await;
    let busy = p.connect("analyst").await.unwrap();
    busy.batch_execute("BEGIN").await.unwrap();
    let pending = {
        let busy = &busy;
        async move {
            // Still in the transaction when the grace period ends.
            tokio::time::sleep(Duration::from_secs(3)).await;
            busy.simple_query("SELECT 1").await
        }
    };
    p.stopper.graceful();
    let err = pending.await.unwrap_err();
    // The FATAL arrives on its own; the next request finds the connection closed.
    assert!(code(&err) == Some("57P01") || err.is_closed(), "{err:?}");
}

#[tokio::test]
async fn immediate_stop_ends_sessions_at_once() {
    let p = proxy::start("").await;
    let busy = p.connect("analyst").await.unwrap();
    let sleeping = tokio::spawn(async move { busy.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.stopper.immediate();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("ends promptly")
        .unwrap();
    let err = result.unwrap_err();
    assert!(code(&err) == Some("57P01") || err.is_closed(), "{err:?}");
}
