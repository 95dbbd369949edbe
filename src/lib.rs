//! redveil: a policy-enforcing proxy for Amazon Redshift and PostgreSQL.
//!
//! Layout (see DESIGN.md, "Rooms"):
//! - `config`: proxy.toml parsing and validation.
//! - `cluster`: an ephemeral PostgreSQL server for the demo and the tests.
//! - `demo`: the demo's backend data.
//! - `devcert`: a development CA and server certificate.

pub mod cluster;
pub mod demo;
pub mod devcert;
