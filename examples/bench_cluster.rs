//! The benchmark's backend: an ephemeral PostgreSQL with the demo dataset, held until
//! SIGTERM, SIGINT or the end of stdin (so it goes away with the script that started it).
//!
//! `cargo run --release --example bench_cluster`; used by `bench/run.sh`. Prints one
//! `key=value` line per fact, then `ready`:
//!
//! ```text
//! host=127.0.0.1
//! port=PORT
//! superuser=postgres
//! superuser_password=...
//! query_user=redveil_query
//! query_password=redveil_query
//! ready
//! ```
//!
//! The cluster's watchdog removes it even if this process is killed with SIGKILL.

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::demo::dataset;
use std::io::Write;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = EphemeralCluster::start(ClusterOptions::default()).await?;
    let demo = dataset::load(&cluster).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "host={}", cluster.host())?;
    writeln!(out, "port={}", cluster.port())?;
    writeln!(out, "superuser={}", cluster.superuser())?;
    writeln!(out, "superuser_password={}", cluster.superuser_password())?;
    writeln!(out, "query_user={}", demo.query_user)?;
    writeln!(out, "query_password={}", demo.query_password)?;
    writeln!(out, "data_dir={}", cluster.data_dir().display())?;
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);

    // A background job of a non-interactive shell ignores SIGINT, so SIGTERM is the
    // signal that matters; stdin EOF covers a parent that dies without a trap.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = closed_rx => {}
    }
    cluster.shutdown();
    // The stdin thread may still be blocked in read; do not wait for it.
    std::process::exit(0)
}
