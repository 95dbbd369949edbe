//! The admin side: the Prometheus endpoint that exposes what the query path records through
//! the `metrics` facade (`redveil_connections_total`, `redveil_statements_total`,
//! `redveil_pool_checkouts_total`, `redveil_backend_resets_total`, …).
//!
//! The facade holds one recorder per process, so only the binary installs this one, once, at
//! start (`[metrics] listen`); in-process tests install their own debugging recorder.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use std::net::SocketAddr;

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct MetricsError {
    addr: SocketAddr,
    source: BuildError,
}

/// Pool waits are mostly sub-millisecond; the tail up to `checkout_timeout_ms` matters too.
const POOL_WAIT_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// Installs the Prometheus recorder process-wide and serves its text format over plain HTTP on
/// `addr` (any path answers, `/metrics` included) from the current tokio runtime, for as long
/// as it runs. Fails if the address cannot be bound or a recorder is already installed.
pub fn serve_prometheus(addr: SocketAddr) -> Result<(), MetricsError> {
    let error = |source| MetricsError { addr, source };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        // A histogram rather than the default summary: buckets add up across instances.
        .set_buckets_for_metric(
            Matcher::Full("redveil_pool_wait_seconds".into()),
            POOL_WAIT_BUCKETS,
        )
        .map_err(error)?
        .install()
        .map_err(error)
}
