//! The proxy's metrics move with traffic: connections, logins, statements by protocol, errors
//! by SQLSTATE class, pool wait time, bytes relayed each way.
//!
//! A test binary of its own, with a single test: the debugging recorder is process-global and
//! each snapshot drains it, so every phase below reads exactly the deltas it caused.

mod common;

use common::proxy;
use common::raw::RawConn;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder in this process");
        snapshotter
    })
}

/// What was recorded since the previous snapshot, keyed by `name{label=value,…}`.
struct Deltas(HashMap<String, DebugValue>);

impl Deltas {
    fn take() -> Deltas {
        let mut out = HashMap::new();
        for (key, _, _, value) in snapshotter().snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = if labels.is_empty() {
                key.name().to_string()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            out.insert(name, value);
        }
        Deltas(out)
    }

    fn counter(&self, name: &str) -> u64 {
        match self.0.get(name) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.0.get(name) {
            Some(DebugValue::Gauge(v)) => v.into_inner(),
            None => 0.0,
            Some(other) => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram(&self, name: &str) -> Vec<f64> {
        match self.0.get(name) {
            Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
            None => Vec::new(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }
}

/// Waits until the proxy has counted something asynchronous (a disconnect).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    snapshotter();
    let p = proxy::start("").await;
    Deltas::take();

    // A login: one accepted connection, one login, one client, a pool checkout (for the
    // ParameterStatus template) that opened a backend connection.
    let client = p.connect("analyst").await.unwrap();
    let d = Deltas::take();
    assert_eq!(d.counter("redveil_connections_total"), 1);
    assert_eq!(d.counter("redveil_logins_total"), 1);
    assert_eq!(d.gauge("redveil_clients"), 1.0);
    assert_eq!(d.counter("redveil_backend_connections_opened_total"), 1);
    assert_eq!(d.counter("redveil_pool_checkouts_total{affinity=new}"), 1);

    // Statements by protocol, each a checkout in transaction mode; bytes both ways.
    for _ in 0..3 {
        client.simple_query("SELECT 1").await.unwrap();
    }
    let n: i32 = client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 42);
    let d = Deltas::take();
    assert_eq!(d.counter("redveil_statements_total{protocol=simple}"), 3);
    assert_eq!(d.counter("redveil_statements_total{protocol=extended}"), 1);
    let waits = d.histogram("redveil_pool_wait_seconds");
    // Three simple queries, the prepare's Sync cycle and the execute's: five checkouts.
    assert_eq!(waits.len(), 5, "{waits:?}");
    assert!(waits.iter().all(|w| (0.0..5.0).contains(w)), "{waits:?}");
    // The login's checkout claimed the connection for no client: the first statement finds it
    // clean, the others find it as this client left it.
    assert_eq!(d.counter("redveil_pool_checkouts_total{affinity=clean}"), 1);
    assert_eq!(
        d.counter("redveil_pool_checkouts_total{affinity=same_client}"),
        4
    );
    assert!(d.counter("redveil_bytes_to_backend_total") >= 3 * "SELECT 1".len() as u64);
    assert!(d.counter("redveil_bytes_from_backend_total") > 0);
    // Everything relayed came from the backend; the replies to the proxy's own session
    // replay (the client's startup settings) are not relayed.
    let (to_client, from_backend) = (
        d.counter("redveil_bytes_to_client_total"),
        d.counter("redveil_bytes_from_backend_total"),
    );
    assert!(
        to_client > 0 && to_client <= from_backend,
        "{to_client} {from_backend}"
    );
    assert!(d.counter("redveil_client_messages_total") >= 3 + 6);

    // A megabyte result is counted in both directions of the relay.
    client
        .simple_query("SELECT repeat('x', 1000000)")
        .await
        .unwrap();
    let d = Deltas::take();
    assert!(d.counter("redveil_bytes_from_backend_total") > 1_000_000);
    assert!(d.counter("redveil_bytes_to_client_total") > 1_000_000);

    // Errors by SQLSTATE class: from the backend, and the proxy's own.
    assert!(client.simple_query("SELECT 1/0").await.is_err());
    assert!(client.simple_query("SELECT * FROM nope").await.is_err());
    assert!(client.query("SELECT 1/0", &[]).await.is_err());
    let mut raw = RawConn::proxy(&p, "admin", &[]).await;
    raw.send(b"Q\0\0\0\x02").await;
    raw.until_closed().await;
    settle().await;
    let d = Deltas::take();
    assert_eq!(d.counter("redveil_errors_total{class=22}"), 2);
    assert_eq!(d.counter("redveil_errors_total{class=42}"), 1);
    assert_eq!(d.counter("redveil_errors_total{class=08}"), 1);
    assert_eq!(
        d.gauge("redveil_clients"),
        0.0,
        "the raw client came and went"
    );

    // A failed login.
    let wrong = p
        .connect_with(&format!(
            "host=localhost port={} dbname=demo user=analyst password=wrong",
            p.addr.port()
        ))
        .await;
    assert!(wrong.is_err());
    let d = Deltas::take();
    assert_eq!(d.counter("redveil_connections_total"), 1);
    assert_eq!(d.counter("redveil_login_failures_total"), 1);
    assert_eq!(d.counter("redveil_logins_total"), 0);

    // A client leaving.
    drop(client);
    settle().await;
    let d = Deltas::take();
    assert_eq!(d.gauge("redveil_clients"), -1.0);
}
