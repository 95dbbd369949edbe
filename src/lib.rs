//! redveil: a policy-enforcing proxy for Amazon Redshift and PostgreSQL.
//!
//! Layout (see DESIGN.md, "Rooms"):
//! - `config`: proxy.toml parsing and validation.
//! - `protocol`: the wire protocol without I/O (framing, the messages the proxy reads or writes).
//! - `audit`: JSON-lines audit records through a bounded buffer.
//! - `auth`: authentication crypto (SCRAM-SHA-256(-PLUS) server and client, md5, channel binding).
//! - `net`: a TCP stream that may be TLS.
//! - `backend`: raw backend connections, their login, and the pool that chooses among them.
//! - `session`: per-client state (statements, settings, transaction status, pipeline).
//! - `dialect`: every spelling that differs between Redshift and PostgreSQL.
//! - `rewrite`: SQL understanding on the query path, no I/O.
//! - `intercept`: impersonation statements the proxy answers itself.
//! - `policy`: the catalog model, the view compiler and the sync of views and profile.
//! - `tls`: rustls configuration (ring provider).
//! - `frontend`: the client edge (TLS negotiation, startup, authentication, cancel keys).
//! - `proxy`: the per-client relay loop and transaction pooling.
//! - `server`: the accept loop, shared state and shutdown.
//! - `admin`: the Prometheus `/metrics` endpoint.
//! - `cluster`, `demo`, `devcert`: the ephemeral PostgreSQL, demo dataset and dev certificates
//!   behind `redveil demo` and the integration tests.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod devcert;
pub mod dialect;
pub mod frontend;
pub mod intercept;
pub mod net;
pub mod policy;
pub mod protocol;
pub mod proxy;
pub mod rewrite;
pub mod server;
pub mod session;
pub mod tls;
