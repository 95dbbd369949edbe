//! proxy.toml: parsing, defaults, validation and environment overrides. Every problem is
//! reported with the key it concerns and the line it is on; nothing here touches a socket.

mod catalog;
mod impersonation;
mod locate;
mod sections;

pub use catalog::{
    ControlConfig, DataSourceConfig, MaskConfig, NumberConfig, RowRuleConfig, SubscriptionConfig,
    UserConfig, ViewsConfig,
};
pub use impersonation::ImpersonationConfig;
pub use sections::*;

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub views: ViewsConfig,
    #[serde(default)]
    pub data_sources: Vec<DataSourceConfig>,
    #[serde(default)]
    pub impersonation: ImpersonationConfig,
    #[serde(default)]
    pub control: ControlConfig,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `users[1].password`.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", origin.display(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        origin: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Every problem found, for callers that report them one per line.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl Config {
    /// Reads, parses and validates a file. Relative paths inside it are resolved against the
    /// file's directory so the proxy can be started from anywhere.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        if let Some(dir) = path.parent() {
            config.resolve_relative_paths(dir);
        }
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` only names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| locate::line_at(text, s.start));
            invalid(vec![Problem {
                key: "(syntax)".into(),
                line,
                message: e.message().trim().to_string(),
            }])
        })?;
        let problems: Vec<Problem> = config
            .validate()
            .into_iter()
            .map(|(key, message)| Problem {
                line: locate::line_of(text, &key),
                key,
                message,
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(invalid(problems))
        }
    }

    /// Semantic checks serde cannot express, as (key path, message) pairs.
    fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| problems.push((key.to_string(), message));
        if self.tls.mode != TlsMode::Disable {
            if self.tls.cert.is_none() {
                bad("tls.cert", "required unless tls.mode = \"disable\"".into());
            }
            if self.tls.key.is_none() {
                bad("tls.key", "required unless tls.mode = \"disable\"".into());
            }
        }
        if self.listen.max_connections == 0 {
            bad("listen.max_connections", "must be at least 1".into());
        }
        if self.pool.size == 0 {
            bad("pool.size", "must be at least 1".into());
        }
        if self.pool.min_idle > self.pool.size {
            bad(
                "pool.min_idle",
                format!("exceeds pool.size ({})", self.pool.size),
            );
        }
        if self.pool.reuse == PoolReuse::Never && self.pool.mode != PoolMode::Session {
            bad(
                "pool.reuse",
                "\"never\" needs pool.mode = \"session\" (a connection per transaction would \
                 mean a login per transaction)"
                    .into(),
            );
        }
        if self.pool.checkout_timeout_ms == 0 {
            bad("pool.checkout_timeout_ms", "must be positive".into());
        }
        if self.pool.prepared_statements_per_connection == 0 {
            bad(
                "pool.prepared_statements_per_connection",
                "must be at least 1".into(),
            );
        }
        if self.limits.max_buffered_bytes < 1 << 20 {
            bad(
                "limits.max_buffered_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if self.limits.max_client_message_bytes < 1024 {
            bad(
                "limits.max_client_message_bytes",
                "must be at least 1024".into(),
            );
        }
        if let Some(listen) = &self.metrics.listen {
            match listen.parse::<std::net::SocketAddr>() {
                Err(_) => bad(
                    "metrics.listen",
                    format!("{listen:?} is not IP:port, e.g. \"127.0.0.1:9187\""),
                ),
                // The exporter cannot tell which port it was given, so nobody could scrape it.
                Ok(addr) if addr.port() == 0 => bad(
                    "metrics.listen",
                    "port 0 is not allowed here: give the port to scrape".into(),
                ),
                Ok(_) => {}
            }
        }
        if self.backend.tls == BackendTlsMode::VerifyFull && self.backend.ca_cert.is_none() {
            bad(
                "backend.ca_cert",
                "required when backend.tls = \"verify-full\"".into(),
            );
        }
        if let Some(name) = &self.backend.password_env {
            if std::env::var_os(name).is_none() {
                bad(
                    "backend.password_env",
                    format!("environment variable {name} is not set"),
                );
            }
        }
        if let Some(version) = &self.backend.server_version {
            if version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
                bad(
                    "backend.server_version",
                    "must start with a version number, e.g. \"15.4\"".into(),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.name.is_empty() {
                bad(&format!("users[{i}].name"), "must not be empty".into());
            }
            if !seen.insert(user.name.as_str()) {
                bad(
                    &format!("users[{i}].name"),
                    format!("user {:?} is defined twice", user.name),
                );
            }
            if let Err(e) = user.password.parse::<crate::auth::ScramVerifier>() {
                bad(
                    &format!("users[{i}].password"),
                    format!("not a SCRAM-SHA-256 verifier ({e}); `redveil passwd` prints one"),
                );
            }
            if let Some(md5) = &user.md5 {
                if !is_md5_verifier(md5) {
                    bad(
                        &format!("users[{i}].md5"),
                        "must be \"md5\" followed by 32 hex digits".into(),
                    );
                }
            }
            if user.md5.is_none() {
                // Without a verifier the user could never log in by md5: say so now rather
                // than fail every such login as a wrong password.
                let needed_by = if self.auth.method == AuthMethod::Md5 {
                    Some("auth.method")
                } else if self.auth.redshift_driver_method == AuthMethod::Md5 {
                    Some("auth.redshift_driver_method")
                } else {
                    None
                };
                if let Some(key) = needed_by {
                    bad(
                        &format!("users[{i}].md5"),
                        format!("required when {key} = \"md5\""),
                    );
                }
            }
        }
        if self.control.pool_size == 0 {
            bad("control.pool_size", "must be at least 1".into());
        }
        if let Some(name) = &self.control.password_env {
            if std::env::var_os(name).is_none() {
                bad(
                    "control.password_env",
                    format!("environment variable {name} is not set"),
                );
            }
        }
        if let Err(catalog_problems) = crate::policy::Catalog::from_config(self) {
            problems.extend(catalog_problems);
        }
        problems
    }

    /// The backend password after applying `password_env`.
    pub fn backend_password(&self) -> Option<String> {
        self.backend
            .password_env
            .as_ref()
            .and_then(std::env::var_os)
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| self.backend.password.clone())
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        for path in [
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.backend.ca_cert,
            &mut self.audit.path,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Looks up a configured user by login name.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }
}

fn is_md5_verifier(value: &str) -> bool {
    value.len() == 35
        && value.starts_with("md5")
        && value[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests;
