//! Shared SCRAM-SHA-256 primitives (RFC 5802 §3) and attribute parsing used by both the server
//! and the client side.
//!
//! Invariants: parsing never panics on arbitrary input; secret comparisons are constant time.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

use super::AuthError;

/// Length of SHA-256 outputs, hence of every SCRAM-SHA-256 key and proof.
pub(crate) const KEY_LEN: usize = 32;

/// Raw nonce bytes before base64, as PostgreSQL and libpq use (SCRAM_RAW_NONCE_LEN).
const RAW_NONCE_LEN: usize = 18;

pub(crate) fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    to_key(ctx.sign().as_ref())
}

pub(crate) fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    to_key(digest::digest(&digest::SHA256, data).as_ref())
}

fn to_key(bytes: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    // Only called with SHA-256 outputs, which are exactly KEY_LEN bytes.
    out.copy_from_slice(bytes);
    out
}

/// Hi(password, salt, i) from RFC 5802, i.e. PBKDF2-HMAC-SHA-256.
pub(crate) fn salted_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; 32] {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut out,
    );
    out
}

pub(crate) fn client_key(salted: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    hmac_sha256(salted, &[b"Client Key"])
}

pub(crate) fn server_key(salted: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    hmac_sha256(salted, &[b"Server Key"])
}

pub(crate) fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Constant-time equality for secrets of public length.
///
/// ring's own helper is deprecated ("no promises regarding side channels"), so we fold the
/// differences ourselves and hide the accumulator from the optimiser so it cannot short-circuit.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// A fresh printable nonce: base64 of random bytes (never contains ',').
pub(crate) fn new_nonce() -> String {
    let mut raw = [0u8; RAW_NONCE_LEN];
    // Without an entropy source no nonce can be safe; see mod.rs for the same reasoning.
    SystemRandom::new()
        .fill(&mut raw)
        .expect("operating system random source unavailable");
    b64(&raw)
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E, i.e. visible ASCII except ','.
pub(crate) fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Splits `"x=value"` and checks the attribute letter.
pub(crate) fn attr<'a>(
    part: Option<&'a str>,
    name: u8,
    what: &'static str,
) -> Result<&'a str, AuthError> {
    let part = part.ok_or(AuthError::Malformed(what))?;
    match part.as_bytes() {
        [n, b'=', ..] if *n == name => Ok(&part[2..]),
        _ => Err(AuthError::Malformed(what)),
    }
}

/// Decodes a SCRAM message as UTF-8 (RFC 5802 messages are UTF-8 and contain no NUL).
pub(crate) fn message_str(message: &[u8]) -> Result<&str, AuthError> {
    let text = std::str::from_utf8(message).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    if text.contains('\0') {
        return Err(AuthError::Malformed("contains NUL"));
    }
    Ok(text)
}

/// Passwords as bytes for Hi(): PostgreSQL runs SASLprep first.
pub(crate) fn normalize_password(password: &str) -> &[u8] {
    // ASCII passwords: SASLprep either leaves them unchanged or rejects them (control
    // characters), and on rejection PostgreSQL hashes the raw bytes, so the raw bytes are always
    // right. Non-ASCII: we also use the raw UTF-8 bytes, which is PostgreSQL's answer only when
    // SASLprep rejects the string. Limitation: no NFKC normalisation and no RFC 4013 mapping
    // (e.g. non-ASCII spaces to U+0020), so a password SASLprep would *change* (a decomposed
    // "ä", a fullwidth letter) derives keys PostgreSQL would not; already-NFC text of ordinary
    // letters is unaffected. Doing better needs Unicode tables we chose not to vendor.
    password.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn attr_parsing() {
        assert_eq!(attr(Some("r=abc"), b'r', "r"), Ok("abc"));
        assert_eq!(attr(Some("r="), b'r', "r"), Ok(""));
        assert!(attr(Some("s=abc"), b'r', "r").is_err());
        assert!(attr(Some("r"), b'r', "r").is_err());
        assert!(attr(Some(""), b'r', "r").is_err());
        assert!(attr(None, b'r', "r").is_err());
        assert!(attr(Some("é=x"), b'r', "r").is_err());
    }

    #[test]
    fn nonces_are_printable_and_distinct() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(is_printable(&a) && is_printable(&b));
        assert_ne!(a, b);
        assert!(!is_printable("a,b"));
        assert!(!is_printable(""));
        assert!(!is_printable("a b"));
    }
}
