//! Client authentication: SCRAM-SHA-256 (with -PLUS on TLS), md5, or a cleartext password
//! over TLS. Unknown users and wrong passwords fail identically, after the same delay, and
//! repeated failures from one address wait longer.

use super::Wire;
use crate::auth::{self, ScramServer, ScramVerifier};
use crate::config::{AuthConfig, AuthMethod, UserConfig};
use crate::protocol::backend as msg;
use crate::protocol::{frontend, tag, ProtocolError};
use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why a login failed; all failures a client may not tell apart share one variant.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("password authentication failed for user \"{0}\"")]
    Failed(String),
    #[error("{0}")]
    Refused(String),
    /// A connect-time impersonation that is not allowed (42501) or names no user (42704).
    #[error("{message}")]
    Impersonation { code: &'static str, message: String },
    /// A startup parameter only the proxy may set.
    #[error("the startup parameter \"{0}\" is reserved for redveil")]
    Reserved(String),
    /// The cluster's own refusal, as a direct login would get it: a startup setting it does
    /// not accept, or no room for a connection now (starting up, shutting down, full).
    #[error("{message}")]
    Cluster { code: String, message: String },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("client I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl LoginError {
    pub fn sqlstate(&self) -> &str {
        match self {
            LoginError::Failed(_) => "28P01",
            LoginError::Refused(_) => "28000",
            LoginError::Reserved(_) => "42501",
            LoginError::Impersonation { code, .. } => code,
            LoginError::Cluster { code, .. } => code,
            LoginError::Protocol(e) => e.sqlstate(),
            LoginError::Io(_) => "08006",
        }
    }
}

/// Recent failures per client address, for slowing down password guessing.
#[derive(Default)]
pub struct FailureTracker {
    recent: DashMap<IpAddr, (u32, Instant)>,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl FailureTracker {
    /// Records a failure and returns how long to wait before answering it.
    pub fn fail(&self, addr: IpAddr, config: &AuthConfig) -> Duration {
        let now = Instant::now();
        let mut entry = self.recent.entry(addr).or_insert((0, now));
        if now.duration_since(entry.1) > FAILURE_WINDOW {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        let extra = config
            .failure_backoff_ms
            .saturating_mul(u64::from(entry.0 - 1));
        let total = config
            .failure_delay_ms
            .saturating_add(extra)
            .min(config.max_failure_delay_ms);
        Duration::from_millis(total.max(config.failure_delay_ms.min(config.max_failure_delay_ms)))
    }

    pub fn succeed(&self, addr: IpAddr) {
        self.recent.remove(&addr);
    }
}

/// Runs the authentication exchange for `user_name`.
pub async fn authenticate(
    wire: &mut Wire,
    method: AuthMethod,
    config: &AuthConfig,
    user_name: &str,
    user: Option<&UserConfig>,
    end_point: Option<&[u8]>,
) -> Result<(), LoginError> {
    let tls = wire.stream.is_tls();
    let verifier: Option<ScramVerifier> = user.and_then(|u| u.password.parse().ok());
    match method {
        AuthMethod::ScramSha256 => {
            let binding = if tls {
                end_point.map(<[u8]>::to_vec)
            } else {
                None
            };
            let mechanisms = auth::mechanisms(binding.is_some());
            msg::auth_sasl(&mut wire.out, mechanisms);
            wire.flush().await?;
            let mut server = ScramServer::new(user_name, verifier.as_ref(), binding);
            let body = wire.read_password_message().await?;
            let (mechanism, data) = frontend::sasl_initial(&body)?;
            let first = server
                .client_first(mechanism, data)
                .map_err(|e| scram_error(e, user_name))?;
            msg::auth_sasl_continue(&mut wire.out, &first);
            wire.flush().await?;
            let body = wire.read_password_message().await?;
            let last = server
                .client_final(&body)
                .map_err(|e| scram_error(e, user_name))?;
            msg::auth_sasl_final(&mut wire.out, &last);
        }
        AuthMethod::Md5 => {
            let mut salt = [0u8; 4];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
                .map_err(|_| LoginError::Refused("no randomness available".into()))?;
            msg::auth_md5(&mut wire.out, salt);
            wire.flush().await?;
            let body = wire.read_password_message().await?;
            let response = frontend::password(&body)?;
            let stored = user
                .and_then(|u| u.md5.clone())
                .unwrap_or_else(|| auth::md5_mock_stored(user_name));
            if !auth::md5_verify(&stored, salt, response) || user.is_none() {
                return Err(LoginError::Failed(user_name.to_string()));
            }
        }
        AuthMethod::Password => {
            if !tls && !config.allow_cleartext_without_tls {
                return Err(LoginError::Refused(
                    "cleartext passwords are only accepted over TLS".into(),
                ));
            }
            msg::auth_cleartext(&mut wire.out);
            wire.flush().await?;
            let body = wire.read_password_message().await?;
            let password = std::str::from_utf8(frontend::password(&body)?)
                .map_err(|_| ProtocolError::BadUtf8("password"))?;
            // Unknown users still pay for a key derivation so timing tells nothing.
            let check = verifier
                .clone()
                .unwrap_or_else(|| ScramVerifier::generate_with("", user_name.as_bytes(), 4096));
            if !check.verify_password(password) || verifier.is_none() {
                return Err(LoginError::Failed(user_name.to_string()));
            }
        }
    }
    Ok(())
}

fn scram_error(error: auth::AuthError, user_name: &str) -> LoginError {
    match error.sqlstate() {
        "28P01" => LoginError::Failed(user_name.to_string()),
        _ => LoginError::Refused(error.to_string()),
    }
}

impl Wire {
    /// Reads a PasswordMessage / SASL response during login.
    async fn read_password_message(&mut self) -> Result<bytes::Bytes, LoginError> {
        let (message_tag, raw) = self.read_message().await?;
        if message_tag != tag::PASSWORD {
            return Err(ProtocolError::Unexpected(message_tag as char).into());
        }
        Ok(raw.slice(5..))
    }
}
