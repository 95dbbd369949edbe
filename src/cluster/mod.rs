//! An ephemeral PostgreSQL cluster for the demo and the integration tests.
//!
//! `initdb` into a fresh temporary directory, a private port on 127.0.0.1 and a private
//! Unix socket directory, so it never touches another server on the machine. Local
//! connections are trusted, TCP ones need SCRAM-SHA-256. Everything the cluster owns
//! (server process, files) goes away on `shutdown`, on drop, and — through the
//! [watchdog] — when the owning process dies without running destructors.

mod binaries;
mod error;
mod redshift_like;
mod setup;
mod watchdog;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use binaries::{PgBinaries, Runner};
pub use error::ClusterError;
pub use redshift_like::FUNCTIONS_SQL as REDSHIFT_FUNCTIONS_SQL;
use watchdog::Watchdog;

/// The only address the cluster listens on.
const HOST: &str = "127.0.0.1";
/// The bootstrap superuser created by `initdb -U`.
const SUPERUSER: &str = "postgres";
/// Attempts at finding a free port when none was given.
const PORT_ATTEMPTS: u32 = 5;
/// How long to wait for the server to accept TCP connections after `pg_ctl` returns.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// Keep the data directory when the cluster is shut down (for debugging).
    pub keep: bool,
    /// Read and answer like Redshift where redveil depends on it (see `redshift_like`).
    pub redshift_like: bool,
}

/// A running (or stopped, see [`EphemeralCluster::stop_server`]) private PostgreSQL server.
#[derive(Debug)]
pub struct EphemeralCluster {
    /// `None` once shut down; holds the temporary root (data, socket dir).
    root: Option<TempDir>,
    root_path: PathBuf,
    data_dir: PathBuf,
    port: u16,
    password: String,
    keep: bool,
    binaries: PgBinaries,
    runner: Runner,
    watchdog: Option<Watchdog>,
    /// Settings beyond the harness's own (a Redshift-like cluster's).
    extra_settings: Vec<(&'static str, String)>,
}

impl EphemeralCluster {
    /// Creates, configures and starts a new cluster; returns once it accepts TCP connections.
    pub async fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let binaries = PgBinaries::locate()?;
        let runner = Runner::detect();
        let parent = setup::temp_parent(runner);
        let root = tempfile::Builder::new()
            .prefix("redveil-pg-")
            .tempdir_in(&parent)
            .map_err(ClusterError::io("creating the cluster directory", parent))?;
        let root_path = root.path().to_path_buf();
        let data_dir = root_path.join("data");
        // Armed before anything else exists, so a failure half-way through still cleans up.
        let watchdog =
            Watchdog::spawn(runner, &binaries.pg_ctl(), &data_dir, &root_path, opts.keep)?;
        let mut cluster = Self {
            root: Some(root),
            root_path,
            data_dir,
            port: 0,
            password: setup::random_password()?,
            keep: opts.keep,
            binaries,
            runner,
            watchdog: Some(watchdog),
            extra_settings: Vec::new(),
        };
        if opts.redshift_like {
            let module = redshift_like::build_module(&cluster.root_path).await?;
            cluster.extra_settings = redshift_like::settings(&module);
        }
        setup::init(
            &cluster.layout(),
            &cluster.binaries,
            runner,
            &cluster.password,
        )
        .await?;
        cluster.start_on_port(opts.port).await?;
        if opts.redshift_like {
            for database in ["template1", "postgres"] {
                cluster
                    .connect_superuser(database)
                    .await?
                    .batch_execute(redshift_like::FUNCTIONS_SQL)
                    .await
                    .map_err(ClusterError::postgres("installing the Redshift functions"))?;
            }
        }
        Ok(cluster)
    }

    fn layout(&self) -> setup::Layout {
        setup::Layout {
            root: self.root_path.clone(),
            data: self.data_dir.clone(),
        }
    }

    /// Starts on the given port, or on free ports until one works.
    async fn start_on_port(&mut self, port: Option<u16>) -> Result<(), ClusterError> {
        if let Some(port) = port {
            self.port = port;
            setup::write_port(&self.layout(), self.runner, port, &self.extra_settings).await?;
            return self.start_server().await;
        }
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = setup::free_port()?;
            setup::write_port(&self.layout(), self.runner, self.port, &self.extra_settings).await?;
            match self.start_server().await {
                Ok(()) => return Ok(()),
                // Someone took the port between our probe and the server's bind.
                Err(e) if setup::is_port_collision(&self.layout()) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(ClusterError::NoFreePort {
            attempts: PORT_ATTEMPTS,
            source: Box::new(last.unwrap_or(ClusterError::NotReady {
                port: self.port,
                seconds: 0,
            })),
        })
    }

    /// Always "127.0.0.1".
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL data directory (its log is `postgresql.log` in there).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether it reads and answers like Redshift (see `redshift_like`).
    pub fn is_redshift_like(&self) -> bool {
        !self.extra_settings.is_empty()
    }

    /// The server's log file (appended to across restarts).
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join(setup::LOG_FILE)
    }

    /// The last few kilobytes of the server's log, for a failure report.
    pub fn log_tail(&self) -> String {
        setup::log_tail(&self.layout())
    }

    /// The bootstrap superuser's name.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The bootstrap superuser's password (random per cluster).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// A libpq key=value connection string for this cluster over TCP.
    pub fn conn_string(&self, user: &str, password: &str, dbname: &str) -> String {
        format!(
            "host={HOST} port={} user={} password={} dbname={}",
            self.port,
            conn_value(user),
            conn_value(password),
            conn_value(dbname)
        )
    }

    /// Connects as the superuser over TCP (SCRAM); the connection task runs on the
    /// current runtime.
    pub async fn connect_superuser(
        &self,
        dbname: &str,
    ) -> Result<tokio_postgres::Client, ClusterError> {
        let conn_str = self.conn_string(SUPERUSER, &self.password, dbname);
        let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
            .await
            .map_err(ClusterError::postgres(format!(
                "connecting as {SUPERUSER} to {dbname} on {HOST}:{}",
                self.port
            )))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "superuser connection ended");
            }
        });
        Ok(client)
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data and port.
    pub async fn stop_server(&self) -> Result<(), ClusterError> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).await.map(drop)
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub async fn start_server(&self) -> Result<(), ClusterError> {
        self.start_with(&[]).await
    }

    /// Starts the server with `postgres` run under `wrapper` (for instance
    /// `valgrind --tool=callgrind`), for benches that count what the server executes. Slow:
    /// waits up to five minutes. [`Self::start_server`] goes back to the plain binary.
    pub async fn start_server_under(&self, wrapper: &[&str]) -> Result<(), ClusterError> {
        use std::os::unix::fs::PermissionsExt;
        let script = self.root_path.join("postgres-under-wrapper.sh");
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let command: Vec<String> = wrapper
            .iter()
            .map(|w| quote(w))
            .chain([quote(&self.binaries.postgres().to_string_lossy())])
            .collect();
        let io = |source| ClusterError::Io {
            context: "writing the postgres wrapper script",
            path: script.clone(),
            source,
        };
        std::fs::write(
            &script,
            format!("#!/bin/sh\nexec {} \"$@\"\n", command.join(" ")),
        )
        .map_err(io)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        let script = script.to_string_lossy().into_owned();
        self.start_with(&["-t", "300", "-p", &script]).await
    }

    async fn start_with(&self, extra: &[&str]) -> Result<(), ClusterError> {
        let log = self.data_dir.join(setup::LOG_FILE);
        let log = log.to_string_lossy();
        let mut args = vec!["start", "-w", "-t", "60", "-l", &log];
        args.extend_from_slice(extra);
        let started = self.pg_ctl(&args).await;
        if let Err(ClusterError::CommandFailed {
            program,
            status,
            output,
        }) = started
        {
            let log_tail = setup::log_tail(&self.layout());
            return Err(ClusterError::CommandFailed {
                program,
                status,
                output: format!("{output}\n--- server log ---\n{log_tail}"),
            });
        }
        started?;
        setup::wait_for_tcp(HOST, self.port, READY_TIMEOUT).await
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<std::process::Output, ClusterError> {
        let mut argv: Vec<&OsStr> = vec!["-D".as_ref(), self.data_dir.as_os_str()];
        argv.extend(args.iter().map(|a| OsStr::new(*a)));
        self.runner
            .run(&self.root_path, &self.binaries.pg_ctl(), &argv)
            .await
    }

    /// Stops the server immediately and removes the directory unless `keep`; idempotent.
    pub fn shutdown(&mut self) {
        let Some(root) = self.root.take() else {
            return;
        };
        if self.data_dir.join("postmaster.pid").exists() {
            let args: [&OsStr; 6] = [
                "stop".as_ref(),
                "-D".as_ref(),
                self.data_dir.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
            ];
            if let Err(e) = self
                .runner
                .run_blocking(Path::new("/"), &self.binaries.pg_ctl(), &args)
            {
                tracing::warn!(error = %e, "stopping the ephemeral cluster failed");
            }
        }
        if self.keep {
            let kept = root.keep();
            tracing::info!(dir = %kept.display(), "kept the ephemeral cluster's directory");
        } else if let Err(e) = root.close() {
            tracing::warn!(error = %e, "removing the ephemeral cluster's directory failed");
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
    }
}

impl Drop for EphemeralCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Quotes a libpq connection-string value when it needs it.
fn conn_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        return value.to_string();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

#[cfg(test)]
mod tests {
    use super::conn_value;

    #[test]
    fn conn_values_are_quoted_when_needed() {
        assert_eq!(conn_value("demo"), "demo");
        assert_eq!(conn_value(""), "''");
        assert_eq!(conn_value("a b"), "'a b'");
        assert_eq!(conn_value(r"it's\x"), r"'it\'s\\x'");
    }
}
