//! Starts an ephemeral cluster with the demo dataset and waits for Ctrl-C.
//!
//! `cargo run --example ephemeral_cluster [-- --keep]`; prints a psql command line.

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::demo::dataset;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::args().any(|a| a == "--keep");
    let mut cluster = EphemeralCluster::start(ClusterOptions {
        port: None,
        keep,
        ..Default::default()
    })
    .await?;
    let demo = dataset::load(&cluster).await?;
    println!("pid {}", std::process::id());
    println!("data dir {}", cluster.data_dir().display());
    println!("psql \"{}\"", demo.query_conn_string(&cluster));
    tokio::signal::ctrl_c().await?;
    cluster.shutdown();
    Ok(())
}
