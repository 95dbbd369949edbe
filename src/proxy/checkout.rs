//! A client's backend connection: taking one (reset completely when it held another
//! identity, cleaned when another client of the same identity used it last), bringing it to
//! the client's session state, and giving it back at a transaction boundary.

use super::ClientConnection;
use crate::backend::{Affinity, BackendError, BackendPool, Checkout};
use crate::config::PoolMode;

impl ClientConnection {
    /// Takes a backend connection for the next statement if none is held. One that holds
    /// another identity is reset completely first, and the reset confirmed, so nothing a
    /// client of another user left there (objects, settings, prepared statements, locks, a
    /// pin) reaches this one, whatever its statements said; one another client of the same
    /// identity used last is cleaned ahead of the statement (see `replay_session_state`).
    pub(super) async fn ensure_backend(&mut self) -> Result<(), BackendError> {
        // A connection the engine cannot clean (`Dialect::clean_sql`) is closed and another
        // taken, until one is fresh.
        let attempts = match self.settings.dialect.clean_sql() {
            Some(_) => 1,
            None => self.pool.size() + 1,
        };
        for _ in 0..attempts {
            if self.backend.is_none() {
                let backend = self.checkout_for_client().await?;
                self.cancel.set(backend.peer, backend.key).await;
                self.backend = Some(backend);
            }
            if self.replay_session_state() {
                self.pin_identity().await;
                return Ok(());
            }
            if let Some(mut backend) = self.backend.take() {
                backend.broken = true;
                self.cancel.clear().await;
            }
        }
        Err(BackendError::ResetFailed)
    }

    async fn checkout_for_client(&mut self) -> Result<Checkout, BackendError> {
        checkout_serving(
            &self.pool,
            self.id,
            self.session.effective_user(),
            self.settings.dialect,
        )
        .await
    }

    /// The backend connection taken for this client at login (session mode); its cancel
    /// slot is already set.
    pub fn adopt_backend(&mut self, backend: Checkout) {
        self.backend = Some(backend);
    }

    /// Before a client's first statement on a connection another client used last, cleans it
    /// of what that client left (always: no cleanup rests on the words of its statements),
    /// and whenever the connection's settings differ from the client's, replays the client's
    /// settings and SQL-prepared statements, pipelined ahead of the statement; its replies
    /// are dropped. If the clean fails the connection is closed afterwards. False when the
    /// engine cannot bring this connection to the client's state: it must be replaced.
    fn replay_session_state(&mut self) -> bool {
        if !self.pipeline.is_empty() || self.session.tx_status != crate::session::IDLE {
            return true;
        }
        let fingerprint = self.session.state.fingerprint();
        let dialect = self.settings.dialect;
        let Some(backend) = self.backend.as_mut() else {
            return true;
        };
        let ready = backend.engine_ready || dialect.session_setup().is_none();
        let other_client = backend.last_client.is_some_and(|last| last != self.id);
        let fresh = backend.last_client.is_none() && fingerprint == 0 && backend.settings == 0;
        let unchanged = backend.last_client == Some(self.id) && backend.settings == fingerprint;
        if ready && (fresh || unchanged) {
            backend.last_client = Some(self.id);
            return true;
        }
        let Some(replay) = crate::backend::replay_sql(
            &self.session.state,
            backend.has_sql_prepared,
            other_client,
            dialect,
        ) else {
            return false;
        };
        backend.last_client = Some(self.id);
        backend.engine_ready = true;
        // RESET ALL clears the pinned identity too.
        backend.pinned = None;
        if backend.has_sql_prepared {
            backend.prepared.clear();
        }
        backend.settings = fingerprint;
        backend.has_sql_prepared = self.session.state.prepared().next().is_some();
        // Two messages, each its own implicit transaction, so that the clean commits on its
        // own: a replayed PREPARE of the client's that fails (its table dropped since) would
        // otherwise roll back the clean's RESET ALL with it.
        let encoding = self.session.text_encoding;
        for sql in [replay.reset, replay.session] {
            if sql.is_empty() {
                continue;
            }
            crate::protocol::frontend::query_in(&mut self.to_backend, &sql, encoding);
            self.pipeline.push(crate::session::Expect::Query {
                forward: false,
                commands: Default::default(),
                substitutions: Default::default(),
            });
        }
        true
    }

    /// Gives the backend connection back at a transaction boundary (transaction mode).
    pub(super) async fn release_if_done(&mut self) {
        if self.settings.mode == PoolMode::Transaction
            && self.pipeline.is_empty()
            && self.session.tx_status == crate::session::IDLE
            && !self.client_scan.mid_message()
            // Between a client's Parse/Bind/Execute and its Sync the backend holds the batch's
            // implicit transaction and unnamed statement: still this client's.
            && !self.in_batch
            && !self.discard_until_sync
            && self.backend.is_some()
        {
            // Clear the cancel target first: a cancel in flight for this client finishes
            // before the connection can serve anyone else.
            self.cancel.clear().await;
            self.backend = None;
        }
    }
}

/// A connection for client `client` acting as `user`: one that holds another identity is
/// reset completely first, and the reset confirmed. A reset that fails closes that connection;
/// another is tried, a few times at most.
pub async fn checkout_serving(
    pool: &BackendPool,
    client: u64,
    user: &str,
    dialect: crate::dialect::Dialect,
) -> Result<Checkout, BackendError> {
    // Where a reset is a close (`Dialect::discard_all`), every idle connection may need one.
    let attempts = match dialect.discard_all() {
        Some(_) => 3,
        None => pool.size() + 1,
    };
    for _ in 0..attempts {
        let mut backend = pool.checkout(Affinity { client, user }).await?;
        if backend.serves_only(user) {
            return Ok(backend);
        }
        metrics::counter!("redveil_backend_resets_total").increment(1);
        crate::backend::reset_session(&mut backend, dialect).await;
        if !backend.broken {
            return Ok(backend);
        }
    }
    Err(BackendError::ResetFailed)
}
