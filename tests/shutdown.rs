//! Stopping the proxy: a graceful stop lets open transactions finish and closes idle sessions;
//! past `limits.shutdown_timeout_s`, or on an immediate stop, sessions end with 57P01.

mod common;

use common::proxy;
use common::raw::RawConn;
use redveil::protocol::{frontend, tag};
use std::time::Duration;

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

/// The first ErrorResponse the proxy sends this raw connection on its own, and whether the
/// connection then ends.
async fn unsolicited_error(conn: &mut RawConn) -> (String, String, bool) {
    let error = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = conn
                .recv()
                .await
                .expect("read")
                .expect("an error before the end");
            if m.tag == tag::ERROR_RESPONSE {
                return m.fields();
            }
        }
    })
    .await
    .expect("the session is ended promptly");
    let ended = matches!(conn.recv().await, Ok(None) | Err(_));
    (error.severity, error.code, ended)
}

#[tokio::test]
async fn sessions_left_after_the_timeout_end_with_57p01() {
    let p = proxy::start("[limits]\nshutdown_timeout_s = 1\n").await;
    let mut busy = RawConn::proxy(&p, "analyst", &[]).await;
    busy.simple("BEGIN").await;
    p.stopper.graceful();
    assert_eq!(
        unsolicited_error(&mut busy).await,
        ("FATAL".into(), "57P01".into(), true)
    );
}

#[tokio::test]
async fn immediate_stop_ends_sessions_at_once() {
    let p = proxy::start("").await;
    let mut busy = RawConn::proxy(&p, "analyst", &[]).await;
    let mut sleep = bytes::BytesMut::new();
    frontend::query(&mut sleep, "SELECT pg_sleep(30)");
    busy.send(&sleep).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.stopper.immediate();
    let (severity, code, ended) = unsolicited_error(&mut busy).await;
    assert_eq!((severity.as_str(), ended), ("FATAL", true));
    assert_eq!(code, "57P01");
}
