//! The benchmark's backend: an ephemeral PostgreSQL with the demo dataset, held until
//! SIGTERM, SIGINT or the end of stdin (so it goes away with the script that started it).
//!
//! `cargo run --release --example bench_cluster [-- --policy-catalog PATH]`; used by
//! `bench/run.sh` and `bench/policy_proxy.sh`. Prints one `key=value` line per fact, then
//! `ready`:
//!
//! ```text
//! host=127.0.0.1
//! port=PORT
//! superuser=postgres
//! superuser_password=...
//! database=demo
//! query_user=redveil_query
//! query_password=redveil_query
//! system_user=redveil_system
//! system_password=redveil_system
//! data_dir=...
//! ready
//! ```
//!
//! With `--policy-catalog PATH` it also takes the query role's direct access to
//! `hr.employees` away (as `redveil demo` does, so the proxy's policy sync can run) and writes
//! the demo catalog (`[control]`, the demo users with password = name, the data sources) to
//! PATH, for the bench to append to its proxy config.
//!
//! The cluster's watchdog removes it even if this process is killed with SIGKILL.

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::demo::{catalog, dataset};
use std::io::Write;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut policy_catalog = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--policy-catalog" => {
                policy_catalog = Some(args.next().ok_or("--policy-catalog PATH")?)
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut cluster = EphemeralCluster::start(ClusterOptions::default()).await?;
    let demo = dataset::load(&cluster).await?;
    if let Some(path) = &policy_catalog {
        dataset::revoke_raw_access(&cluster).await?;
        let toml = catalog::catalog_toml(&demo, |user| {
            redveil::auth::ScramVerifier::generate(user).to_string()
        });
        std::fs::write(path, toml)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "host={}", cluster.host())?;
    writeln!(out, "port={}", cluster.port())?;
    writeln!(out, "superuser={}", cluster.superuser())?;
    writeln!(out, "superuser_password={}", cluster.superuser_password())?;
    writeln!(out, "database={}", demo.database)?;
    writeln!(out, "query_user={}", demo.query_user)?;
    writeln!(out, "query_password={}", demo.query_password)?;
    writeln!(out, "system_user={}", demo.system_user)?;
    writeln!(out, "system_password={}", demo.system_password)?;
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
