//! Shared integration-test harness: one ephemeral PostgreSQL per test binary, with the
//! demo dataset loaded.
//!
//! `#[tokio::test]` gives every test its own runtime, so the cluster is started on a
//! short-lived runtime of its own, in its own thread, and holds nothing tied to a runtime
//! afterwards. It lives in a `static` and is torn down by its watchdog when the test
//! binary exits.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::OnceLock;

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::demo::dataset::{self, DemoBackend};
use redveil::dialect::Dialect;

/// The cluster and what `dataset::load` reported about it.
pub struct TestCluster {
    pub cluster: EphemeralCluster,
    pub demo: DemoBackend,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static EphemeralCluster {
    &test_cluster().cluster
}

/// The engine the tests speak to: `REDVEIL_TEST_DIALECT=redshift` runs them against a
/// Redshift-like PostgreSQL (see `cluster::redshift_like`) with `backend.dialect = "redshift"`.
pub fn dialect() -> Dialect {
    match std::env::var("REDVEIL_TEST_DIALECT").as_deref() {
        Ok("redshift") => Dialect::Redshift,
        Ok("postgres") | Err(_) => Dialect::Postgres,
        Ok(other) => panic!("REDVEIL_TEST_DIALECT={other}: use postgres or redshift"),
    }
}

/// The demo backend of [`cluster`].
pub fn demo() -> &'static DemoBackend {
    &test_cluster().demo
}

fn test_cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        report_server_log_on_panic();
        // A fresh thread: block_on would panic inside a test's own runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the harness runtime");
            runtime.block_on(async {
                let cluster = EphemeralCluster::start(ClusterOptions {
                    redshift_like: dialect() == Dialect::Redshift,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("starting the test cluster: {}", report(&e)));
                let demo = dataset::load(&cluster)
                    .await
                    .unwrap_or_else(|e| panic!("loading the demo dataset: {}", report(&e)));
                TestCluster { cluster, demo }
            })
        })
        .join()
        .expect("the harness thread panicked")
    })
}

/// A test that fails because the server went away (a crash, a full disk) says why: every
/// panic in the binary prints the end of the test cluster's log after the usual message.
fn report_server_log_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if let Some(test) = CLUSTER.get() {
            eprintln!(
                "--- end of the test cluster's log ---\n{}",
                test.cluster.log_tail()
            );
        }
    }));
}

/// An error with its chain of causes, for panic messages.
pub fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Connects with a libpq connection string, without TLS; the connection task runs on the
/// current runtime.
pub async fn connect(conn_str: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
pub mod bypass;
pub mod conformance;
pub mod demo_views;
pub mod policy;
pub mod proxy;
pub mod raw;
pub mod spawned;
