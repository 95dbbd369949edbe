//! The control path (DESIGN.md decision 2): a bb8-postgres pool of tokio-postgres connections
//! logged in as the system role, used for sync and catalog reads. It speaks to the same cluster
//! as the query pool, with the same TLS settings, but never carries client traffic.

use crate::config::{BackendTlsMode, Config};
use bb8_postgres::PostgresConnectionManager;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A pool of system-role connections to one database.
pub type ControlPool = bb8::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control-path TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot connect to database {database} as {user}: {source}")]
    Connect {
        database: String,
        user: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Control pools by database, opened on first use and shared by every session (the query
/// path mints and retires impersonation tokens through them, see tokens.rs).
pub struct ControlPools {
    config: std::sync::Arc<Config>,
    pools: tokio::sync::Mutex<std::collections::HashMap<String, ControlPool>>,
}

impl ControlPools {
    pub fn new(config: std::sync::Arc<Config>) -> Self {
        Self {
            config,
            pools: Default::default(),
        }
    }

    pub async fn get(&self, database: &str) -> Result<ControlPool, ControlError> {
        let mut pools = self.pools.lock().await;
        if let Some(found) = pools.get(database) {
            return Ok(found.clone());
        }
        let made = pool(&self.config, database).await?;
        pools.insert(database.to_string(), made.clone());
        Ok(made)
    }
}

/// A pool for `database`, connected (the first connection is made before returning, so a
/// wrong password is reported here rather than at first use).
pub async fn pool(config: &Config, database: &str) -> Result<ControlPool, ControlError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.backend.host)
        .port(config.backend.port)
        .dbname(database)
        .user(&config.control.user)
        .application_name("redveil-control")
        .connect_timeout(Duration::from_secs(config.backend.connect_timeout_s.max(1)));
    if let Some(password) = config.control.resolved_password() {
        pg.password(password);
    }
    let tls = match config.backend.tls {
        BackendTlsMode::Disable => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            crate::tls::backend_config(None)?
        }
        BackendTlsMode::Require => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            crate::tls::backend_config(None)?
        }
        BackendTlsMode::VerifyFull => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            crate::tls::backend_config(config.backend.ca_cert.as_deref())?
        }
    };
    let manager = PostgresConnectionManager::new(pg, MakeRustlsConnect::new((*tls).clone()));
    let connect_error = |source| ControlError::Connect {
        database: database.to_string(),
        user: config.control.user.clone(),
        source,
    };
    bb8::Pool::builder()
        .max_size(config.control.pool_size)
        .connection_timeout(Duration::from_secs(config.backend.connect_timeout_s.max(1)))
        .build(manager)
        .await
        .map_err(connect_error)
}
