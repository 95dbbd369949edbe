//! The `redveil` binary as a separate process in front of the test cluster, for measuring
//! the proxy alone (its memory is not mixed with the test's).

use super::proxy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct SpawnedProxy {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl SpawnedProxy {
    /// Writes a config (see [`proxy::config_text`]), starts the binary, and waits until its
    /// log says where it listens.
    pub async fn start(extra: &str) -> SpawnedProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let (toml, ca) = proxy::config_text(dir.path(), extra);
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = dir.path().join("proxy.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redveil"))
            .arg("--config")
            .arg(&config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redveil");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = listening_addr(&text) {
                break addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redveil did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        SpawnedProxy {
            addr,
            ca,
            child,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// A `/proc/<pid>/status` field in kB (e.g. `VmRSS`, `VmHWM`).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub async fn connect(&self, user: &str) -> tokio_postgres::Client {
        proxy::connect_tls(
            &self.ca,
            &format!(
                "host=localhost port={} dbname=demo user={user} password={}",
                self.addr.port(),
                proxy::PASSWORD_OF(user)
            ),
        )
        .await
        .expect("connect to the spawned proxy")
    }
}

/// The address in the proxy's "redveil listening addr=…" log line.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("redveil listening"))?;
    let rest = &line[line.find("addr")? + 4..];
    let addr: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse().ok()
}
