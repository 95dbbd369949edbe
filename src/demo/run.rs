//! `redveil demo`: an ephemeral cluster with the demo data, the proxy in front of it with a
//! fresh certificate, and connection strings to paste, until Ctrl-C or SIGTERM.

use crate::cluster::{ClusterOptions, EphemeralCluster};
use crate::config::Config;
use crate::demo::{catalog, dataset};
use crate::server::Server;
use std::net::SocketAddr;

/// Runs the demo; returns when interrupted, after removing the cluster (unless `keep`).
/// With `Dialect::Redshift` the cluster is PostgreSQL made to read and answer like Redshift
/// where redveil depends on it (see `cluster::redshift_like`), and the proxy speaks Redshift.
pub async fn run(
    listen: SocketAddr,
    keep: bool,
    dialect: crate::dialect::Dialect,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = EphemeralCluster::start(ClusterOptions {
        port: None,
        keep,
        redshift_like: dialect == crate::dialect::Dialect::Redshift,
    })
    .await?;
    let backend = dataset::load(&cluster).await?;
    dataset::revoke_raw_access(&cluster).await?;
    let dir = cluster
        .data_dir()
        .parent()
        .map(|p| p.join("redveil-demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("redveil-demo"));
    std::fs::create_dir_all(&dir)?;
    let certs = crate::devcert::generate(&dir)?;
    let config_path = dir.join("proxy.toml");
    std::fs::write(
        &config_path,
        catalog::proxy_toml(
            listen,
            &backend,
            &certs.server_cert,
            &certs.server_key,
            dialect,
        ),
    )?;
    let config = Config::load(&config_path)?;
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let stopper = server.stopper();
    let serving = tokio::spawn(server.serve());
    println!("redveil demo: proxy config {}", config_path.display());
    println!("backend cluster (inspect what the proxy created there):");
    println!(
        "  psql \"{}\"",
        cluster.conn_string(cluster.superuser(), cluster.superuser_password(), "demo")
    );
    println!("connect through redveil (password = user name: admin, analyst, bi_service):");
    println!(
        "  psql \"host={} port={} dbname=demo user=analyst sslmode=require\"",
        addr.ip(),
        addr.port()
    );
    println!(
        "  psql \"host=localhost port={} dbname=demo user=admin sslmode=verify-full sslrootcert={}\"",
        addr.port(),
        certs.ca_cert.display()
    );
    println!("policy views (synced at start; see `redveil explain-policy --config {} --user analyst --data-source hr.employees`):", config_path.display());
    println!("  immuta.hr_employees: admin (group hr) sees raw rows, analyst (region EU) masked EU rows, bi_service none");
    println!("redveil demo ready on {addr} (Ctrl-C to stop)");
    wait_for_signal().await;
    stopper.immediate();
    let _ = serving.await;
    cluster.shutdown();
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
