//! Creating and configuring the cluster's files: `initdb`, the config include, the port.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::binaries::{tail, PgBinaries, Runner};
use super::ClusterError;

/// The server log, inside the data directory.
pub(crate) const LOG_FILE: &str = "postgresql.log";
/// Our settings, included from `postgresql.conf` so rewriting the port is a file write.
const CONF_FILE: &str = "redveil.conf";
/// The Unix socket directory, inside the root, so no other server's socket is ever used.
const SOCKET_DIR: &str = "sock";
/// The superuser password for `initdb --pwfile`, removed right after.
const PWFILE: &str = "pwfile";

/// Where the cluster's files live.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The temporary root; owned by the server's OS user.
    pub(crate) root: PathBuf,
    /// The PostgreSQL data directory, `root/data`.
    pub(crate) data: PathBuf,
}

/// Where to create the cluster's root: the usual temp dir, unless the server runs as
/// another OS user who could not reach it (e.g. TMPDIR under /root), then `/tmp`.
pub(crate) fn temp_parent(runner: Runner) -> PathBuf {
    let preferred = std::env::temp_dir();
    if !runner.as_postgres() {
        return preferred;
    }
    let reachable = preferred.ancestors().all(|dir| {
        std::fs::metadata(dir)
            .map(|meta| meta.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if reachable {
        preferred
    } else {
        PathBuf::from("/tmp")
    }
}

/// A fresh random password: 24 hex digits from the kernel's generator.
pub(crate) fn random_password() -> Result<String, ClusterError> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(ClusterError::io("reading random bytes", "/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `initdb` and hooks our settings file into `postgresql.conf`.
pub(crate) async fn init(
    layout: &Layout,
    binaries: &PgBinaries,
    runner: Runner,
    password: &str,
) -> Result<(), ClusterError> {
    let socket_dir = layout.root.join(SOCKET_DIR);
    std::fs::create_dir(&socket_dir).map_err(ClusterError::io("creating", &socket_dir))?;
    let pwfile = layout.root.join(PWFILE);
    write_private(&pwfile, &format!("{password}\n"))?;
    runner.chown(&layout.root).await?;

    let pwfile_arg = format!("--pwfile={}", pwfile.display());
    let args: [&OsStr; 10] = [
        "-D".as_ref(),
        layout.data.as_os_str(),
        "-U".as_ref(),
        super::SUPERUSER.as_ref(),
        pwfile_arg.as_ref(),
        "--auth-local=trust".as_ref(),
        "--auth-host=scram-sha-256".as_ref(),
        "--encoding=UTF8".as_ref(),
        "--locale=C".as_ref(),
        // Throwaway data: skip the fsync of every file initdb writes.
        "--no-sync".as_ref(),
    ];
    let result = runner.run(&layout.root, &binaries.initdb(), &args).await;
    std::fs::remove_file(&pwfile).map_err(ClusterError::io("removing", &pwfile))?;
    result?;

    let main_conf = layout.data.join("postgresql.conf");
    let mut conf =
        std::fs::read_to_string(&main_conf).map_err(ClusterError::io("reading", &main_conf))?;
    conf.push_str(&format!("\ninclude_if_exists = '{CONF_FILE}'\n"));
    std::fs::write(&main_conf, conf).map_err(ClusterError::io("writing", &main_conf))
}

/// Writes our settings with the given port; takes effect on the next start.
pub(crate) async fn write_port(
    layout: &Layout,
    runner: Runner,
    port: u16,
    extra: &[(&'static str, String)],
) -> Result<(), ClusterError> {
    let socket_dir = layout.root.join(SOCKET_DIR);
    let settings = [
        ("listen_addresses", quote("127.0.0.1")),
        ("port", port.to_string()),
        (
            "unix_socket_directories",
            quote(&socket_dir.to_string_lossy()),
        ),
        ("max_connections", "200".into()),
        ("shared_buffers", quote("32MB")),
        ("password_encryption", quote("scram-sha-256")),
        // Throwaway data: durability only costs time here.
        ("fsync", "off".into()),
        ("synchronous_commit", "off".into()),
        ("full_page_writes", "off".into()),
        // pg_ctl -l sends the server's output to the log file in the data directory.
        ("logging_collector", "off".into()),
        // LOG, not WARNING: a backend that crashed or was killed is reported at LOG, and that
        // line is what a failing test needs; checkpoints would only be noise.
        ("log_min_messages", "log".into()),
        ("log_checkpoints", "off".into()),
    ];
    let body: String = settings
        .iter()
        .chain(extra)
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let path = layout.data.join(CONF_FILE);
    std::fs::write(&path, body).map_err(ClusterError::io("writing", &path))?;
    // A previous attempt's "address in use" must not be mistaken for this one's.
    let log = layout.data.join(LOG_FILE);
    if log.exists() {
        std::fs::remove_file(&log).map_err(ClusterError::io("removing", &log))?;
    }
    runner.chown(&path).await
}

/// A port that was free a moment ago (the server may still lose a race for it).
pub(crate) fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(ClusterError::io("binding a probe socket", "127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(ClusterError::io(
            "reading the probe socket's port",
            "127.0.0.1:0",
        ))?
        .port();
    Ok(port)
}

/// Whether the last start failed because the port was taken.
pub(crate) fn is_port_collision(layout: &Layout) -> bool {
    let log = log_tail(layout);
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

/// The end of the server log, for error messages.
pub(crate) fn log_tail(layout: &Layout) -> String {
    std::fs::read_to_string(layout.data.join(LOG_FILE))
        .map(|text| tail(&text, 4000))
        .unwrap_or_default()
}

/// Polls until a TCP connection to `host:port` succeeds.
pub(crate) async fn wait_for_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect((host, port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                port,
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Creates a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> Result<(), ClusterError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(ClusterError::io("writing", path))
}
