//! Server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 5929
//! `tls-server-end-point`), following PostgreSQL's behaviour: the `n=` user name in client-first
//! is ignored (the startup packet names the user), authzid is refused, and a client that claims
//! the server lacks channel binding (`y`) is refused when we offered PLUS.
//!
//! Invariants: one exchange per instance, and any error ends it; an unknown user runs the same
//! exchange against a deterministic mock verifier and fails only at the proof check, with the
//! same [`AuthError::Failed`] as a wrong password.

use super::scram_common::{
    attr, b64, ct_eq, hmac_sha256, is_printable, message_str, new_nonce, sha256, unb64, xor,
    KEY_LEN,
};
use super::verifier::{ScramVerifier, DEFAULT_ITERATIONS};
use super::{mock_material, AuthError};

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
const CB_TYPE: &str = "tls-server-end-point";

/// SASL mechanisms to advertise, PLUS first when the connection can bind (as PostgreSQL does).
pub fn mechanisms(channel_binding_available: bool) -> &'static [&'static str] {
    if channel_binding_available {
        &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
    } else {
        &[SCRAM_SHA_256]
    }
}

/// One server-side SCRAM exchange.
pub struct ScramServer {
    secret: ScramVerifier,
    known_user: bool,
    channel_binding: Option<Vec<u8>>,
    server_nonce: String,
    state: State,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal(Exchange),
    Done,
}

/// What client-final must be checked against.
struct Exchange {
    /// The exact gs2 header the client sent; `c=` must repeat it.
    gs2_header: String,
    binds: bool,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// `verifier` None = unknown user: run the exchange against a mock verifier derived
    /// deterministically (HMAC of the user name under a per-process random secret) so an unknown
    /// user is indistinguishable from a wrong password, and always fail at the end. Also pass None
    /// for a user without a SCRAM secret (md5 or no password), as PostgreSQL does. The mock uses
    /// 4096 iterations: a deployment whose verifiers use another count should regenerate them,
    /// or unknown users become recognisable by their `i=`.
    /// `channel_binding` is the `tls-server-end-point` data of this connection, if it is TLS.
    pub fn new(
        user: &str,
        verifier: Option<&ScramVerifier>,
        channel_binding: Option<Vec<u8>>,
    ) -> Self {
        let (secret, known_user) = match verifier {
            Some(v) => (v.clone(), true),
            None => (mock_verifier(user), false),
        };
        ScramServer {
            secret,
            known_user,
            channel_binding,
            server_nonce: new_nonce(),
            state: State::AwaitingClientFirst,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.server_nonce = nonce.to_owned();
        self
    }

    /// Handles SASLInitialResponse: the chosen mechanism and client-first-message.
    /// Returns server-first-message.
    pub fn client_first(&mut self, mechanism: &str, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::AwaitingClientFirst) {
            self.state = State::Done;
            return Err(AuthError::OutOfOrder);
        }
        self.state = State::Done;
        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if self.channel_binding.is_some() => true,
            _ => return Err(AuthError::InvalidMechanism),
        };
        let text = message_str(message)?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or(AuthError::Malformed("no gs2 header"))?;
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(AuthError::Malformed("no gs2 header"))?;
        let binds = self.check_cbind_flag(flag, plus)?;
        if !authzid.is_empty() {
            return Err(if authzid.starts_with("a=") {
                AuthError::Unsupported("authorization identity")
            } else {
                AuthError::Malformed("invalid gs2 authzid")
            });
        }
        let gs2_header = text[..flag.len() + authzid.len() + 2].to_owned();

        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(AuthError::Unsupported("mandatory SCRAM extension"));
        }
        // PostgreSQL ignores this user name: the startup packet's user is authoritative.
        attr(first, b'n', "expected username attribute")?;
        let client_nonce = attr(parts.next(), b'r', "expected nonce attribute")?;
        if !is_printable(client_nonce) {
            return Err(AuthError::Malformed("non-printable characters in nonce"));
        }
        check_extensions(parts)?;

        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64(&self.secret.salt),
            self.secret.iterations
        );
        self.state = State::AwaitingClientFinal(Exchange {
            gs2_header,
            binds,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        });
        Ok(server_first.into_bytes())
    }

    /// Checks the gs2 cbind flag against the chosen mechanism; true when the client binds.
    fn check_cbind_flag(&self, flag: &str, plus: bool) -> Result<bool, AuthError> {
        match flag {
            "n" | "y" if plus => Err(AuthError::ChannelBinding(
                "SCRAM-SHA-256-PLUS selected but the message includes no channel binding",
            )),
            "n" => Ok(false),
            // The client could bind but believes we cannot: if we can, someone stripped PLUS
            // from the mechanism list we sent (RFC 5802 §6 downgrade protection).
            "y" if self.channel_binding.is_some() => Err(AuthError::ChannelBinding(
                "client supports channel binding but thinks the server does not",
            )),
            "y" => Ok(false),
            _ => match flag.strip_prefix("p=") {
                Some(_) if !plus => Err(AuthError::ChannelBinding(
                    "SCRAM-SHA-256 selected but the message includes channel binding",
                )),
                Some(CB_TYPE) => Ok(true),
                Some(_) => Err(AuthError::ChannelBinding(
                    "unsupported channel-binding type",
                )),
                None => Err(AuthError::Malformed("invalid gs2 channel binding flag")),
            },
        }
    }

    /// Handles client-final-message; returns server-final-message (`v=<ServerSignature>`).
    pub fn client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitingClientFinal(ex) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(AuthError::OutOfOrder);
        };
        let text = message_str(message)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(AuthError::Malformed("expected proof attribute"))?;
        let mut parts = without_proof.split(',');
        let cbind = attr(parts.next(), b'c', "expected channel-binding attribute")?;
        let nonce = attr(parts.next(), b'r', "expected nonce attribute")?;
        if without_proof.contains(",p=") {
            return Err(AuthError::Malformed("proof attribute must come last, once"));
        }
        check_extensions(parts)?;

        let cbind = unb64(cbind).ok_or(AuthError::Malformed("invalid channel-binding base64"))?;
        let mut expected_cbind = ex.gs2_header.clone().into_bytes();
        if ex.binds {
            expected_cbind.extend_from_slice(self.channel_binding.as_deref().unwrap_or_default());
        }
        if cbind != expected_cbind {
            return Err(AuthError::ChannelBinding(
                "channel binding data does not match",
            ));
        }
        if nonce != ex.nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof: [u8; KEY_LEN] = unb64(proof)
            .and_then(|p| p.try_into().ok())
            .ok_or(AuthError::Malformed("invalid proof"))?;

        let auth_message = [
            ex.client_first_bare.as_bytes(),
            b",",
            ex.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac_sha256(&self.secret.stored_key, &auth_message);
        let client_key = xor(&proof, &client_signature);
        // Same work for known and unknown users; the mock never matches, but `&` keeps that
        // decision out of the timing too.
        let ok = ct_eq(&sha256(&client_key), &self.secret.stored_key) & self.known_user;
        if !ok {
            return Err(AuthError::Failed);
        }
        let server_signature = hmac_sha256(&self.secret.server_key, &auth_message);
        Ok(format!("v={}", b64(&server_signature)).into_bytes())
    }
}

/// Optional trailing attributes: each must look like `x=...`; their content is ignored.
fn check_extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(), AuthError> {
    for part in parts {
        match part.as_bytes() {
            [letter, b'=', ..] if letter.is_ascii_alphabetic() => {}
            _ => return Err(AuthError::Malformed("invalid attribute")),
        }
    }
    Ok(())
}

/// Stand-in secret for an unknown user: stable per user within the process, unguessable across
/// processes, shaped like a real verifier (16-byte salt, default iterations).
fn mock_verifier(user: &str) -> ScramVerifier {
    let salt = mock_material("scram-salt", user);
    ScramVerifier {
        iterations: DEFAULT_ITERATIONS,
        salt: salt.get(..16).unwrap_or(&salt).to_vec(),
        stored_key: mock_material("scram-stored-key", user),
        server_key: mock_material("scram-server-key", user),
    }
}
