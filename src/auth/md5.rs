//! PostgreSQL's md5 password scheme: `pg_authid` stores `"md5" + hex(md5(password + user))`,
//! and the client answers a 4-byte salt with `"md5" + hex(md5(hex_part + salt))`.
//!
//! Invariants: verification is constant time and works the same on a mock stored hash, so an
//! unknown user costs and looks exactly like a wrong password.

use ::md5::{Digest, Md5};

use super::mock_material;
use super::scram_common::ct_eq;

const PREFIX: &str = "md5";
/// Length of a stored entry: "md5" + 32 hex digits.
const STORED_LEN: usize = 35;

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The `pg_authid.rolpassword` value for md5 authentication.
pub fn md5_stored(user: &str, password: &str) -> String {
    format!(
        "{PREFIX}{}",
        md5_hex(&[password.as_bytes(), user.as_bytes()])
    )
}

/// The response to AuthenticationMD5Password for a stored hash (with or without its `md5`
/// prefix, as the salted hash covers only the 32 hex digits).
pub fn md5_client_response(stored_or_password_hash: &str, salt: [u8; 4]) -> String {
    let hex_part = stored_or_password_hash
        .strip_prefix(PREFIX)
        .unwrap_or(stored_or_password_hash);
    format!("{PREFIX}{}", md5_hex(&[hex_part.as_bytes(), &salt]))
}

/// Checks a client's PasswordMessage payload against a stored md5 entry, in constant time.
/// `response` may include the message's terminating NUL.
pub fn md5_verify(stored: &str, salt: [u8; 4], response: &[u8]) -> bool {
    let response = response.strip_suffix(&[0]).unwrap_or(response);
    // A stored value that is not an md5 entry (a SCRAM verifier, an empty password) must fail,
    // but only after the same work as a real check.
    let well_formed = stored.len() == STORED_LEN
        && stored.starts_with(PREFIX)
        && stored
            .bytes()
            .skip(PREFIX.len())
            .all(|b| b.is_ascii_hexdigit());
    let expected = md5_client_response(stored, salt);
    ct_eq(expected.as_bytes(), response) & well_formed
}

/// A stand-in stored md5 entry for an unknown user: stable per user within the process,
/// unguessable across processes.
pub fn md5_mock_stored(user: &str) -> String {
    let material = mock_material("md5", user);
    format!("{PREFIX}{}", hex(material.get(..16).unwrap_or(&material)))
}

/// Client side (backend login): the answer to AuthenticationMD5Password for user/password.
pub fn md5_login_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    md5_client_response(&md5_stored(user, password), salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Stored value produced by PostgreSQL 15 for role "y" / 'secret-pass'; responses computed
    // with Python's hashlib.
    const PG_STORED: &str = "md54677da021a89c9cbcf9dee13c8f809a4";
    const SALT: [u8; 4] = [1, 2, 3, 4];
    const RESPONSE: &str = "md5671fff43b9427d783a27c5c38cd9bd94";

    #[test]
    fn stored_matches_postgres() {
        assert_eq!(md5_stored("y", "secret-pass"), PG_STORED);
    }

    #[test]
    fn responses_match_reference() {
        assert_eq!(md5_client_response(PG_STORED, SALT), RESPONSE);
        assert_eq!(md5_client_response(&PG_STORED[3..], SALT), RESPONSE);
        assert_eq!(
            md5_login_response("y", "secret-pass", [0xde, 0xad, 0xbe, 0xef]),
            "md54ec231476a476ad3bd894761aa0adf28"
        );
    }

    #[test]
    fn verify() {
        assert!(md5_verify(PG_STORED, SALT, RESPONSE.as_bytes()));
        assert!(md5_verify(
            PG_STORED,
            SALT,
            b"md5671fff43b9427d783a27c5c38cd9bd94\0"
        ));
        assert!(!md5_verify(PG_STORED, [1, 2, 3, 5], RESPONSE.as_bytes()));
        assert!(!md5_verify(
            PG_STORED,
            SALT,
            b"md5671fff43b9427d783a27c5c38cd9bd95"
        ));
        assert!(!md5_verify(PG_STORED, SALT, b""));
        assert!(!md5_verify(PG_STORED, SALT, b"\0"));
        assert!(!md5_verify(PG_STORED, SALT, &RESPONSE.as_bytes()[..10]));
        assert!(!md5_verify(PG_STORED, SALT, &[0xff; 35]));
    }

    #[test]
    fn malformed_stored_never_verifies() {
        // The response an attacker could compute for these inputs must still be refused.
        for stored in [
            "",
            "md5",
            "SCRAM-SHA-256$4096:x$y:z",
            "md5zz77da021a89c9cbcf9dee13c8f809a4",
        ] {
            let response = md5_client_response(stored, SALT);
            assert!(!md5_verify(stored, SALT, response.as_bytes()), "{stored}");
        }
    }

    #[test]
    fn mock_stored_is_stable_and_well_formed() {
        let mock = md5_mock_stored("nobody");
        assert_eq!(mock, md5_mock_stored("nobody"));
        assert_ne!(mock, md5_mock_stored("somebody"));
        assert_eq!(mock.len(), STORED_LEN);
        assert!(mock.starts_with("md5"));
        let response = md5_login_response("nobody", "guess", SALT);
        assert!(!md5_verify(&mock, SALT, response.as_bytes()));
    }
}
