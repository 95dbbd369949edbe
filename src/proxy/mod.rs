//! The per-client connection task after login: it `select!`s over client bytes, backend bytes,
//! timeouts and shutdown, and relays. Backend frames go to the client as the backend sent
//! them; the proxy only renames statements, injects replays, and drops or synthesises the
//! replies those cause (see `session::Pipeline`).

pub mod budget;
mod checkout;
mod intercepted;
mod pins;
mod refusals;
mod requests;
mod responses;
mod statement_names;
mod statements;

pub use checkout::checkout_serving;
pub use statement_names::backend_statement_name;

use crate::backend::{BackendConn, BackendError, BackendPool, Checkout};
use crate::config::PoolMode;
use crate::frontend::cancel::CancelSlot;
use crate::net::Stream;
use crate::protocol::backend::{self as msg, Severity};
use crate::protocol::scan::{Direction, Scanner};
use crate::protocol::ProtocolError;
use crate::rewrite::{RewriteCache, SessionCommand};
use crate::session::{Pipeline, Session};
use bytes::{Buf, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How a client connection ended.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client I/O: {0}")]
    ClientIo(std::io::Error),
    #[error("the client took no reply for {} s while holding a backend connection", .0.as_secs())]
    ClientStalled(Duration),
    #[error("client protocol violation: {0}")]
    ClientProtocol(#[from] ProtocolError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Limits and modes the relay needs.
#[derive(Clone)]
pub struct RelaySettings {
    pub mode: PoolMode,
    /// `pool.reuse = "never"`: the connection is closed when the client leaves.
    pub one_client_per_connection: bool,
    pub audit: crate::audit::AuditLog,
    /// See `pool.cache_rewritten_plans`.
    pub cache_rewritten_plans: bool,
    /// The catalog in force: registered tables, subscriptions, who may impersonate whom.
    pub policy: Arc<crate::policy::PolicyHandle>,
    pub rewrites: Arc<RewriteCache>,
    /// The system role's pools, for impersonation tokens (see pins.rs).
    pub control: Arc<crate::policy::control::ControlPools>,
    /// The pool's login role: what `$user` in `search_path` means on the backend.
    pub backend_role: String,
    /// The engine behind the proxy.
    pub dialect: crate::dialect::Dialect,
    pub max_message: usize,
    /// Every database's pool, for closing idle connections a DROP DATABASE would find.
    pub pools: crate::backend::Pools,
    /// Shared by every client: see `budget`.
    pub memory: Arc<budget::MemoryBudget>,
    pub idle_client_timeout: Option<Duration>,
    /// See `flush_client`.
    pub client_write_timeout: Option<Duration>,
    pub idle_in_transaction_timeout: Option<Duration>,
}

/// One logged-in client.
pub struct ClientConnection {
    pub id: u64,
    client: Stream,
    client_buf: BytesMut,
    client_scan: Scanner,
    /// Replies waiting to be written to the client.
    to_client: BytesMut,
    /// Messages waiting to be written to the backend.
    to_backend: BytesMut,
    session: Session,
    pipeline: Pipeline,
    backend: Option<Checkout>,
    pool: BackendPool,
    cancel: Arc<CancelSlot>,
    settings: RelaySettings,
    /// Whether the backend message being streamed in parts goes to the client.
    backend_stream_forward: bool,
    /// Whether the client message being streamed in parts goes to the backend.
    client_stream_forward: bool,
    /// Set on shutdown: close as soon as no transaction is open.
    draining: bool,
    /// After the proxy failed a message itself, client messages are skipped up to Sync.
    skip_until_sync: bool,
    /// A statement in the current extended-protocol batch resets session settings: the
    /// identity must be pinned again once the batch's Sync completes.
    repin_after_sync: bool,
    /// The backend failed an extended-protocol message and discards everything up to the
    /// client's next Sync, which the proxy has not read yet: drop those messages too.
    discard_until_sync: bool,
    /// The client has sent extended-protocol messages since its last Sync (or Query): what
    /// the proxy injects now runs inside that batch, so it may not carry a Sync of its own.
    in_batch: bool,
    /// The backend's own FATAL reached the client: it says why the connection ends, and
    /// nothing of the proxy's follows it.
    backend_fatal_relayed: bool,
    /// The budget held by the large message being read.
    message_reservation: Option<budget::Reservation>,
    /// Tokens minted for this client's impersonations, by user (see pins.rs).
    impersonation_tokens: std::collections::HashMap<String, String>,
    /// Session effect of the unnamed statement.
    unnamed_command: Option<SessionCommand>,
    /// The client's impersonation statements by statement name, and their bound portals with
    /// the result format asked for.
    intercepted_statements: std::collections::HashMap<String, crate::intercept::Intercept>,
    intercepted_portals: std::collections::HashMap<Vec<u8>, (crate::intercept::Intercept, i16)>,
    /// Statements of the current simple query completed so far (for substitutions).
    statement_in_query: usize,
    /// The proxy-named statement a rewritten unnamed statement runs as.
    unnamed_prepared: Option<crate::session::Statement>,
    /// Session effect of each bound portal (portals end with their transaction).
    portal_commands: Vec<(Vec<u8>, Option<SessionCommand>)>,
    /// The backend is in COPY IN and the client has not ended it yet: the backend ignores
    /// Sync and Flush until CopyDone/CopyFail, so those Syncs get no ReadyForQuery.
    copy_in: bool,
    /// CopyDone/CopyFail the client sent before the proxy saw the backend enter COPY IN.
    copy_ends_early: u32,
}

enum Flow {
    Continue,
    Terminate,
}

/// What happened first while flushing to the backend.
enum Step {
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
}

impl ClientConnection {
    pub fn new(
        id: u64,
        client: Stream,
        leftover: BytesMut,
        session: Session,
        pool: BackendPool,
        cancel: Arc<CancelSlot>,
        settings: RelaySettings,
    ) -> Self {
        Self {
            id,
            client,
            client_buf: leftover,
            client_scan: Scanner::new(Direction::FromClient, settings.max_message),
            to_client: BytesMut::with_capacity(16 * 1024),
            to_backend: BytesMut::with_capacity(4 * 1024),
            session,
            pipeline: Pipeline::default(),
            backend: None,
            pool,
            cancel,
            settings,
            backend_stream_forward: true,
            client_stream_forward: true,
            draining: false,
            skip_until_sync: false,
            repin_after_sync: false,
            discard_until_sync: false,
            in_batch: false,
            backend_fatal_relayed: false,
            message_reservation: None,
            impersonation_tokens: Default::default(),
            unnamed_command: None,
            unnamed_prepared: None,
            statement_in_query: 0,
            intercepted_statements: Default::default(),
            intercepted_portals: Default::default(),
            portal_commands: Vec::new(),
            copy_in: false,
            copy_ends_early: 0,
        }
    }

    /// Relays until the client leaves, breaks the protocol, or shutdown ends the session.
    pub async fn run(mut self, shutdown: CancellationToken, hard_stop: CancellationToken) {
        let result = self.relay(&shutdown, &hard_stop).await;
        if let Err(e) = &result {
            self.report(e).await;
        }
        self.finish().await;
        self.client.close().await;
    }

    async fn relay(
        &mut self,
        shutdown: &CancellationToken,
        hard_stop: &CancellationToken,
    ) -> Result<(), RelayError> {
        // Bytes that arrived together with the startup packet are processed first.
        if !self.client_buf.is_empty() {
            if let Flow::Terminate = self.on_client_bytes().await? {
                return Ok(());
            }
        }
        loop {
            let idle_limit = self.idle_limit();
            let idle = async {
                match idle_limit {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let backend_read = async {
                match self.backend.as_mut() {
                    Some(b) => {
                        let b: &mut BackendConn = b;
                        b.stream.read_buf(&mut b.read_buf).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.client.read_buf(&mut self.client_buf) => {
                    match read {
                        Ok(0) => return Ok(()),
                        Ok(_) => {
                            if let Flow::Terminate = self.on_client_bytes().await? {
                                return Ok(());
                            }
                        }
                        Err(e) => return Err(RelayError::ClientIo(e)),
                    }
                }
                read = backend_read => {
                    match read {
                        Ok(0) => return Err(BackendError::Closed.into()),
                        Ok(n) => {
                            metrics::counter!("redveil_bytes_from_backend_total").increment(n as u64);
                            self.on_backend_bytes().await?;
                        }
                        Err(e) => return Err(BackendError::Io(e).into()),
                    }
                }
                _ = idle => {
                    // PostgreSQL's codes: idle_in_transaction_session_timeout is 25P03,
                    // idle_session_timeout 57P05.
                    let in_tx = self.session.tx_status != crate::session::IDLE;
                    let (code, what) = if in_tx { ("25P03", "idle-in-transaction") } else { ("57P05", "idle-session") };
                    self.send_fatal(code, &format!("terminating connection due to {what} timeout")).await;
                    return Ok(());
                }
                _ = shutdown.cancelled(), if !self.draining => {
                    self.draining = true;
                }
                _ = hard_stop.cancelled() => {
                    self.send_fatal("57P01", "terminating connection due to administrator command").await;
                    return Ok(());
                }
            }
            if self.draining && self.backend.is_none() && self.pipeline.is_empty() {
                self.send_fatal(
                    "57P01",
                    "terminating connection due to administrator command",
                )
                .await;
                return Ok(());
            }
        }
    }

    fn idle_limit(&self) -> Option<Duration> {
        if !self.pipeline.is_empty() {
            return None;
        }
        if self.session.tx_status == crate::session::IDLE {
            self.settings.idle_client_timeout
        } else {
            self.settings.idle_in_transaction_timeout
        }
    }

    /// Writes pending replies to the client. While it holds a backend connection, a client
    /// that takes none of them for `client_write_timeout` is evicted: it would hold that
    /// connection (and its transaction's locks) for as long as it likes.
    async fn flush_client(&mut self) -> Result<(), RelayError> {
        if self.to_client.is_empty() {
            return Ok(());
        }
        metrics::counter!("redveil_bytes_to_client_total").increment(self.to_client.len() as u64);
        let stall_limit = self
            .settings
            .client_write_timeout
            .filter(|_| self.backend.is_some());
        let mut written = 0;
        while written < self.to_client.len() {
            let write = self.client.write(&self.to_client[written..]);
            let n = match stall_limit {
                Some(limit) => tokio::time::timeout(limit, write)
                    .await
                    .map_err(|_| RelayError::ClientStalled(limit))?,
                None => write.await,
            }
            .map_err(RelayError::ClientIo)?;
            if n == 0 {
                return Err(RelayError::ClientIo(std::io::ErrorKind::WriteZero.into()));
            }
            written += n;
        }
        // A TLS write can return with records still in the TLS buffer (the socket was full);
        // without a flush they would wait for the next write that may never come.
        let flush = self.client.flush();
        match stall_limit {
            Some(limit) => tokio::time::timeout(limit, flush)
                .await
                .map_err(|_| RelayError::ClientStalled(limit))?,
            None => flush.await,
        }
        .map_err(RelayError::ClientIo)?;
        self.to_client.clear();
        Ok(())
    }

    /// Writes pending messages to the backend (pipelined with any injected ones). While the
    /// backend does not take them, its output is read and relayed: a backend blocked writing
    /// the results of earlier messages reads nothing more, and waiting for it to read would
    /// deadlock a client that pipelines many statements with large results.
    async fn flush_backend(&mut self) -> Result<(), RelayError> {
        if self.to_backend.is_empty() {
            return Ok(());
        }
        loop {
            let Some(backend) = self.backend.as_mut() else {
                self.to_backend.clear();
                return Ok(());
            };
            let backend: &mut BackendConn = backend;
            let pending = &self.to_backend;
            let step = std::future::poll_fn(|cx| {
                let mut stream = Pin::new(&mut backend.stream);
                // Once everything is written, flush what TLS may still hold.
                let io = if pending.is_empty() {
                    stream.as_mut().poll_flush(cx).map_ok(|()| 0)
                } else {
                    stream.as_mut().poll_write(cx, pending)
                };
                if let Poll::Ready(written) = io {
                    return Poll::Ready(Step::Wrote(written));
                }
                tokio_util::io::poll_read_buf(
                    Pin::new(&mut backend.stream),
                    cx,
                    &mut backend.read_buf,
                )
                .map(Step::Read)
            })
            .await;
            match step {
                Step::Wrote(Ok(n)) if n > 0 => {
                    metrics::counter!("redveil_bytes_to_backend_total").increment(n as u64);
                    self.to_backend.advance(n);
                }
                Step::Wrote(Ok(_)) if self.to_backend.is_empty() => return Ok(()),
                Step::Wrote(Ok(_)) => {
                    backend.broken = true;
                    return Err(BackendError::Closed.into());
                }
                Step::Wrote(Err(e)) => {
                    backend.broken = true;
                    return Err(BackendError::Io(e).into());
                }
                Step::Read(Ok(0)) => return Err(BackendError::Closed.into()),
                Step::Read(Ok(n)) => {
                    metrics::counter!("redveil_bytes_from_backend_total").increment(n as u64);
                    self.on_backend_bytes().await?;
                }
                Step::Read(Err(e)) => return Err(BackendError::Io(e).into()),
            }
        }
    }

    /// A client-visible error for a failure that ended the connection.
    async fn report(&mut self, error: &RelayError) {
        match error {
            RelayError::ClientStalled(_) => {
                tracing::warn!(conn = self.id, user = %self.session.effective_user(), reason = %error, "client evicted");
                metrics::counter!("redveil_clients_evicted_total").increment(1);
            }
            RelayError::ClientIo(e) => {
                tracing::debug!(conn = self.id, error = %e, "client connection lost")
            }
            RelayError::ClientProtocol(e) => {
                tracing::warn!(conn = self.id, error = %e, "client protocol violation");
                metrics::counter!("redveil_errors_total", "class" => e.sqlstate()[..2].to_string())
                    .increment(1);
                self.send_fatal(e.sqlstate(), &format!("invalid frontend message: {e}"))
                    .await;
            }
            RelayError::Backend(e) if self.backend_fatal_relayed => {
                tracing::info!(conn = self.id, error = %e, "the server ended the session");
                let _ = self.flush_client().await;
            }
            RelayError::Backend(e) => {
                tracing::warn!(conn = self.id, error = %e, "backend failed during a statement");
                metrics::counter!("redveil_errors_total", "class" => "08").increment(1);
                self.send_fatal(e.sqlstate(), &format!("server connection lost: {e}"))
                    .await;
            }
        }
    }

    async fn send_fatal(&mut self, code: &str, message: &str) {
        self.to_client.clear();
        msg::error(&mut self.to_client, Severity::Fatal, code, message);
        let _ = self.flush_client().await;
    }

    /// Returns or discards the backend connection when the client is gone.
    async fn finish(&mut self) {
        self.retire_impersonation_tokens(true).await;
        if let Some(mut backend) = self.backend.take() {
            // A client that left mid-batch (no Sync after its last extended-protocol message)
            // leaves the backend waiting for that Sync, inside the batch's implicit
            // transaction: handed to anyone else it would hang them or run their statements
            // in that transaction. Closed instead.
            let clean = self.pipeline.is_empty()
                && !self.client_scan.mid_message()
                && !backend.broken
                && !self.in_batch
                && !self.discard_until_sync;
            if clean && self.settings.one_client_per_connection {
                backend.broken = true;
            } else if clean && self.settings.mode == PoolMode::Session {
                crate::backend::reset_session(&mut backend, self.settings.dialect).await;
            } else if clean && self.session.tx_status != crate::session::IDLE {
                crate::backend::rollback(&mut backend).await;
            } else if !clean {
                backend.broken = true;
            }
            self.cancel.clear().await;
            drop(backend);
        }
    }

    /// Relays the replies the proxy answered itself that are now next in line.
    fn emit_synthetic(&mut self) {
        let settled = self
            .pipeline
            .emit_synthetic(&mut self.to_client, self.session.tx_status);
        for outside_transaction in settled {
            self.session.impersonation.settle(outside_transaction);
        }
    }
}
