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
//! Lines written to its stdin are commands, each answered by one line on stdout:
//! `stop` (`pg_ctl stop -m fast`: every session ends with 57P01) answers `stopped`, `start`
//! (same data, same port; returns once it accepts connections) answers `started`; a failure
//! answers `error=<message>`. `bench/soak.sh` restarts the backend this way.
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
    let (command_tx, mut command_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // The sender drops at EOF (or a read error), which closes the channel.
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if command_tx.send(line.trim().to_string()).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            command = command_rx.recv() => {
                let Some(command) = command else { break };
                let reply = match command.as_str() {
                    "stop" => cluster.stop_server().await.map(|()| "stopped"),
                    "start" => cluster.start_server().await.map(|()| "started"),
                    "" => continue,
                    other => {
                        println!("error=unknown command {other}");
                        continue;
                    }
                };
                match reply {
                    Ok(reply) => println!("{reply}"),
                    Err(e) => println!("error={}", e.to_string().replace('\n', " ")),
                }
            }
        }
    }
    cluster.shutdown();
    // The stdin thread may still be blocked in read; do not wait for it.
    std::process::exit(0)
}
