//! COPY FROM STDIN and TO STDOUT through the proxy with a real driver, aborted COPYs leaving
//! the pooled connection clean for the next client, and notices reaching the client.

mod common;

use bytes::{Bytes, BytesMut};
use common::proxy;
use common::raw::RawConn;
use futures_util::{SinkExt, StreamExt};
use redveil::protocol::{frontend, tag};
use std::time::Duration;

/// Tab-separated COPY text for `rows` rows of (id, name, data).
fn copy_text(rows: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..rows {
        let name = match i % 4 {
            0 => "plain".to_string(),
            1 => "with\\ttab".to_string(),
            2 => "\\N".to_string(),
            _ => format!("unicode ✓ {}", "y".repeat(i % 50)),
        };
        out.extend_from_slice(format!("{i}\t{name}\t\\\\x{:08x}\n", i * 7919).as_bytes());
    }
    out
}

async fn collect(stream: tokio_postgres::CopyOutStream) -> Vec<u8> {
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("COPY data"));
    }
    out
}

#[tokio::test]
async fn copy_in_then_copy_out_round_trips_the_data() {
    let p = proxy::start("").await;
    let mut client = p.connect("analyst").await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "CREATE TEMP TABLE copy_rt (id int PRIMARY KEY, name text, data bytea) ON COMMIT DROP",
    )
    .await
    .unwrap();
    let data = copy_text(20_000);
    let sink = tx
        .copy_in::<_, Bytes>("COPY copy_rt FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    // One CopyData far above the proxy's streaming threshold, then many small ones.
    let big_end = data[..300_000].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    sink.send(Bytes::copy_from_slice(&data[..big_end]))
        .await
        .unwrap();
    for chunk in data[big_end..].chunks(1000) {
        sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let copied = sink.as_mut().finish().await.unwrap();
    assert_eq!(copied, 20_000);
    let back = collect(
        tx.copy_out("COPY (SELECT * FROM copy_rt ORDER BY id) TO STDOUT")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(back.len(), data.len());
    assert!(
        back == data,
        "COPY TO STDOUT returns exactly what COPY FROM STDIN loaded"
    );
    let nulls: i64 = tx
        .query_one("SELECT count(*) FROM copy_rt WHERE name IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, 5_000);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn copy_out_matches_a_direct_connection() {
    let p = proxy::start("").await;
    let through = p.connect("analyst").await.unwrap();
    let direct = common::connect(&common::demo().query_conn_string(common::cluster()))
        .await
        .unwrap();
    let sql = "COPY (SELECT * FROM hr.employees ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)";
    let via_proxy = collect(through.copy_out(sql).await.unwrap()).await;
    let straight = collect(direct.copy_out(sql).await.unwrap()).await;
    assert_eq!(via_proxy.iter().filter(|&&b| b == b'\n').count(), 10_001);
    assert!(
        via_proxy == straight,
        "CSV through the proxy equals CSV direct"
    );
    // Binary COPY too.
    let sql =
        "COPY (SELECT id, salary, hired FROM hr.employees ORDER BY id) TO STDOUT (FORMAT binary)";
    assert!(
        collect(through.copy_out(sql).await.unwrap()).await
            == collect(direct.copy_out(sql).await.unwrap()).await
    );
}

/// `(backend pid, clean)`: clean means the statement started its own transaction and no
/// temporary table of an earlier client survives.
async fn backend_state(client: &tokio_postgres::Client) -> (i32, bool) {
    // Simple protocol: in the extended protocol Execute gets a later statement timestamp than
    // the Bind that started the transaction.
    let rows = client
        .simple_query(
            "SELECT pg_backend_pid(), transaction_timestamp() = statement_timestamp() \
             AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname LIKE 'copy_abort%')",
        )
        .await
        .expect("the pooled connection serves the next client");
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("one row");
    (
        row.get(0).unwrap().parse().unwrap(),
        row.get(1) == Some("t"),
    )
}

#[tokio::test]
async fn copy_fail_leaves_the_pooled_connection_clean() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let a = p.connect("analyst").await.unwrap();
    let b = p.connect("admin").await.unwrap();
    let (pid, clean) = backend_state(&b).await;
    assert!(clean);

    a.batch_execute("BEGIN; CREATE TEMP TABLE copy_abort_1 (x int) ON COMMIT DROP")
        .await
        .unwrap();
    let sink = a
        .copy_in::<_, Bytes>("COPY copy_abort_1 FROM STDIN")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"1\n2\n")).await.unwrap();
    // Dropping the sink unfinished makes tokio-postgres send CopyFail.
    drop(sink);
    let err = a.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25P02"), "{err}");
    a.batch_execute("ROLLBACK").await.unwrap();

    // Redshift cannot clean a connection another client used: it is closed and replaced.
    let same = common::dialect() == redveil::dialect::Dialect::Postgres;
    let (b_pid, b_clean) = backend_state(&b).await;
    assert!(b_clean, "a clean connection");
    assert_eq!(b_pid == pid, same, "the same connection on PostgreSQL");
    let (a_pid, a_clean) = backend_state(&a).await;
    assert!(a_clean, "a clean connection");
    assert_eq!(a_pid == pid, same, "the same connection on PostgreSQL");
}

#[tokio::test]
async fn bad_copy_data_fails_cleanly_and_the_connection_stays_usable() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let a = p.connect("analyst").await.unwrap();
    a.batch_execute("BEGIN; CREATE TEMP TABLE copy_abort_2 (x int) ON COMMIT DROP")
        .await
        .unwrap();
    let sink = a
        .copy_in::<_, Bytes>("COPY copy_abort_2 FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    let mut result = sink.send(Bytes::from_static(b"1\nnot-a-number\n")).await;
    if result.is_ok() {
        result = sink.as_mut().finish().await.map(drop);
    }
    let err = result.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    a.batch_execute("ROLLBACK").await.unwrap();
    let b = p.connect("admin").await.unwrap();
    assert!(backend_state(&b).await.1);
    assert!(backend_state(&a).await.1);
}

#[tokio::test]
async fn client_vanishing_mid_copy_never_hands_a_dirty_connection_on() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let mut raw = RawConn::proxy(&p, "analyst", &[]).await;
    assert_eq!(raw.simple("BEGIN").await.last().unwrap().body(), b"T");
    raw.simple("CREATE TEMP TABLE copy_abort_3 (x int) ON COMMIT DROP")
        .await;
    let mut out = BytesMut::new();
    frontend::query(&mut out, "COPY copy_abort_3 FROM STDIN");
    raw.send(&out).await;
    assert_eq!(
        raw.recv().await.unwrap().unwrap().tag,
        tag::COPY_IN_RESPONSE
    );
    let mut out = BytesMut::new();
    frontend::put_message(&mut out, tag::COPY_DATA, b"1\n2\n");
    // Half of a CopyData message, then the client is gone.
    out.extend_from_slice(&[tag::COPY_DATA, 0, 0, 1, 0, b'3', b'\n']);
    raw.send(&out).await;
    drop(raw);

    let b = p.connect("admin").await.unwrap();
    let (_, clean) = tokio::time::timeout(Duration::from_secs(10), backend_state(&b))
        .await
        .expect("the pool's only connection comes back (or is replaced) promptly");
    assert!(
        clean,
        "no transaction, COPY or temp table of the vanished client"
    );
}

#[tokio::test]
async fn notices_reach_the_client() {
    let p = proxy::start("").await;
    let (client, mut notices) = p.connect_with_notices("analyst").await;
    client
        .batch_execute(
            "DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful' USING ERRCODE = '01R01'; END$$",
        )
        .await
        .unwrap();
    let first = notices.recv().await.unwrap();
    assert_eq!(
        (first.severity(), first.code().code(), first.message()),
        ("NOTICE", "00000", "hello 42")
    );
    let second = notices.recv().await.unwrap();
    assert_eq!(
        (second.severity(), second.code().code(), second.message()),
        ("WARNING", "01R01", "careful")
    );
    // The extended protocol too.
    client
        .execute("DO $$BEGIN RAISE NOTICE 'extended %', 7; END$$", &[])
        .await
        .unwrap();
    let third = notices.recv().await.unwrap();
    assert_eq!(
        (third.code().code(), third.message()),
        ("00000", "extended 7")
    );

    // Raw: the NoticeResponse precedes CommandComplete for the DO statement.
    let mut raw = RawConn::proxy(&p, "admin", &[]).await;
    let replies = raw
        .simple("DO $$BEGIN RAISE NOTICE 'raw notice'; END$$")
        .await;
    let tags: String = replies.iter().map(|m| m.tag as char).collect();
    assert_eq!(tags, "NCZ");
    let notice = replies[0].fields();
    assert_eq!(
        (notice.code.as_str(), notice.message.as_str()),
        ("00000", "raw notice")
    );
}
