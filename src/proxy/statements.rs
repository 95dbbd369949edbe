//! Clients' prepared statements on backend connections. A client's statement is prepared
//! under the proxy's name (shared by every client sending the same text, see
//! `statement_names`) on whichever backend connection serves the client.
//!
//! Invariant: rows reach a client only from a backend statement whose shape (parameter types
//! and result columns, `session::shape`) is the one the client's own Parse was prepared with.
//! Every preparation is followed, in the same write, by a Describe whose reply records its
//! shape. A client's Parse always prepares anew (a statement prepared earlier, perhaps by
//! another client, may predate a schema change). At each Bind or Describe of a statement the
//! preparation found on the connection is checked against the client's: the same one, or an
//! equal shape, and the message goes through (PostgreSQL's own revalidation then guards that
//! preparation); a different shape and the client gets what PostgreSQL answers a statement
//! whose result type changed, 0A000, through a placeholder that fails on the backend so the
//! transaction fails exactly as it would have. A statement prepared here just now on the
//! client's behalf has no shape yet: the proxy waits for its Describe reply (one round trip,
//! once per statement and connection) before it lets the Bind go.

use super::statement_names::named_statement;
use super::{ClientConnection, RelayError};
use crate::backend::{BackendConn, BackendError};
use crate::protocol::backend as msg;
use crate::protocol::frontend::{self, Parse};
use crate::session::{
    Expect, RewrittenFor, ShapeCell, Statement, CHANGED_MESSAGE, CHANGED_SQLSTATE,
};
use bytes::BytesMut;
use tokio::io::AsyncReadExt;

/// What a client's Bind or Describe of a statement becomes.
pub(super) enum Use {
    /// Not one of the proxy's statements (unnamed, or unknown): relayed as the client sent it.
    AsIs,
    /// Sent for the backend statement of this name.
    Named(String),
    /// The statement here does not have the shape the client knows: refused with 0A000.
    Changed,
    /// An earlier message of the batch failed while the proxy waited: the backend skips to
    /// the client's Sync, so this message is dropped.
    Dropped,
}

impl ClientConnection {
    /// A client's Parse of a named statement, or of an unnamed one the proxy runs under its
    /// own name (`cache_rewritten_plans`).
    pub(super) fn prepare_for_client(&mut self, parse: &Parse<'_>, statement: Statement) {
        if !parse.name.is_empty() {
            // Always prepared anew: the backend may hold this text prepared before a schema
            // change, and a new statement must see the schema as it is.
            self.session
                .statements
                .insert(parse.name.to_string(), statement.clone());
            let shape = statement.shape.clone();
            self.prepare_on_backend(&statement, shape, true);
            return;
        }
        // The unnamed statement is parsed again and again by the same client: the plan cached
        // on this connection is what `cache_rewritten_plans` is for. Should a schema change
        // have made it stale, PostgreSQL reports 0A000 at its Bind and the connection's
        // statements are prepared anew from then on (see `on_error`).
        let mut statement = statement;
        let backend = self.backend.as_mut().expect("ensure_backend ran");
        match backend.prepared.get(&statement.backend_name) {
            Some(there) => {
                statement.shape = there;
                let mut reply = BytesMut::new();
                msg::parse_complete(&mut reply);
                self.pipeline.push(Expect::Synthetic(reply.freeze()));
            }
            None => {
                let shape = statement.shape.clone();
                self.prepare_on_backend(&statement, shape, true);
            }
        }
        self.unnamed_prepared = Some(statement);
    }

    /// Sends `statement`'s Parse (closing an older version of it, and the least recently used
    /// statements if the connection's cache is full) and a Describe that fills in `shape`.
    fn prepare_on_backend(&mut self, statement: &Statement, shape: ShapeCell, forward: bool) {
        let backend = self.backend.as_mut().expect("ensure_backend ran");
        let name = &statement.backend_name;
        let preparation = backend.prepared.prepare(name, shape.clone());
        let closes = preparation
            .close_first
            .then(|| name.clone())
            .into_iter()
            .chain(preparation.evicted);
        for close in closes {
            frontend::close_statement(&mut self.to_backend, &close);
            self.pipeline.push(Expect::CloseComplete {
                forward: false,
                backend_name: Some(close),
            });
        }
        self.to_backend.extend_from_slice(&statement.parse);
        self.pipeline.push(Expect::ParseComplete {
            forward,
            backend_name: Some(name.clone()),
        });
        frontend::describe_statement(&mut self.to_backend, name);
        self.pipeline.push(Expect::Shape {
            cell: shape,
            params: None,
        });
    }

    /// The backend statement a client's Bind or Describe of `client_name` goes to, prepared
    /// here if this connection does not have it, and checked against the shape the client
    /// knows.
    pub(super) async fn ensure_prepared(&mut self, client_name: &str) -> Result<Use, RelayError> {
        let statement = if client_name.is_empty() {
            self.unnamed_prepared.clone()
        } else {
            self.session.statements.get(client_name).cloned()
        };
        let Some(mut statement) = statement else {
            return Ok(Use::AsIs);
        };
        if let Some(fresh) = self.rewritten_again(&statement)? {
            if client_name.is_empty() {
                self.unnamed_prepared = Some(fresh.clone());
            } else {
                self.session
                    .statements
                    .insert(client_name.to_string(), fresh.clone());
            }
            statement = fresh;
        }
        let backend = self.backend.as_mut().expect("ensure_backend ran");
        let there = match backend.prepared.get(&statement.backend_name) {
            Some(there) => there,
            None => {
                let there = ShapeCell::default();
                self.prepare_on_backend(&statement, there.clone(), false);
                there
            }
        };
        let fits = match self.fits(&statement.shape, &there) {
            Some(fits) => fits,
            None => {
                self.await_shapes([&statement.shape, &there]).await?;
                if self.discard_until_sync {
                    return Ok(Use::Dropped);
                }
                // Both described by now, or one never will be: its Parse failed, and the
                // backend reports that itself.
                self.fits(&statement.shape, &there).unwrap_or(true)
            }
        };
        if !fits {
            tracing::debug!(conn = self.id, statement = %statement.backend_name, "statement's shape changed");
            metrics::counter!("redveil_statement_shape_changed_total").increment(1);
            return Ok(Use::Changed);
        }
        Ok(Use::Named(statement.backend_name))
    }

    /// Whether the client's `known` shape fits the preparation `there`; `None` while that
    /// cannot be told before the backend answers a Describe sent already.
    fn fits(&self, known: &ShapeCell, there: &ShapeCell) -> Option<bool> {
        if let Some(fits) = known.fits(there) {
            return Some(fits);
        }
        if known.get().is_none() && !self.pipeline.awaits_shape(known) {
            // The client's own Parse failed: it was never given a shape to hold to.
            return Some(true);
        }
        None
    }

    /// Fails the client's Bind or Describe as PostgreSQL fails a statement whose result type
    /// changed.
    pub(super) fn refuse_changed(&mut self, message_tag: u8) {
        self.refuse_with(CHANGED_SQLSTATE, CHANGED_MESSAGE, message_tag);
    }

    /// Relays backend replies until the Describes that fill in `cells` are answered (or
    /// skipped after an error). Only what was sent before is waited for; the client's next
    /// messages wait in its buffer.
    async fn await_shapes(&mut self, cells: [&ShapeCell; 2]) -> Result<(), RelayError> {
        let pending = |this: &Self| {
            cells
                .iter()
                .any(|c| c.get().is_none() && this.pipeline.awaits_shape(c))
        };
        if !pending(self) {
            return Ok(());
        }
        // The backend holds replies until a Sync or Flush.
        frontend::flush(&mut self.to_backend);
        self.flush_backend().await?;
        while pending(self) {
            let Some(backend) = self.backend.as_mut() else {
                break;
            };
            let backend: &mut BackendConn = backend;
            match backend.stream.read_buf(&mut backend.read_buf).await {
                Ok(0) => return Err(BackendError::Closed.into()),
                Ok(n) => {
                    metrics::counter!("redveil_bytes_from_backend_total").increment(n as u64);
                    self.on_backend_bytes().await?;
                }
                Err(e) => return Err(BackendError::Io(e).into()),
            }
        }
        Ok(())
    }

    /// A statement rewritten for another user or policy version, rewritten for the current
    /// ones; `None` when it still fits. If the current user may not run it, the old version
    /// stays: its class views are gated on the pinned entitlements, so it returns no rows.
    /// The client keeps the shape it knows: the new text must have it too.
    fn rewritten_again(&self, statement: &Statement) -> Result<Option<Statement>, RelayError> {
        let Some(source) = &statement.rewritten_for else {
            return Ok(None);
        };
        let generation = self.settings.policy.current().generation;
        let user = self.session.effective_user();
        if source.generation == generation && source.user == user {
            return Ok(None);
        }
        let original = Parse::decode(&source.client_parse[5..], source.encoding)?;
        let outcome = self.rewrite(&original.query);
        let Ok(rewritten) = outcome.as_ref() else {
            return Ok(None);
        };
        let Some(sql) = &rewritten.sql else {
            return Ok(None);
        };
        let parse = Parse {
            query: sql.as_str().into(),
            ..original
        };
        let rewritten_for = RewrittenFor {
            client_parse: source.client_parse.clone(),
            encoding: source.encoding,
            generation,
            user: user.to_string(),
        };
        Ok(Some(named_statement(
            &parse,
            statement.command.clone(),
            Some(rewritten_for),
            statement.shape.clone(),
            false,
        )))
    }
}
