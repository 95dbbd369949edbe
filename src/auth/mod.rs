//! Authentication crypto for both edges of the proxy: SCRAM-SHA-256(-PLUS) server and client,
//! PostgreSQL's md5 scheme, SCRAM verifiers in `pg_authid` format, and `tls-server-end-point`
//! channel binding data.
//!
//! Invariants:
//! - Pure: no I/O, no async, no logging. Callers own sockets and framing.
//! - Every byte received from a peer is untrusted: malformed input yields an [`AuthError`],
//!   never a panic.
//! - An unknown user is indistinguishable from a wrong password (same messages, same work, same
//!   error): the server side runs against a mock secret derived from [`mock_key`].
//! - Secrets are compared in constant time.

mod channel_binding;
mod md5;
mod scram_client;
mod scram_common;
mod scram_server;
mod verifier;

#[cfg(test)]
mod scram_tests;

pub use channel_binding::tls_server_end_point;
pub use md5::{md5_client_response, md5_login_response, md5_mock_stored, md5_stored, md5_verify};
pub use scram_client::ScramClient;
pub use scram_server::{mechanisms, ScramServer, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
pub use verifier::{ScramVerifier, VerifierParseError, DEFAULT_ITERATIONS};

use std::sync::OnceLock;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Why an authentication exchange stopped. Map to the client with [`AuthError::sqlstate`] and the
/// `Display` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown user, or anything else that must not tell them apart.
    #[error("password authentication failed")]
    Failed,
    /// A SCRAM message that does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for a SASL mechanism we did not offer.
    #[error("client selected an invalid SASL authentication mechanism")]
    InvalidMechanism,
    /// Channel binding negotiation or verification failed (includes downgrade attempts).
    #[error("SCRAM channel binding check failed: {0}")]
    ChannelBinding(&'static str),
    /// The nonce in client-final (or server-first) does not extend the agreed nonce.
    #[error("invalid SCRAM response: nonce does not match")]
    NonceMismatch,
    /// A valid but unsupported SCRAM feature (authzid, mandatory extensions).
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
    /// A method was called in the wrong phase of the exchange (or after a failure).
    #[error("SCRAM exchange step out of order")]
    OutOfOrder,
    /// Client side: the server refused the exchange with an `e=` attribute.
    #[error("server rejected SCRAM authentication: {0}")]
    ServerRejected(String),
    /// Client side: the server's signature is wrong, so it does not know our secret.
    #[error("server SCRAM signature is invalid")]
    ServerSignature,
    /// Client side: the server offers no mechanism we can use.
    #[error("no supported SASL mechanism offered by the server")]
    NoMechanism,
}

impl AuthError {
    /// SQLSTATE to send in the ErrorResponse for this failure.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AuthError::Failed | AuthError::ServerRejected(_) | AuthError::ServerSignature => {
                "28P01"
            }
            AuthError::Unsupported(_) | AuthError::NoMechanism => "0A000",
            AuthError::Malformed(_)
            | AuthError::InvalidMechanism
            | AuthError::ChannelBinding(_)
            | AuthError::NonceMismatch
            | AuthError::OutOfOrder => "08P01",
        }
    }
}

/// Per-process key for deriving mock secrets of unknown users.
///
/// Random per process so mock salts cannot be precomputed, yet stable within the process so an
/// attacker probing the same unknown name twice sees the same salt, as for a real user.
pub(crate) fn mock_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // SystemRandom only fails when the OS has no entropy source; without one no secret in
        // this process would be safe, so refusing to continue is the only sound answer.
        SystemRandom::new()
            .fill(&mut secret)
            .expect("operating system random source unavailable");
        hmac::Key::new(hmac::HMAC_SHA256, &secret)
    })
}

/// Deterministic per-user mock material: HMAC(mock key, purpose || 0 || user).
pub(crate) fn mock_material(purpose: &str, user: &str) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(mock_key());
    ctx.update(purpose.as_bytes());
    ctx.update(&[0]);
    ctx.update(user.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(AuthError::Failed.sqlstate(), "28P01");
        assert_eq!(AuthError::Malformed("x").sqlstate(), "08P01");
        assert_eq!(AuthError::NonceMismatch.sqlstate(), "08P01");
        assert_eq!(AuthError::ChannelBinding("x").sqlstate(), "08P01");
        assert_eq!(
            AuthError::Failed.to_string(),
            "password authentication failed"
        );
    }

    #[test]
    fn mock_material_is_stable_and_user_specific() {
        assert_eq!(mock_material("salt", "a"), mock_material("salt", "a"));
        assert_ne!(mock_material("salt", "a"), mock_material("salt", "b"));
        assert_ne!(mock_material("salt", "a"), mock_material("keys", "a"));
    }
}
