//! No cluster outlives its process: kill -9 a process that owns one, and the watchdog
//! stops the server and removes its directory.
//!
//! The test re-runs its own binary with only `owner_process` selected and an environment
//! variable set; that child starts a cluster, reports it on stdout and waits to be killed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redveil::cluster::{ClusterOptions, EphemeralCluster};

const CHILD_ENV: &str = "REDVEIL_WATCHDOG_CHILD";

/// Only does something inside the child process started by `killed_owner_leaves_nothing`.
#[tokio::test]
async fn owner_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = EphemeralCluster::start(ClusterOptions::default())
        .await
        .expect("child starts a cluster");
    println!(
        "CLUSTER port={} dir={}",
        cluster.port(),
        cluster.data_dir().display()
    );
    // Leak it, as a static would be: only the watchdog can clean up now.
    std::mem::forget(cluster);
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[test]
fn killed_owner_leaves_nothing() {
    let exe = std::env::current_exe().expect("own test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "owner_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the owner process");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test owner_process ... " on the same line first.
        .find_map(|line| line.find("CLUSTER ").map(|at| line[at..].to_string()))
        .expect("the child reports its cluster");
    let (port, data_dir) = parse(&line);
    assert!(data_dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    child.kill().expect("SIGKILL the owner");
    child.wait().expect("reap the owner");

    let deadline = Instant::now() + Duration::from_secs(20);
    let root = data_dir
        .parent()
        .expect("data dir has a root")
        .to_path_buf();
    while root.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "cluster on port {port} in {} outlived its owner",
            root.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parse(line: &str) -> (u16, PathBuf) {
    let mut port = None;
    let mut dir = None;
    for field in line.split_whitespace() {
        if let Some(v) = field.strip_prefix("port=") {
            port = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("dir=") {
            dir = Some(PathBuf::from(v));
        }
    }
    (port.expect("port in report"), dir.expect("dir in report"))
}
