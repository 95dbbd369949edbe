//! SCRAM-SHA-256 verifiers in PostgreSQL's `pg_authid.rolpassword` format:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields).
//!
//! Invariants: `Display` and `FromStr` round-trip; iterations are never zero; keys are exactly
//! 32 bytes; password checks are constant time.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};

use super::scram_common::{
    b64, client_key, ct_eq, normalize_password, salted_password, server_key, sha256, unb64, KEY_LEN,
};

/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length (SCRAM_DEFAULT_SALT_LEN).
const SALT_LEN: usize = 16;
const PREFIX: &str = "SCRAM-SHA-256$";

/// What the server stores to authenticate a user without knowing the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iteration count (`i=`); never 0 when parsed or generated.
    pub iterations: u32,
    pub salt: Vec<u8>,
    /// SHA-256(ClientKey): checks the client's proof.
    pub stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key"): signs server-final.
    pub server_key: [u8; 32],
}

// Keys are password-equivalent for SCRAM (StoredKey + a sniffed exchange yields ClientKey), so
// keep them out of logs.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Which part of a verifier string is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierParseError {
    #[error("verifier does not start with \"SCRAM-SHA-256$\"")]
    Prefix,
    #[error("verifier is not of the form <iterations>:<salt>$<StoredKey>:<ServerKey>")]
    Shape,
    #[error("verifier iteration count is not a positive integer")]
    Iterations,
    #[error("verifier salt is not valid non-empty base64")]
    Salt,
    #[error("verifier StoredKey is not base64 of 32 bytes")]
    StoredKey,
    #[error("verifier ServerKey is not base64 of 32 bytes")]
    ServerKey,
}

impl ScramVerifier {
    /// A verifier with a random 16-byte salt and PostgreSQL's default 4096 iterations.
    pub fn generate(password: &str) -> Self {
        let mut salt = [0u8; SALT_LEN];
        // Same reasoning as mod.rs: no entropy means no safe secret, so stop here.
        SystemRandom::new()
            .fill(&mut salt)
            .expect("operating system random source unavailable");
        Self::generate_with(password, &salt, DEFAULT_ITERATIONS)
    }

    /// A verifier for the given salt and iteration count (0 is raised to 1: Hi() needs i ≥ 1).
    pub fn generate_with(password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let salted = salted_password(normalize_password(password), salt, iterations);
        ScramVerifier {
            iterations: iterations.get(),
            salt: salt.to_vec(),
            stored_key: sha256(&client_key(&salted)),
            server_key: server_key(&salted),
        }
    }

    /// Checks a cleartext password (cleartext auth over TLS) in constant time.
    pub fn verify_password(&self, password: &str) -> bool {
        let Some(iterations) = NonZeroU32::new(self.iterations) else {
            return false;
        };
        let salted = salted_password(normalize_password(password), &self.salt, iterations);
        let stored_ok = ct_eq(&sha256(&client_key(&salted)), &self.stored_key);
        let server_ok = ct_eq(&server_key(&salted), &self.server_key);
        // `&` rather than `&&`: both comparisons always run.
        stored_ok & server_ok
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            b64(&self.salt),
            b64(&self.stored_key),
            b64(&self.server_key)
        )
    }
}

impl FromStr for ScramVerifier {
    type Err = VerifierParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix(PREFIX).ok_or(VerifierParseError::Prefix)?;
        let (params, keys) = rest.split_once('$').ok_or(VerifierParseError::Shape)?;
        let (iterations, salt) = params.split_once(':').ok_or(VerifierParseError::Shape)?;
        let (stored, server) = keys.split_once(':').ok_or(VerifierParseError::Shape)?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|i| *i > 0 && !iterations.starts_with('+'))
            .ok_or(VerifierParseError::Iterations)?;
        let salt = unb64(salt)
            .filter(|s| !s.is_empty())
            .ok_or(VerifierParseError::Salt)?;
        let stored_key = key(stored).ok_or(VerifierParseError::StoredKey)?;
        let server_key = key(server).ok_or(VerifierParseError::ServerKey)?;
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }
}

fn key(text: &str) -> Option<[u8; KEY_LEN]> {
    unb64(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced by PostgreSQL 15 (`password_encryption = 'scram-sha-256'`) for 'secret-pass'.
    const PG_SECRET_PASS: &str = "SCRAM-SHA-256$4096:aw4TLg0LhQRS4/3l7GSYug==$\
        Q6e8lgYfpTMGjxrRSxaoer9BbCI9VGnQBmmb/Jo0+70=:WyADcjROIFrruIusLQlvaIQdiSOQelqVpc5gd/jqDXQ=";
    /// Produced by PostgreSQL 15 for 'pässwörd' (NFC input, which SASLprep leaves unchanged).
    const PG_NON_ASCII: &str = "SCRAM-SHA-256$4096:38FtzA42PDIUhEJy1Ua+yg==$\
        TAtqqJp44dxmjdLpdsJJRA9p8QLApPrW1mWgF8no8sg=:28kVR4spnz/j9SpeswtPY1Hk9SLoH69m3YeRFqoIyGc=";

    #[test]
    fn postgres_verifier_verifies() {
        let v: ScramVerifier = PG_SECRET_PASS.parse().unwrap();
        assert_eq!(v.iterations, 4096);
        assert!(v.verify_password("secret-pass"));
        assert!(!v.verify_password("secret-pasS"));
        assert!(!v.verify_password(""));
        assert_eq!(v.to_string(), PG_SECRET_PASS);
    }

    #[test]
    fn postgres_non_ascii_verifier_verifies() {
        let v: ScramVerifier = PG_NON_ASCII.parse().unwrap();
        assert!(v.verify_password("pässwörd"));
        assert!(!v.verify_password("passwoerd"));
    }

    #[test]
    fn generate_with_reproduces_postgres() {
        let pg: ScramVerifier = PG_SECRET_PASS.parse().unwrap();
        let ours = ScramVerifier::generate_with("secret-pass", &pg.salt, pg.iterations);
        assert_eq!(ours, pg);
    }

    #[test]
    fn generate_round_trips() {
        let v = ScramVerifier::generate("hunter2");
        assert_eq!(v.iterations, DEFAULT_ITERATIONS);
        assert_eq!(v.salt.len(), SALT_LEN);
        assert!(v.verify_password("hunter2"));
        assert!(!v.verify_password("hunter3"));
        let parsed: ScramVerifier = v.to_string().parse().unwrap();
        assert_eq!(parsed, v);
        assert_ne!(ScramVerifier::generate("hunter2").salt, v.salt);
    }

    #[test]
    fn debug_hides_keys() {
        let v = ScramVerifier::generate("x");
        assert!(!format!("{v:?}").contains(&b64(&v.stored_key)));
    }

    #[test]
    fn parse_errors_name_the_part() {
        use VerifierParseError::*;
        let k = "Q6e8lgYfpTMGjxrRSxaoer9BbCI9VGnQBmmb/Jo0+70=";
        let cases: &[(String, VerifierParseError)] = &[
            ("md5abc".into(), Prefix),
            ("SCRAM-SHA-1$4096:c2FsdA==$a:b".into(), Prefix),
            ("SCRAM-SHA-256$".into(), Shape),
            ("SCRAM-SHA-256$4096:c2FsdA==".into(), Shape),
            ("SCRAM-SHA-256$4096c2FsdA==$a:b".into(), Shape),
            (format!("SCRAM-SHA-256$4096:c2FsdA==${k}"), Shape),
            (format!("SCRAM-SHA-256$0:c2FsdA==${k}:{k}"), Iterations),
            (format!("SCRAM-SHA-256$-1:c2FsdA==${k}:{k}"), Iterations),
            (format!("SCRAM-SHA-256$+5:c2FsdA==${k}:{k}"), Iterations),
            (format!("SCRAM-SHA-256$x:c2FsdA==${k}:{k}"), Iterations),
            (
                format!("SCRAM-SHA-256$99999999999:c2FsdA==${k}:{k}"),
                Iterations,
            ),
            (format!("SCRAM-SHA-256$4096:!!${k}:{k}"), Salt),
            (format!("SCRAM-SHA-256$4096:${k}:{k}"), Salt),
            (
                format!("SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:{k}"),
                StoredKey,
            ),
            (format!("SCRAM-SHA-256$4096:c2FsdA==$:{k}"), StoredKey),
            (format!("SCRAM-SHA-256$4096:c2FsdA==${k}:{k}x"), ServerKey),
            (
                format!("SCRAM-SHA-256$4096:c2FsdA==${k}:{k}:{k}"),
                ServerKey,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<ScramVerifier>(), Err(want.clone()), "{input}");
        }
    }

    #[test]
    fn parse_never_panics_on_truncations() {
        for end in 0..PG_SECRET_PASS.len() {
            assert!(PG_SECRET_PASS[..end].parse::<ScramVerifier>().is_err());
        }
    }
}
