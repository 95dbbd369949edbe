//! Identity pins: the proxy sets `immuta.token` (see policy::tokens) on a backend connection
//! before a client's statement runs there under an identity it is not pinned for.
//!
//! The token is a bound parameter, never statement text, so no statistics view, log line or
//! other session can see it. Between client batches the pin is its own Parse/Bind/Execute/
//! Sync; inside a batch (after the client's Parse or Bind, before its Sync) a Sync would end
//! the client's implicit transaction and its skip-after-error, so the pin runs there as a
//! named statement and portal closed right after, joining the batch's transaction.
//!
//! A multi-statement string that impersonates cannot bind anything: the tokens it switches
//! to are staged in settings (`immuta.staged_<n>`) by a pin sent ahead of the string, and
//! the string copies one into `immuta.token` at its place. Staged tokens are those of users
//! the client may act as, kept in its own session; every identity placed on a connection is
//! recorded, and a connection holding another identity is reset before it serves anyone
//! else (see `ClientConnection::ensure_backend`).

use super::ClientConnection;
use crate::policy::tokens::TOKEN_SETTING;
use crate::protocol::frontend;
use crate::session::Expect;

/// Statement and portal name of a pin sent inside a client's batch.
const PIN_NAME: &str = "redveil_pin";

impl ClientConnection {
    /// Pins the client's effective user on the backend connection, pipelined ahead of the
    /// client's next message, unless it already is. Its replies are dropped.
    pub(super) async fn pin_identity(&mut self) {
        if self.backend.is_none() {
            return;
        }
        let user = self.session.effective_user().to_string();
        if self
            .settings
            .policy
            .current()
            .registry(&self.session.database, &user)
            .is_empty()
        {
            // No view of this database reads the token: nothing to pin (and no setting of
            // redveil's for the session to show), but the connection serves this identity.
            self.note_identity(&user);
            return;
        }
        let token = self.token_for(&user).await;
        let generation = self.settings.policy.current().generation;
        let backend = self.backend.as_ref().expect("checked above");
        if backend
            .pinned
            .as_ref()
            .is_some_and(|(pinned_generation, pinned)| {
                *pinned_generation == generation && *pinned == token
            })
        {
            return;
        }
        self.send_settings(&[(TOKEN_SETTING, &token)], &user);
        let backend = self.backend.as_mut().expect("checked above");
        backend.pinned = Some((generation, token));
    }

    /// The token `user`'s statements run under for this client: the catalog's for the login
    /// user, one minted for this client for an impersonated one (empty, so no view admits
    /// it, if the cluster refused to store one).
    pub(super) async fn token_for(&mut self, user: &str) -> String {
        let policy = self.settings.policy.current();
        if user == self.session.login {
            return policy.user(user).entitlement.token.clone();
        }
        if let Some(token) = self.impersonation_tokens.get(user) {
            return token.clone();
        }
        let minted = match self.settings.control.get(&self.session.database).await {
            Ok(pool) => {
                crate::policy::tokens::mint_impersonation_token(&pool, user, policy.tokens.issuer())
                    .await
            }
            Err(e) => Err(e.to_string()),
        };
        match minted {
            Ok(token) => {
                self.impersonation_tokens
                    .insert(user.to_string(), token.clone());
                token
            }
            Err(error) => {
                tracing::error!(conn = self.id, user, %error, "cannot store an impersonation token; the impersonated user reads nothing");
                String::new()
            }
        }
    }

    /// Retires the tokens of impersonations this client no longer acts under (all of them
    /// when `all`), waiting for the cluster: called between transactions, before the client
    /// hears its statement is done, so a token it copied is void by its next statement.
    pub(super) async fn retire_impersonation_tokens(&mut self, all: bool) {
        if self.impersonation_tokens.is_empty() {
            return;
        }
        let current = self.session.effective_user().to_string();
        let retired: Vec<String> = self
            .impersonation_tokens
            .iter()
            .filter(|(user, _)| all || **user != current)
            .map(|(_, token)| token.clone())
            .collect();
        if retired.is_empty() {
            return;
        }
        self.impersonation_tokens
            .retain(|user, _| !all && *user == current);
        let result = match self.settings.control.get(&self.session.database).await {
            Ok(pool) => crate::policy::tokens::retire_impersonation_tokens(&pool, &retired).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            tracing::error!(conn = self.id, %error, "cannot retire impersonation tokens");
        }
    }

    /// Stages `tokens` as `immuta.staged_1…n` for a string that switches identities to
    /// `users` (see `staged_pin_sql`).
    pub(super) fn stage_tokens(&mut self, users: &[String], tokens: &[String]) {
        let names: Vec<String> = (1..=users.len()).map(staged_setting).collect();
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .zip(tokens)
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        for user in users {
            self.note_identity(user);
        }
        if let Some(user) = users.first() {
            self.send_settings(&pairs, user);
        }
    }

    /// Sends `set_config(name, value, false)` for each pair, values bound.
    fn send_settings(&mut self, pairs: &[(&str, &str)], user: &str) {
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        let sql = self.settings.dialect.set_bound_settings(&names);
        let values: Vec<&str> = pairs.iter().map(|(_, value)| *value).collect();
        self.note_identity(user);
        if self.in_batch {
            frontend::parse_bind_execute(&mut self.to_backend, PIN_NAME, &sql, &values);
            frontend::close_portal(&mut self.to_backend, PIN_NAME);
            frontend::close_statement(&mut self.to_backend, PIN_NAME);
            self.pipeline.push(Expect::Pin {
                synced: false,
                closes_left: 2,
            });
        } else {
            frontend::parse_bind_execute(&mut self.to_backend, "", &sql, &values);
            frontend::sync(&mut self.to_backend);
            self.pipeline.push(Expect::Pin {
                synced: true,
                closes_left: 0,
            });
        }
    }

    fn note_identity(&mut self, user: &str) {
        if let Some(backend) = self.backend.as_mut() {
            if !backend.identities.iter().any(|held| held == user) {
                backend.identities.push(user.to_string());
            }
        }
    }
}

fn staged_setting(slot: usize) -> String {
    format!("immuta.staged_{slot}")
}

/// The statement a string runs at its `slot`-th identity switch (1-based, in the order the
/// users were given to `stage_tokens`).
pub(super) fn staged_pin_sql(dialect: crate::dialect::Dialect, slot: usize) -> String {
    dialect.copy_setting(TOKEN_SETTING, &staged_setting(slot))
}
