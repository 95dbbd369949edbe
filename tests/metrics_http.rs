//! `[metrics] listen`: the proxy binary serves its counters in Prometheus' text format over
//! plain HTTP. The binary runs as a process of its own (the recorder is process-wide, and
//! tests/metrics.rs installs a debugging one in its process).

mod common;

use common::spawned::SpawnedProxy;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port nobody listens on now: the exporter cannot bind port 0 and say which port it got.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// GET `path` over HTTP/1.1; returns the status line and the body.
async fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics endpoint");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the metrics endpoint answers")
    .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of a sample line such as `redveil_connections_total 1`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_endpoint_serves_the_counters() {
    let port = free_port();
    let proxy = SpawnedProxy::start(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).await;

    let client = proxy.connect("analyst").await;
    client.simple_query("SELECT 1").await.expect("a statement");

    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        body.contains("# TYPE redveil_connections_total counter"),
        "{body}"
    );
    assert_eq!(
        sample(&body, "redveil_connections_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(sample(&body, "redveil_logins_total"), Some(1.0), "{body}");
    assert_eq!(
        sample(&body, "redveil_statements_total{protocol=\"simple\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(
        body.contains("redveil_pool_wait_seconds_bucket{le=\"0.001\"}"),
        "pool waits are a histogram: {body}"
    );
}
