//! redveil: a policy-enforcing proxy for Amazon Redshift and PostgreSQL.
//!
//! Layout (see DESIGN.md, "Rooms"):
//! - `config`: proxy.toml parsing and validation.
//! - `protocol`: the wire protocol without I/O (framing, the messages the proxy reads or writes).

pub mod protocol;
