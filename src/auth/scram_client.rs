//! Client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677), used by the proxy to log into its
//! PostgreSQL backend. No channel binding: gs2 header `n,,`, mechanism SCRAM-SHA-256 only.
//!
//! Invariants: the exchange succeeds only after the server proved knowledge of the password
//! (server signature checked in constant time); any error ends the exchange.

use super::scram_common::{
    attr, b64, client_key, ct_eq, hmac_sha256, is_printable, message_str, new_nonce,
    normalize_password, salted_password, server_key, sha256, unb64, xor, KEY_LEN,
};
use super::scram_server::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use super::AuthError;
use std::num::NonZeroU32;

const GS2_HEADER: &str = "n,,";

/// One client-side SCRAM exchange.
pub struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

enum State {
    Initial,
    AwaitingServerFirst,
    AwaitingServerFinal { server_signature: [u8; KEY_LEN] },
    Done,
}

impl ScramClient {
    pub fn new(password: &str) -> Self {
        // Like libpq, send an empty user name: PostgreSQL takes it from the startup packet.
        Self::with_user_and_nonce(password, "", &new_nonce())
    }

    /// Fixed user and nonce, for reproducing published test vectors.
    pub(crate) fn with_user_and_nonce(password: &str, user: &str, nonce: &str) -> Self {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: normalize_password(password).to_vec(),
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={user},r={nonce}"),
            state: State::Initial,
        }
    }

    /// Picks the mechanism to answer AuthenticationSASL with. A server offering only
    /// SCRAM-SHA-256-PLUS requires channel binding, which this client does not do.
    pub fn choose_mechanism<'a>(
        offered: impl IntoIterator<Item = &'a str>,
    ) -> Result<&'static str, AuthError> {
        let mut plus_only = false;
        for mechanism in offered {
            if mechanism == SCRAM_SHA_256 {
                return Ok(SCRAM_SHA_256);
            }
            plus_only |= mechanism == SCRAM_SHA_256_PLUS;
        }
        Err(if plus_only {
            AuthError::Unsupported("server requires SCRAM-SHA-256-PLUS (channel binding)")
        } else {
            AuthError::NoMechanism
        })
    }

    /// client-first-message, to send in SASLInitialResponse with mechanism SCRAM-SHA-256.
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = State::AwaitingServerFirst;
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Consumes server-first-message (AuthenticationSASLContinue); returns client-final-message.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(
            std::mem::replace(&mut self.state, State::Done),
            State::AwaitingServerFirst
        ) {
            return Err(AuthError::OutOfOrder);
        }
        let text = message_str(message)?;
        let mut parts = text.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(AuthError::Unsupported("mandatory SCRAM extension"));
        }
        let nonce = attr(first, b'r', "expected nonce attribute")?;
        let salt = attr(parts.next(), b's', "expected salt attribute")?;
        let iterations = attr(parts.next(), b'i', "expected iteration count attribute")?;
        // Trailing extensions are allowed by RFC 5802 and carry nothing we use.

        if !is_printable(nonce) {
            return Err(AuthError::Malformed("non-printable characters in nonce"));
        }
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(AuthError::NonceMismatch);
        }
        let salt = unb64(salt)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Malformed("invalid salt"))?;
        // No upper bound: PostgreSQL accepts any positive int for scram_iterations and the
        // backend is a server we were configured to trust with this work.
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(AuthError::Malformed("invalid iteration count"))?;

        let without_proof = format!("c={},r={nonce}", b64(GS2_HEADER.as_bytes()));
        let auth_message = [
            self.client_first_bare.as_bytes(),
            b",",
            text.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = client_key(&salted);
        let client_signature = hmac_sha256(&sha256(&client_key), &auth_message);
        let proof = xor(&client_key, &client_signature);
        let server_signature = hmac_sha256(&server_key(&salted), &auth_message);

        self.state = State::AwaitingServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", b64(&proof)).into_bytes())
    }

    /// Checks server-final-message (AuthenticationSASLFinal): the server must prove it knows
    /// our verifier before we trust the connection.
    pub fn server_final(&mut self, message: &[u8]) -> Result<(), AuthError> {
        let State::AwaitingServerFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let text = message_str(message)?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(AuthError::ServerRejected(error.to_owned()));
        }
        let verifier = attr(Some(first), b'v', "expected verifier attribute")?;
        let signature = unb64(verifier).ok_or(AuthError::Malformed("invalid server signature"))?;
        if ct_eq(&signature, &server_signature) {
            Ok(())
        } else {
            Err(AuthError::ServerSignature)
        }
    }
}
