//! Errors of the ephemeral cluster: each variant says which step failed and keeps the cause.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while creating, starting, stopping or querying an
/// ephemeral cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable PostgreSQL server installation was found.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres, pg_ctl) found; looked in {searched}. \
         Run scripts/install-deps.sh to install them"
    )]
    NoBinaries {
        /// The places that were inspected, for the message.
        searched: String,
    },

    /// A filesystem operation failed.
    #[error("{context}: {path}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program could not be started at all.
    #[error("could not run {program}")]
    Spawn {
        /// The program (and the wrapper, when run through runuser).
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program ran and failed.
    #[error("{program} failed ({status}): {output}")]
    CommandFailed {
        /// The program that failed.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// The tail of its output and, for the server, of its log file.
        output: String,
    },

    /// No free TCP port could be bound after several attempts.
    #[error("could not start the server on a free port after {attempts} attempts")]
    NoFreePort {
        /// How many ports were tried.
        attempts: u32,
        /// The last start failure.
        #[source]
        source: Box<ClusterError>,
    },

    /// The server started but did not accept TCP connections in time.
    #[error("server on 127.0.0.1:{port} did not accept connections within {seconds} s")]
    NotReady {
        /// The port we polled.
        port: u16,
        /// How long we waited.
        seconds: u64,
    },

    /// A SQL statement or connection failed.
    #[error("{context}")]
    Postgres {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ClusterError {
    /// Wraps an I/O error with what we were doing and on which path.
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ClusterError::Io {
            context,
            path,
            source,
        }
    }

    /// Wraps a database error with what we were doing.
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| ClusterError::Postgres { context, source }
    }
}
