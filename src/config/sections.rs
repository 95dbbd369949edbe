//! The sections of proxy.toml. Every field is documented here, has a default where one is
//! sensible, and rejects unknown keys so a typo never silently falls back to a default.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[listen]`: where clients connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Address and port the proxy accepts clients on.
    pub address: SocketAddr,
    /// Most client connections held at once; further ones wait in the accept backlog.
    pub max_connections: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 5439)),
            max_connections: 10_000,
        }
    }
}

/// Whether clients must, may or cannot use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Cleartext startups are refused with 28000.
    #[default]
    Require,
    /// TLS offered; cleartext accepted.
    Prefer,
    /// SSLRequest is declined.
    Disable,
}

/// `[tls]`: the certificate clients see.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `require` (default), `prefer` or `disable`.
    pub mode: TlsMode,
    /// PEM certificate chain (leaf first). Required unless mode is `disable`.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Required unless mode is `disable`.
    pub key: Option<PathBuf>,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// SCRAM-SHA-256, plus SCRAM-SHA-256-PLUS on TLS connections.
    #[default]
    ScramSha256,
    /// md5 challenge; needs an `md5` verifier on the user.
    Md5,
    /// Cleartext password, checked against the SCRAM verifier; only over TLS unless
    /// `allow_cleartext_without_tls` says otherwise.
    Password,
}

/// `[auth]`: client authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Method offered to clients.
    pub method: AuthMethod,
    /// Method offered to Amazon's Redshift drivers (recognised by their startup parameters);
    /// redshift_connector cannot complete SCRAM, so the default is a cleartext password over TLS.
    pub redshift_driver_method: AuthMethod,
    /// Permit cleartext passwords on connections without TLS. Never do this outside tests.
    pub allow_cleartext_without_tls: bool,
    /// Every failed login waits this long before its error, so timing reveals nothing.
    pub failure_delay_ms: u64,
    /// Each further recent failure from the same address adds this much delay.
    pub failure_backoff_ms: u64,
    /// Upper bound on the per-address delay.
    pub max_failure_delay_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            method: AuthMethod::ScramSha256,
            redshift_driver_method: AuthMethod::Password,
            allow_cleartext_without_tls: false,
            failure_delay_ms: 200,
            failure_backoff_ms: 250,
            max_failure_delay_ms: 5_000,
        }
    }
}

/// TLS from the proxy to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendTlsMode {
    /// Plain TCP (loopback or a trusted network).
    #[default]
    Disable,
    /// TLS without certificate verification.
    Require,
    /// TLS, certificate verified against `ca_cert` and the host name.
    VerifyFull,
}

/// `[backend]`: the cluster and how the proxy logs in to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Host name or address of the cluster.
    pub host: String,
    /// Port of the cluster.
    pub port: u16,
    /// Database used when a client names none.
    pub database: String,
    /// The query role: the pool's login.
    pub user: String,
    /// Its password (prefer `password_env`).
    pub password: Option<String>,
    /// Name of an environment variable holding the password; wins over `password`.
    pub password_env: Option<String>,
    /// TLS to the cluster.
    pub tls: BackendTlsMode,
    /// CA bundle for `tls = "verify-full"`.
    pub ca_cert: Option<PathBuf>,
    /// `server_version` reported to clients; default: the backend's, cut to `major.minor`.
    pub server_version: Option<String>,
    /// Seconds to wait for a TCP connection and login to the cluster.
    pub connect_timeout_s: u64,
    /// `auto`, `postgres` or `redshift`: the SQL the proxy writes and how it reads clients'.
    pub dialect: crate::dialect::DialectSetting,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "postgres".into(),
            user: "redveil_query".into(),
            password: None,
            password_env: None,
            tls: BackendTlsMode::Disable,
            ca_cert: None,
            server_version: None,
            connect_timeout_s: 10,
            dialect: Default::default(),
        }
    }
}

/// When a client gives its backend connection back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// From the first statement of a transaction to its end.
    #[default]
    Transaction,
    /// For the whole client connection.
    Session,
}

/// Which idle backend connection a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolReuse {
    /// The client's own last connection, then one of its identity, then a clean one: the
    /// fewest replays and resets.
    #[default]
    Affinity,
    /// The least recently used of those that need no reset: every connection takes turns,
    /// so a client's prepared statements are re-prepared on each (what tests of
    /// re-preparation need).
    Rotate,
    /// Session mode only: a connection serves one client and is closed when it leaves, so
    /// every client starts on a backend no one used before, as a direct connection would
    /// (its session counted, no library loaded, no temporary schema yet).
    Never,
}

/// `[pool]`: backend connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// `transaction` (default) or `session`.
    pub mode: PoolMode,
    /// Most backend connections per database.
    pub size: u32,
    /// Idle connections kept open.
    pub min_idle: u32,
    /// How long a client waits for a backend connection before 53300.
    pub checkout_timeout_ms: u64,
    /// Idle connections are closed after this many seconds (0 = never).
    pub idle_timeout_s: u64,
    /// Connections are replaced after this many seconds (0 = never).
    pub max_lifetime_s: u64,
    /// Prepared statements the proxy keeps per backend connection before closing the least
    /// recently used.
    pub prepared_statements_per_connection: usize,
    /// Run rewritten statements a client sends unnamed as proxy-named statements, prepared once
    /// per backend connection, so policy views are planned once per connection.
    pub cache_rewritten_plans: bool,
    /// Which idle connection a client gets (see `PoolReuse`).
    pub reuse: PoolReuse,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            mode: PoolMode::Transaction,
            size: 20,
            min_idle: 0,
            checkout_timeout_ms: 5_000,
            idle_timeout_s: 600,
            max_lifetime_s: 3_600,
            prepared_statements_per_connection: 256,
            cache_rewritten_plans: true,
            reuse: PoolReuse::Affinity,
        }
    }
}

/// `[limits]`: protection against slow, idle and hostile clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A client must finish TLS and authentication within this many milliseconds.
    pub startup_timeout_ms: u64,
    /// Close clients idle outside a transaction for this many seconds (0 = off).
    pub idle_client_timeout_s: u64,
    /// Close clients idle inside a transaction for this many seconds (0 = off).
    pub idle_in_transaction_timeout_s: u64,
    /// A client holding a backend connection that takes no reply for this many seconds is
    /// disconnected (0 = never).
    pub client_write_timeout_s: u64,
    /// Largest message a client may send, in bytes (PostgreSQL's own limit is 1 GiB).
    pub max_client_message_bytes: usize,
    /// What all clients' large messages held whole (Query, Parse) may take together; one
    /// that does not fit is refused with 53200. Default: a quarter of the machine's memory.
    pub max_buffered_bytes: usize,
    /// On SIGTERM, open transactions get this many seconds to finish.
    pub shutdown_timeout_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            startup_timeout_ms: 10_000,
            idle_client_timeout_s: 0,
            idle_in_transaction_timeout_s: 0,
            client_write_timeout_s: 60,
            max_client_message_bytes: 1 << 30,
            max_buffered_bytes: default_buffer_budget(),
            shutdown_timeout_s: 30,
        }
    }
}

/// A quarter of the machine's memory (1 GiB where /proc/meminfo cannot be read), at least
/// 64 MiB.
fn default_buffer_budget() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
        });
    match total_kib {
        Some(kib) => (kib * 1024 / 4).max(64 << 20),
        None => 1 << 30,
    }
}

/// `[log]`: diagnostics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `redveil=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// `[audit]`: JSON-lines audit records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// File the records are appended to; no audit file when unset.
    pub path: Option<PathBuf>,
    /// Records that may wait for the writer before new ones are dropped (and counted).
    pub buffer: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            buffer: 10_000,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:port` serving the proxy's counters in Prometheus' text format over plain HTTP
    /// (e.g. `127.0.0.1:9187`); no endpoint when unset. Checked by `Config::validate`.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The endpoint's address, once validation has accepted it.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|a| a.parse().ok())
    }
}
