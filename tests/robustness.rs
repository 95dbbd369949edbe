//! Bad input ends only the offending client's connection, with an ErrorResponse (08P01) where
//! the protocol allows one; idle, idle-in-transaction and startup timeouts.

mod common;

use bytes::BytesMut;
use common::proxy::{self, TestProxy};
use common::raw::{self, Msg, RawConn};
use redveil::net::Stream;
use redveil::protocol::{frontend, tag};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The first data row of a simple query's result.
fn first_row(messages: &[tokio_postgres::SimpleQueryMessage]) -> &tokio_postgres::SimpleQueryRow {
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row")
}

/// Reads until the proxy closes (bounded), returning what it sent.
async fn closed_after(conn: &mut RawConn) -> Vec<Msg> {
    tokio::time::timeout(Duration::from_secs(10), conn.until_closed())
        .await
        .expect("the proxy closes the connection")
}

/// Exactly one FATAL ErrorResponse with `code`, then the end of the connection.
fn assert_fatal(messages: &[Msg], code: &str, what: &str) {
    assert_eq!(messages.len(), 1, "{what}: {messages:?}");
    assert_eq!(messages[0].tag, tag::ERROR_RESPONSE, "{what}: {messages:?}");
    let fields = messages[0].fields();
    assert_eq!(
        (fields.severity.as_str(), fields.code.as_str()),
        ("FATAL", code),
        "{what}: {}",
        fields.message
    );
}

/// A client that must not notice anything: runs a statement across the bad client's attack
/// and another afterwards.
async fn bystander(p: &TestProxy) -> tokio::task::JoinHandle<tokio_postgres::Client> {
    let client = p.connect("admin").await.unwrap();
    tokio::spawn(async move {
        let rows = client
            .simple_query("SELECT pg_sleep(0.5), 'still here'")
            .await
            .expect("the bystander's statement in flight succeeds");
        assert_eq!(first_row(&rows).get(1), Some("still here"));
        client
    })
}

async fn assert_bystander_fine(handle: tokio::task::JoinHandle<tokio_postgres::Client>) {
    let client = handle.await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10_000);
}

#[tokio::test]
async fn malformed_messages_after_login_end_only_that_client() {
    let p = proxy::start("").await;
    let other = bystander(&p).await;
    let mut parse_without_terminators = BytesMut::new();
    frontend::put_message(&mut parse_without_terminators, tag::PARSE, b"abcd");
    let mut bind_with_bad_head = BytesMut::new();
    frontend::put_message(&mut bind_with_bad_head, tag::BIND, b"portal-without-nul");
    let mut describe_bad_kind = BytesMut::new();
    frontend::put_message(&mut describe_bad_kind, tag::DESCRIBE, b"Xname\0");
    let cases: [(&str, &[u8]); 7] = [
        ("length below 4", b"Q\0\0\0\x02"),
        ("negative length", b"Q\xff\xff\xff\xff"),
        ("length beyond the 1 GiB limit", b"Q\x7f\xff\xff\xff"),
        ("unknown message type", b"z\0\0\0\x04"),
        ("Parse without terminators", &parse_without_terminators),
        ("Bind without a portal terminator", &bind_with_bad_head),
        ("Describe of neither S nor P", &describe_bad_kind),
    ];
    for (what, bytes) in cases {
        let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
        conn.send(bytes).await;
        assert_fatal(&closed_after(&mut conn).await, "08P01", what);
    }
    // Garbage right behind a valid query in the same write: the proxy refuses the whole read
    // (PostgreSQL would answer the query first); either way the error ends the connection.
    let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
    let mut out = BytesMut::new();
    frontend::query(&mut out, "SELECT 1");
    out.extend_from_slice(b"\x00\x00\x00\x00\x01");
    conn.send(&out).await;
    let replies = closed_after(&mut conn).await;
    let tags: String = replies.iter().map(|m| m.tag as char).collect();
    assert!(tags == "E" || tags == "TDCZE", "{replies:?}");
    assert_fatal(
        &replies[replies.len() - 1..],
        "08P01",
        "garbage after a query",
    );
    assert_bystander_fine(other).await;
}

#[tokio::test]
async fn a_message_over_the_configured_limit_ends_that_client() {
    let p = proxy::start("[limits]\nmax_client_message_bytes = 65536\n").await;
    let other = bystander(&p).await;
    // Just under the limit works.
    let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
    let sql = format!("SELECT length('{}')", "x".repeat(65_000));
    let replies = conn.simple(&sql).await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");
    // A Query and a Bind declaring 1 MB: refused on the header, before the body is read.
    for (what, message_tag) in [("Query", tag::QUERY), ("Bind", tag::BIND)] {
        let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
        let mut out = vec![message_tag];
        out.extend_from_slice(&(1_048_576i32 + 4).to_be_bytes());
        out.extend_from_slice(b"\0\0 partial body");
        conn.send(&out).await;
        assert_fatal(&closed_after(&mut conn).await, "08P01", what);
    }
    assert_bystander_fine(other).await;
}

async fn plain(p: &TestProxy) -> RawConn {
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    RawConn::unstarted(Stream::Plain(tcp))
}

#[tokio::test]
async fn garbage_before_startup_is_refused() {
    let p = proxy::start("").await;
    let other = bystander(&p).await;

    // An HTTP request: its first four bytes make an absurd packet length.
    let mut conn = plain(&p).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: redveil\r\n\r\n").await;
    assert_fatal(&closed_after(&mut conn).await, "08P01", "HTTP request");

    // A well-framed packet with an unknown protocol version.
    let mut conn = plain(&p).await;
    conn.send(b"\0\0\0\x08\x12\x34\x56\x78").await;
    assert_fatal(&closed_after(&mut conn).await, "0A000", "unknown version");

    // After the TLS handshake: a packet length below the minimum.
    let mut conn = RawConn::unstarted(raw::tls_to_proxy(&p).await);
    conn.send(b"\0\0\0\x02").await;
    assert_fatal(
        &closed_after(&mut conn).await,
        "08P01",
        "short packet in TLS",
    );

    // A startup packet whose parameters are not terminated.
    let mut conn = RawConn::unstarted(raw::tls_to_proxy(&p).await);
    conn.send(b"\0\0\0\x0e\0\x03\0\0user\0ab").await;
    assert_fatal(
        &closed_after(&mut conn).await,
        "08P01",
        "unterminated startup",
    );

    // Cleartext startup when TLS is required: refused with 28000.
    let mut conn = plain(&p).await;
    let startup = redveil::protocol::startup::StartupMessage::encode(&[(
        "user".to_string(),
        "analyst".to_string(),
    )]);
    conn.send(&startup).await;
    assert_fatal(&closed_after(&mut conn).await, "28000", "cleartext");

    assert_bystander_fine(other).await;
}

#[tokio::test]
async fn an_abrupt_close_mid_message_ends_only_that_client() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
    // A large Bind cut off half-way (it streams to the backend), then the socket closes.
    let mut out = BytesMut::new();
    raw::parse(&mut out, "", "SELECT length($1)");
    let mut bind = BytesMut::new();
    raw::bind(&mut bind, "", "", &[Some(&vec![b'a'; 500_000])], &[]);
    out.extend_from_slice(&bind[..250_000]);
    conn.send(&out).await;
    conn.stream.shutdown().await.ok();
    drop(conn);
    // The pool's only connection must not carry the half message to the next client.
    let next = p.connect("admin").await.unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        next.query_one("SELECT length($1::text)", &[&"abc"]),
    )
    .await
    .expect("the next client is served promptly")
    .unwrap();
    assert_eq!(got.get::<_, i32>(0), 3);
}

#[tokio::test]
async fn idle_clients_are_closed_with_57p05() {
    let p = proxy::start("[limits]\nidle_client_timeout_s = 1\n").await;
    // A statement running longer than the idle limit is not idleness.
    let busy = p.connect("admin").await.unwrap();
    busy.simple_query("SELECT pg_sleep(1.5)").await.unwrap();

    let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
    let started = Instant::now();
    let messages = closed_after(&mut conn).await;
    let waited = started.elapsed();
    assert_fatal(&messages, "57P05", "idle session");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn idle_in_transaction_clients_are_closed_with_25p03_and_rolled_back() {
    let p = proxy::start("[pool]\nsize = 1\n[limits]\nidle_in_transaction_timeout_s = 1\n").await;
    let mut conn = RawConn::proxy(&p, "analyst", &[]).await;
    conn.simple("BEGIN").await;
    conn.simple("CREATE TEMP TABLE idle_tx_probe (x int) ON COMMIT DROP")
        .await;
    let started = Instant::now();
    let messages = closed_after(&mut conn).await;
    assert_fatal(&messages, "25P03", "idle in transaction");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The pool's only connection was rolled back: the next client is served, outside any
    // transaction, and the temporary table is gone.
    let next = p.connect("admin").await.unwrap();
    let rows = next
        .simple_query(
            "SELECT transaction_timestamp() = statement_timestamp(), \
             NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'idle_tx_probe')",
        )
        .await
        .unwrap();
    let row = first_row(&rows);
    assert_eq!((row.get(0), row.get(1)), (Some("t"), Some("t")));
    // Idle outside a transaction is not limited by the in-transaction timeout.
    let mut idle = RawConn::proxy(&p, "analyst", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let replies = idle.simple("SELECT 1").await;
    assert!(raw::error_codes(&replies).is_empty());
}

#[tokio::test]
async fn slow_startups_are_cut_off() {
    // Long enough for a SCRAM login of a debug build on a loaded machine.
    let p = proxy::start("[limits]\nstartup_timeout_ms = 2000\n").await;
    let silent = plain(&p).await;
    let after_tls = RawConn::unstarted(raw::tls_to_proxy(&p).await);
    let mut half = RawConn::unstarted(raw::tls_to_proxy(&p).await);
    half.send(b"\0\0\0\x20\0\x03\0\0user\0").await;
    let started = Instant::now();
    // Nothing after connecting; TLS but no startup packet; half a startup packet: each is
    // closed without a word once the startup timeout passes.
    let cut = |mut conn: RawConn| async move { (closed_after(&mut conn).await, started.elapsed()) };
    let (a, b, c) = tokio::join!(cut(silent), cut(after_tls), cut(half));
    for (messages, waited) in [a, b, c] {
        assert!(messages.is_empty(), "{messages:?}");
        assert!(
            waited >= Duration::from_millis(1_500) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }
    // A normal login still works.
    let client = p.connect("analyst").await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn an_exhausted_pool_answers_53300_instead_of_hanging() {
    let p = proxy::start("[pool]\nsize = 1\ncheckout_timeout_ms = 300\n").await;
    let holder = p.connect("analyst").await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let waiter = p.connect("admin").await.unwrap();
    let started = Instant::now();
    let err = waiter.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The waiter's connection survives; once the transaction ends it is served.
    holder.batch_execute("COMMIT").await.unwrap();
    let rows = waiter.simple_query("SELECT 'served'").await.unwrap();
    assert_eq!(first_row(&rows).get(0), Some("served"));
}

/// A client that asks for a large result and stops reading holds the pool's only connection;
/// after `limits.client_write_timeout_s` without taking a byte it is evicted and the next
/// client is served. Its connection is closed (the backend's, too: its transaction ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_evicted_and_frees_its_backend() {
    let p = proxy::start(
        "[pool]\nsize = 1\ncheckout_timeout_ms = 60000\n[limits]\nclient_write_timeout_s = 2\n",
    )
    .await;
    let mut stalled = RawConn::proxy(&p, "analyst", &[]).await;
    let mut query = BytesMut::new();
    frontend::query(
        &mut query,
        "BEGIN; SELECT repeat('x', 1000) FROM generate_series(1, 200000)",
    );
    stalled.send(&query).await;
    // It reads nothing; another client waits for the only backend connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = p.connect("analyst").await.expect("login");
    let rows = tokio::time::timeout(Duration::from_secs(60), other.simple_query("SELECT 1"))
        .await
        .expect("served once the stalled client is evicted")
        .expect("SELECT 1");
    assert_eq!(first_row(&rows).get(0), Some("1"));
    // What the stalled client finds when it reads at last: part of its result, then the end.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stalled.recv().await {
                Ok(Some(m)) if m.tag == tag::READY_FOR_QUERY => return false,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return true,
            }
        }
    })
    .await
    .expect("the stalled client's connection ends");
    assert!(ended, "the stalled client's result did not complete");
}
