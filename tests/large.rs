//! Large traffic: a result of more than 100 MB and a 50 MB Bind parameter stream through the
//! proxy without being buffered whole (measured on the proxy binary in its own process), and a
//! deep extended-protocol pipeline with large results does not deadlock.

mod common;

use bytes::BytesMut;
use common::proxy;
use common::raw::{self, RawConn};
use common::spawned::SpawnedProxy;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use redveil::protocol::tag;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const BIG_RESULT: &str = "SELECT repeat('x', 1000) FROM generate_series(1, 110000)";
const BIG_ROWS: u64 = 110_000;
/// Far below the 110 MB the result holds; a proxy that buffered it would exceed this.
const PEAK_RSS_LIMIT_KB: u64 = 60 * 1024;

/// Streams `sql` row by row; returns (rows, value bytes, seconds).
async fn stream_rows(client: &tokio_postgres::Client, sql: &str) -> (u64, u64, f64) {
    tokio::time::timeout(Duration::from_secs(90), stream_rows_inner(client, sql))
        .await
        .expect("the large result did not finish streaming")
}

async fn stream_rows_inner(client: &tokio_postgres::Client, sql: &str) -> (u64, u64, f64) {
    let started = Instant::now();
    let stream = client
        .query_raw(sql, std::iter::empty::<i32>())
        .await
        .expect("query starts");
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        bytes += row.get::<_, &str>(0).len() as u64;
        rows += 1;
    }
    (rows, bytes, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_100_mb_streams_with_flat_proxy_memory() {
    let p = SpawnedProxy::start("").await;
    let through = p.connect("analyst").await;
    let rss_before = p.status_kb("VmRSS");
    let (rows, bytes, proxy_secs) = stream_rows(&through, BIG_RESULT).await;
    assert_eq!((rows, bytes), (BIG_ROWS, BIG_ROWS * 1000));
    let peak = p.status_kb("VmHWM");

    let direct = common::connect(&common::demo().query_conn_string(common::cluster()))
        .await
        .unwrap();
    let (rows, _, direct_secs) = stream_rows(&direct, BIG_RESULT).await;
    assert_eq!(rows, BIG_ROWS);
    println!(
        "large result: {BIG_ROWS} rows of 1000 bytes; through the proxy (TLS) {:.0} rows/s in {proxy_secs:.2} s, \
         direct (no TLS) {:.0} rows/s in {direct_secs:.2} s; proxy RSS before {rss_before} kB, peak (VmHWM) {peak} kB",
        BIG_ROWS as f64 / proxy_secs,
        BIG_ROWS as f64 / direct_secs,
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KB,
        "proxy peak RSS {peak} kB while relaying a 110 MB result"
    );
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_bind_parameter_passes_through_unbuffered() {
    let p = SpawnedProxy::start("").await;
    let mut client = p.connect("analyst").await;
    let data: Vec<u8> = (0..50u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("CREATE TEMP TABLE big_bind (b bytea) ON COMMIT DROP")
        .await
        .unwrap();
    let inserted = tx
        .execute("INSERT INTO big_bind VALUES ($1)", &[&data])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let row = tx
        .query_one("SELECT length(b), md5(b) FROM big_bind", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0) as usize, data.len());
    assert_eq!(row.get::<_, String>(1), md5_hex(&data));
    tx.commit().await.unwrap();
    let peak = p.status_kb("VmHWM");
    println!("50 MB Bind: proxy peak RSS (VmHWM) {peak} kB");
    assert!(
        peak < 40 * 1024,
        "proxy peak RSS {peak} kB: the 50 MB parameter was buffered"
    );
}

/// Writes one unnamed Parse of `statement`, `n` Bind/Execute pairs with a `param_len`-byte
/// parameter and one Sync, from a task of its own so the caller can read replies meanwhile.
fn send_pipeline(
    conn: RawConn,
    statement: &str,
    n: usize,
    param_len: usize,
) -> (
    raw::Reader<tokio::io::ReadHalf<redveil::net::Stream>>,
    tokio::task::JoinHandle<tokio::io::WriteHalf<redveil::net::Stream>>,
) {
    let param = vec![b'p'; param_len];
    let mut batch = BytesMut::new();
    raw::parse(&mut batch, "", statement);
    for _ in 0..n {
        raw::bind(&mut batch, "", "", &[Some(&param)], &[]);
        raw::execute(&mut batch, "", 0);
    }
    raw::sync(&mut batch);
    let (reader, mut writer) = conn.into_split();
    let write = tokio::spawn(async move {
        writer.write_all(&batch).await.expect("pipeline written");
        writer.flush().await.expect("flushed");
        writer
    });
    (reader, write)
}

/// One Parse, then `n` Bind/Execute pairs with a `param_len`-byte parameter returning it
/// twice, then one Sync: the client writes it all while reading replies concurrently.
/// Returns (DataRows, CommandCompletes) received before ReadyForQuery.
async fn deep_pipeline(conn: RawConn, n: usize, param_len: usize) -> (usize, usize) {
    let (mut reader, write) = send_pipeline(
        conn,
        "SELECT $1::text FROM generate_series(1, 2)",
        n,
        param_len,
    );
    let (mut rows, mut completes) = (0, 0);
    loop {
        let m = reader.recv().await.expect("read").expect("open");
        match m.tag {
            tag::DATA_ROW => {
                assert_eq!(m.raw.len(), 5 + 2 + 4 + param_len);
                rows += 1;
            }
            tag::COMMAND_COMPLETE => completes += 1,
            tag::READY_FOR_QUERY => break,
            tag::ERROR_RESPONSE => panic!("{:?}", m.fields()),
            _ => {}
        }
    }
    drop(write.await.unwrap());
    (rows, completes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_pipeline_with_large_results_does_not_deadlock() {
    // 5 000 Bind/Execute of 16 kB each (80 MB in) returning 160 MB: far more than the socket
    // buffers hold in either direction (Linux autotunes loopback buffers up to tens of MB), so a proxy that stops reading the backend while it
    // writes to it deadlocks with a backend blocked writing results.
    const N: usize = 5_000;
    const PARAM: usize = 16_000;
    let direct = deep_pipeline(RawConn::direct(&[]).await, N, PARAM);
    let direct = tokio::time::timeout(Duration::from_secs(60), direct)
        .await
        .expect("direct to PostgreSQL (the client itself does not deadlock)");
    assert_eq!(direct, (2 * N, N));

    let p = proxy::start("").await;
    let conn = RawConn::proxy(&p, "analyst", &[]).await;
    let started = Instant::now();
    let through = tokio::time::timeout(Duration::from_secs(60), deep_pipeline(conn, N, PARAM))
        .await
        .expect("the proxy deadlocked on a deep pipeline");
    assert_eq!(through, (2 * N, N));
    println!(
        "deep pipeline through the proxy: {N} Bind/Execute in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_receives_the_whole_result() {
    // The client reads slower than the proxy writes, so the proxy's TLS writes keep finding
    // the socket full; the last records must still be flushed, not left in the TLS buffer.
    let p = proxy::start("").await;
    let stream = raw::tls_to_proxy_small_window(&p).await;
    let mut conn = RawConn::login(
        stream,
        "analyst",
        &proxy::PASSWORD_OF("analyst"),
        "demo",
        &[],
    )
    .await;
    let mut out = BytesMut::new();
    redveil::protocol::frontend::query(
        &mut out,
        "SELECT repeat('s', 1000) FROM generate_series(1, 20000)",
    );
    conn.send(&out).await;
    let mut rows = 0;
    let read_all = async {
        loop {
            let m = conn.recv().await.expect("read").expect("open");
            match m.tag {
                tag::DATA_ROW => {
                    rows += 1;
                    if rows % 20 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the end of the result never arrived");
    assert_eq!(rows, 20000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_early_in_a_deep_pipeline_skips_to_its_sync() {
    // The backend's error arrives while the proxy is still reading the batch: the messages
    // after it up to Sync are skipped by the backend, and the proxy must expect no replies for
    // them, or the client waits forever and its backend connection is never released.
    const N: usize = 5_000;
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let conn = RawConn::proxy(&p, "analyst", &[]).await;
    let (mut reader, write) = send_pipeline(conn, "SELECT 1 / ($1::text = 'x')::int", N, 16_000);
    let replies = tokio::time::timeout(Duration::from_secs(60), async {
        let mut tags = String::new();
        loop {
            let m = reader.recv().await.expect("read").expect("open");
            tags.push(m.tag as char);
            if m.tag == tag::ERROR_RESPONSE {
                assert_eq!(m.fields().code, "22012");
            }
            if m.tag == tag::READY_FOR_QUERY {
                return tags;
            }
        }
    })
    .await
    .expect("ReadyForQuery after the error");
    assert_eq!(
        replies, "1EZ",
        "ParseComplete, the Bind's error, ReadyForQuery"
    );
    let _writer = write.await.unwrap();
    // The pool's only connection is free again.
    let other = p.connect("admin").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), other.simple_query("SELECT 1"))
        .await
        .expect("the connection was released");
    assert!(got.is_ok());
}

/// Four clients each send a 150 MiB query at once, against a budget of 400 MiB (a message
/// takes twice its size, the copy sent on included): all four headers arrive before any
/// message is complete, so exactly one is admitted and the other three are refused with 53200
/// while their bytes are dropped unread. The proxy's peak memory shows none of them was
/// buffered but the admitted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_huge_queries_stay_within_the_memory_budget() {
    const LEN: usize = 150 << 20;
    let p = SpawnedProxy::start("[limits]\nmax_buffered_bytes = 419430400\n").await;
    let mut halves = Vec::new();
    for _ in 0..4 {
        let stream = raw::tls_to(p.addr, &p.ca).await;
        let conn = RawConn::login(
            stream,
            "analyst",
            &proxy::PASSWORD_OF("analyst"),
            "demo",
            &[],
        )
        .await;
        halves.push(conn.into_split());
    }
    let rss_before = p.status_kb("VmRSS");
    let mut query = BytesMut::new();
    let sql = format!("SELECT length('{}')", "x".repeat(LEN - 30));
    redveil::protocol::frontend::query(&mut query, &sql);
    drop(sql);
    let query = query.freeze();
    // Every client first sends its header and first megabyte; only then the rest.
    let (mut readers, mut writers): (Vec<_>, Vec<_>) = halves.into_iter().unzip();
    for writer in &mut writers {
        writer
            .write_all(&query[..1 << 20])
            .await
            .expect("first part");
        writer.flush().await.expect("flushed");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sends: Vec<_> = writers
        .into_iter()
        .map(|mut writer| {
            let query = query.clone();
            tokio::spawn(async move {
                writer.write_all(&query[1 << 20..]).await.expect("the rest");
                writer.flush().await.expect("flushed");
                writer
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for reader in &mut readers {
        let replies = tokio::time::timeout(Duration::from_secs(120), async {
            let mut out = Vec::new();
            loop {
                let m = reader.recv().await.expect("read").expect("open");
                let done = m.tag == tag::READY_FOR_QUERY;
                out.push(m);
                if done {
                    return out;
                }
            }
        })
        .await
        .expect("every client is answered");
        outcomes.push(match raw::error_codes(&replies).as_slice() {
            [] => "ok".to_string(),
            [code] => code.clone(),
            other => panic!("{other:?}"),
        });
    }
    for send in sends {
        drop(send.await.expect("sent"));
    }
    outcomes.sort();
    assert_eq!(outcomes, ["53200", "53200", "53200", "ok"]);
    let peak = p.status_kb("VmHWM");
    println!(
        "four 150 MiB queries at once, budget 400 MiB: {outcomes:?}; proxy RSS before {rss_before} kB, peak (VmHWM) {peak} kB"
    );
    assert!(
        peak < rss_before + 400 * 1024,
        "proxy peak RSS {peak} kB: more than the budget was buffered"
    );
}
