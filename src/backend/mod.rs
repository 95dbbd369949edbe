//! Backend connections to the cluster: login (TLS, SCRAM/md5/cleartext), the raw connection
//! the relay writes to, and the pool that hands them out. Never decodes a client's DataRow.

mod conn;
mod pool;
mod prepared;
mod probe;
mod replay;

pub use conn::{BackendConn, BackendTarget};
pub use pool::{Affinity, BackendPool, Checkout, Pools};
pub use prepared::{Preparation, PreparedSet};
pub use probe::{cluster_version, EngineCell, EngineError, ProbeError, SettingsProbe};
pub use replay::{replay_sql, reset_session, rollback, Replay};

use crate::protocol::ProtocolError;

/// Why the proxy could not get or use a backend connection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("could not connect to the cluster at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to the cluster timed out")]
    ConnectTimeout,
    #[error("TLS to the cluster failed: {0}")]
    Tls(String),
    #[error("the cluster refused the login: {0}")]
    Login(String),
    #[error("cluster I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the cluster closed the connection")]
    Closed,
    #[error("the cluster broke the protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("no backend connection available within {0} ms")]
    PoolTimeout(u64),
    #[error("no backend connection could be reset for this session")]
    ResetFailed,
    /// The cluster cannot take a connection now (starting up, shutting down, too many
    /// connections), in its own words.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("the cluster did not answer in time while {0}")]
    Timeout(&'static str),
}

impl BackendError {
    /// SQLSTATE reported to a client whose statement could not be served.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            BackendError::PoolTimeout(_) => "53300",
            BackendError::Login(_) => "08004",
            BackendError::Unavailable { code, .. } => code,
            _ => "08006",
        }
    }
}
