//! redveil: a policy-enforcing proxy for Amazon Redshift and PostgreSQL.
//!
//! Layout (see DESIGN.md, "Rooms"):
//! - `config`: proxy.toml parsing and validation.
