//! redveil: a policy-enforcing proxy for Amazon Redshift and PostgreSQL.
//!
//! Layout (see DESIGN.md, "Rooms"):
//! - `config`: proxy.toml parsing and validation.
//! - `auth`: authentication crypto (SCRAM-SHA-256(-PLUS) server and client, md5, channel binding).

pub mod auth;
