//! Identity tokens: how a policy view learns whose session it serves.
//!
//! The query role can run any SQL a deny-list lets through, so no view may trust a setting a
//! client could write to a meaningful value. The proxy pins one secret per effective user
//! instead (`immuta.token`, sent as a bound parameter so it never appears in statement text,
//! `pg_stat_activity` or a server log line). Sync stores the tokens in `session_tokens`,
//! which only the system role reads; every view (canonical, class, the secure profile views)
//! finds its user, and through it the entitlements and salt, by looking the pinned token up
//! there. Forging the setting then yields nothing, and reading one's own token yields only
//! one's own rows.
//!
//! Tokens are random (128 bits from the system's CSPRNG), issued for every catalog version: a
//! reload issues new ones and sync keeps the previous version's valid until the next sync, so
//! statements already pinned under them finish; the proxy pins the new ones from each
//! session's next statement. Each proxy instance (an *issuer*, random per process) replaces
//! only its own rows, so instances sharing a cluster do not void each other's pins.
//!
//! An impersonation is pinned with a token of its own, minted for that client when it starts
//! and retired (deleted) once the client no longer acts as that user: an impersonator that
//! copied the token it was pinned with (SQL the proxy cannot see reads its own session's
//! settings) holds nothing once the impersonation ends. Sync leaves these rows alone.

use super::model::Catalog;
use super::sql::qualified;
use super::SYSTEM_SCHEMA;
use ring::rand::SecureRandom;
use std::collections::BTreeMap;
use std::fmt;

/// The session setting the proxy pins.
pub const TOKEN_SETTING: &str = "immuta.token";
/// The table mapping tokens to users, in `SYSTEM_SCHEMA`.
pub const TOKENS_TABLE: &str = "session_tokens";

/// One token per catalog user, for one catalog version.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    issuer: String,
    by_user: BTreeMap<String, String>,
}

/// 128 random bits as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// Fresh tokens for every user of `catalog`, issued by `issuer` (see `random_hex`).
    pub fn issue(catalog: &Catalog, issuer: &str) -> Tokens {
        let by_user = catalog
            .users
            .iter()
            .map(|user| (user.name.clone(), random_hex()))
            .collect();
        Tokens {
            issuer: issuer.to_string(),
            by_user,
        }
    }

    /// The proxy instance these belong to.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `user`'s token; `None` for a user the catalog does not know (it reads nothing).
    pub fn of(&self, user: &str) -> Option<&str> {
        self.by_user.get(user).map(String::as_str)
    }

    /// (token, user) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_user
            .iter()
            .map(|(user, token)| (token.as_str(), user.as_str()))
    }
}

/// Secrets stay out of logs and panics.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} users)", self.by_user.len())
    }
}

/// Mints a token for `user` for one client's impersonation (see the module doc).
pub async fn mint_impersonation_token(
    pool: &super::control::ControlPool,
    user: &str,
    issuer: &str,
) -> Result<String, String> {
    let token = random_hex();
    within_deadline(async {
        let conn = pool.get().await.map_err(|e| e.to_string())?;
        conn.execute(
            &format!(
                "INSERT INTO {} (token, user_name, issuer, impersonation) VALUES ($1, $2, $3, true)",
                qualified(SYSTEM_SCHEMA, TOKENS_TABLE)
            ),
            &[&token, &user, &issuer],
        )
        .await
        .map_err(|e| e.to_string())
    })
    .await?;
    Ok(token)
}

/// A client waits on these exchanges: a cluster that does not answer fails them rather than
/// the client hanging.
async fn within_deadline<T>(
    exchange: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from the cluster within {DEADLINE:?}")))
}

/// Deletes impersonation tokens: whoever still holds one reads nothing with it.
pub async fn retire_impersonation_tokens(
    pool: &super::control::ControlPool,
    tokens: &[String],
) -> Result<(), String> {
    if tokens.is_empty() {
        return Ok(());
    }
    within_deadline(async {
        let conn = pool.get().await.map_err(|e| e.to_string())?;
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = tokens
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        conn.execute(
            &format!(
                "DELETE FROM {} WHERE impersonation AND token IN {}",
                qualified(SYSTEM_SCHEMA, TOKENS_TABLE),
                super::sql::parameter_list(1, tokens.len())
            ),
            &values,
        )
        .await
        .map_err(|e| e.to_string())
    })
    .await?;
    Ok(())
}

/// `user_name` of the session's pinned token, as a SQL subquery (NULL when no valid token
/// is pinned, so every comparison with it fails).
pub fn session_user_sql(dialect: crate::dialect::Dialect) -> String {
    format!(
        "(SELECT user_name FROM {} WHERE token = {})",
        qualified(SYSTEM_SCHEMA, TOKENS_TABLE),
        dialect.current_setting_or_null(TOKEN_SETTING),
    )
}

/// FROM-clause items and condition that join the pinned token to `profile_access`, with the
/// token table as `immuta_token` and the entitlement row as `immuta_row`.
pub fn access_join_sql(dialect: crate::dialect::Dialect, data_source_literal: &str) -> String {
    format!(
        "{} AS immuta_token JOIN {} AS immuta_row ON immuta_row.user_name = immuta_token.user_name\n\
         \x20           WHERE immuta_token.token = {} AND immuta_row.data_source = {data_source_literal}",
        qualified(SYSTEM_SCHEMA, TOKENS_TABLE),
        qualified(SYSTEM_SCHEMA, "profile_access"),
        dialect.current_setting_or_null(TOKEN_SETTING),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_stay_out_of_debug_output() {
        let user = |name: &str| crate::policy::User {
            name: name.into(),
            groups: Default::default(),
            attributes: Default::default(),
            can_impersonate: false,
        };
        let catalog = Catalog {
            users: vec![user("alice"), user("bob")],
            view_schema: "immuta".into(),
            data_sources: Vec::new(),
        };
        let a = Tokens::issue(&catalog, "me");
        let b = Tokens::issue(&catalog, "me");
        let token = a.of("alice").unwrap();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.of("alice"), a.of("bob"));
        assert_ne!(a.of("alice"), b.of("alice"), "every issue is new");
        assert_eq!(a.of("nobody"), None);
        assert!(!format!("{a:?}").contains(token));
    }
}
