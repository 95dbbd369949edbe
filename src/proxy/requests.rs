//! Client → backend: what each client message becomes on the backend connection.

use super::statement_names::named_statement;
use super::statements::Use;
use super::{ClientConnection, Flow, RelayError};
use crate::protocol::backend as msg;
use crate::protocol::frontend::{self, BindHead, Parse, Target};
use crate::protocol::scan::Piece;
use crate::protocol::{tag, ProtocolError};
use crate::rewrite::{
    classify, database_to_free, split_statements, Denial, Outcome, Scope, SessionCommand,
};
use crate::session::{Expect, RewrittenFor, ShapeCell};
use bytes::{Bytes, BytesMut};

impl ClientConnection {
    /// Handles every complete piece in the client buffer, then writes once to each side.
    pub(super) async fn on_client_bytes(&mut self) -> Result<Flow, RelayError> {
        let mut flow = Flow::Continue;
        while let Some(piece) = self.client_scan.next(&mut self.client_buf)? {
            if let Piece::Large { tag, len } = piece {
                // The message, and the copy of it sent on to the backend.
                match self.settings.memory.try_reserve(2 * len) {
                    Some(reservation) => {
                        self.message_reservation = Some(reservation);
                        self.client_scan.admit();
                    }
                    None => {
                        self.client_scan.discard(&mut self.client_buf, len);
                        self.refuse_too_large(tag, len).await?;
                    }
                }
                continue;
            }
            let whole = matches!(piece, Piece::Message { .. });
            metrics::counter!("redveil_client_messages_total").increment(1);
            if let Flow::Terminate = self.on_client_piece(piece).await? {
                flow = Flow::Terminate;
                break;
            }
            if whole && self.message_reservation.take().is_some() {
                // The message shared the buffer's allocation: give it back, keeping only
                // what came after it.
                self.client_buf = BytesMut::from(&self.client_buf[..]);
            }
        }
        self.emit_synthetic();
        self.flush_backend().await?;
        self.flush_client().await?;
        if matches!(flow, Flow::Continue) {
            self.release_if_done().await;
        }
        Ok(flow)
    }

    async fn on_client_piece(&mut self, piece: Piece) -> Result<Flow, RelayError> {
        let (message_tag, raw) = match piece {
            Piece::Chunk(bytes) => {
                if self.client_stream_forward {
                    self.to_backend.extend_from_slice(&bytes);
                    // Stream large messages through instead of accumulating them.
                    if self.to_backend.len() >= 256 * 1024 {
                        self.flush_backend().await?;
                    }
                }
                return Ok(Flow::Continue);
            }
            Piece::Start { tag, raw, .. } => return self.on_client_stream_start(tag, raw).await,
            Piece::Message { tag, raw } => (tag, raw),
            // Decided by `on_client_bytes` before it gets here.
            Piece::Large { .. } => return Ok(Flow::Continue),
        };
        if message_tag == tag::TERMINATE {
            return Ok(Flow::Terminate);
        }
        if self.skip_until_sync {
            if message_tag == tag::SYNC {
                self.skip_until_sync = false;
                msg::ready_for_query(&mut self.to_client, self.session.tx_status);
            }
            return Ok(Flow::Continue);
        }
        if self.discard_until_sync {
            if message_tag != tag::SYNC {
                return Ok(Flow::Continue);
            }
            // The error also ended any COPY IN: this Sync is answered.
            self.discard_until_sync = false;
            self.copy_in = false;
        }
        if let Err(e) = self.ensure_backend().await {
            return self.backend_unavailable(e, message_tag).await;
        }
        self.in_batch = match message_tag {
            tag::SYNC | tag::QUERY | tag::FUNCTION_CALL => false,
            tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => self.in_batch,
            _ => true,
        };
        let body = &raw[5..];
        match message_tag {
            tag::QUERY => {
                let encoding = self.session.text_encoding;
                let text = match frontend::query_text(body, encoding) {
                    Err(ProtocolError::Text(e)) => {
                        self.refuse_with(e.sqlstate(), &e.to_string(), tag::QUERY);
                        return Ok(Flow::Continue);
                    }
                    other => other?,
                };
                metrics::counter!("redveil_statements_total", "protocol" => "simple").increment(1);
                let statements = split_statements(&text);
                for database in statements.iter().filter_map(|s| database_to_free(s)) {
                    self.settings.pools.close_idle(&database);
                }
                if self.intercept_query(&statements).await? {
                    return Ok(Flow::Continue);
                }
                let outcome = self.rewrite(&text);
                let rewritten = match outcome.as_ref() {
                    Ok(rewritten) => rewritten,
                    Err(denial) => {
                        self.refuse(denial, tag::QUERY);
                        return Ok(Flow::Continue);
                    }
                };
                // A simple query destroys the unnamed statement.
                self.unnamed_prepared = None;
                // Session commands are recorded as sent: a PREPARE is replayed on other
                // backend connections, so it must be the rewritten text, never the raw one.
                let sent_statements = match rewritten.sql.as_deref() {
                    Some(sql) => split_statements(sql),
                    None => statements,
                };
                let commands: std::collections::VecDeque<_> =
                    sent_statements.into_iter().filter_map(classify).collect();
                let drops_statements = commands.iter().any(drops_backend_statements);
                self.note_sql_prepare(commands.iter());
                self.pipeline.push(Expect::Query {
                    forward: true,
                    commands,
                    substitutions: Default::default(),
                });
                match &rewritten.sql {
                    Some(sql) => frontend::query_in(&mut self.to_backend, sql, encoding),
                    None => self.to_backend.extend_from_slice(&raw),
                }
                let backend = self.backend.as_mut().expect("ensure_backend ran");
                if rewritten.resets_session {
                    backend.pinned = None;
                    backend.engine_ready = false;
                }
                if drops_statements {
                    backend.forget_statements();
                }
            }
            tag::PARSE => {
                if !self.intercept_parse(&raw)? {
                    self.on_parse(&raw)?;
                }
            }
            tag::BIND if self.intercept_bind(&raw)? => {}
            tag::BIND => {
                let head = BindHead::decode(body)?;
                let rest = &body[head.rest_offset..];
                self.write_bind(&head, rest, rest.len()).await?;
            }
            tag::DESCRIBE => {
                let target = Target::decode(body)?;
                if self.intercept_describe(target.kind, target.name) {
                    return Ok(Flow::Continue);
                }
                let used = match target.is_statement() {
                    true => self.ensure_prepared(target.name).await?,
                    false => Use::AsIs,
                };
                match used {
                    Use::AsIs => self.to_backend.extend_from_slice(&raw),
                    Use::Named(name) => {
                        target.encode_as(&mut self.to_backend, tag::DESCRIBE, &name)
                    }
                    Use::Changed => {
                        self.refuse_changed(tag::DESCRIBE);
                        return Ok(Flow::Continue);
                    }
                    Use::Dropped => return Ok(Flow::Continue),
                }
                self.pipeline.push(Expect::Describe);
            }
            tag::EXECUTE => {
                let portal = crate::protocol::BodyReader::new(body).cstr_bytes()?;
                if self.intercept_execute(portal) {
                    return Ok(Flow::Continue);
                }
                let command = self.portal_command(portal);
                self.note_sql_prepare(command.iter());
                if matches!(
                    command,
                    Some(SessionCommand::ResetAll | SessionCommand::DiscardAll)
                ) {
                    // The pin sent before this batch is undone when the portal runs.
                    self.repin_after_sync = true;
                }
                if command.as_ref().is_some_and(drops_backend_statements) {
                    self.backend
                        .as_mut()
                        .expect("ensure_backend ran")
                        .forget_statements();
                }
                self.pipeline.push(Expect::Execute { command });
                self.to_backend.extend_from_slice(&raw);
                metrics::counter!("redveil_statements_total", "protocol" => "extended")
                    .increment(1);
            }
            tag::CLOSE => {
                let target = Target::decode(body)?;
                if self.intercept_close(target.kind, target.name) {
                    return Ok(Flow::Continue);
                }
                let named = target.is_statement() && !target.name.is_empty();
                let removed = named
                    .then(|| self.session.statements.remove(target.name))
                    .flatten();
                // Under the client's own name (session mode): closed on the backend, as on a
                // direct connection, so that SQL can use the name again.
                let own_name = removed
                    .as_ref()
                    .is_some_and(|s| s.backend_name == target.name);
                if named && !own_name {
                    // The proxy's backend statement may serve other clients; only the client's
                    // name goes away.
                    let mut reply = BytesMut::new();
                    msg::close_complete(&mut reply);
                    self.pipeline.push(Expect::Synthetic(reply.freeze()));
                } else if own_name {
                    let backend = self.backend.as_mut().expect("ensure_backend ran");
                    backend.prepared.doubt(target.name);
                    self.to_backend.extend_from_slice(&raw);
                    self.pipeline.push(Expect::CloseComplete {
                        forward: true,
                        backend_name: None,
                    });
                } else {
                    if target.is_statement() {
                        self.unnamed_prepared = None;
                    }
                    self.to_backend.extend_from_slice(&raw);
                    self.pipeline.push(Expect::CloseComplete {
                        forward: true,
                        backend_name: None,
                    });
                }
            }
            tag::SYNC => {
                self.to_backend.extend_from_slice(&raw);
                if !self.copy_in {
                    self.pipeline.push(Expect::Sync);
                }
            }
            tag::FUNCTION_CALL if self.function_calls_allowed() => {
                self.to_backend.extend_from_slice(&raw);
                self.pipeline.push(Expect::FunctionCall);
            }
            tag::FUNCTION_CALL => self.refuse_function_call(),
            tag::COPY_DONE | tag::COPY_FAIL => {
                self.to_backend.extend_from_slice(&raw);
                if !std::mem::take(&mut self.copy_in) {
                    self.copy_ends_early += 1;
                }
            }
            tag::FLUSH | tag::COPY_DATA => {
                self.to_backend.extend_from_slice(&raw);
            }
            other => return Err(ProtocolError::Unexpected(other as char).into()),
        }
        Ok(Flow::Continue)
    }

    /// The first part of a large Bind, CopyData or FunctionCall.
    async fn on_client_stream_start(
        &mut self,
        message_tag: u8,
        raw: Bytes,
    ) -> Result<Flow, RelayError> {
        if self.skip_until_sync || self.discard_until_sync {
            self.client_stream_forward = false;
            return Ok(Flow::Continue);
        }
        if let Err(e) = self.ensure_backend().await {
            self.client_stream_forward = false;
            return self.backend_unavailable(e, message_tag).await;
        }
        if message_tag == tag::BIND {
            self.in_batch = true;
        }
        self.client_stream_forward = true;
        let declared = i32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize - 4;
        match message_tag {
            tag::BIND => {
                let head = BindHead::decode(&raw[5..])?;
                let rest_len = declared - head.rest_offset;
                // The rest of a Bind that does not go to the backend is dropped as it comes.
                self.client_stream_forward = self
                    .write_bind(&head, &raw[5 + head.rest_offset..], rest_len)
                    .await?;
            }
            tag::FUNCTION_CALL if self.function_calls_allowed() => {
                self.pipeline.push(Expect::FunctionCall);
                self.to_backend.extend_from_slice(&raw);
            }
            tag::FUNCTION_CALL => {
                self.client_stream_forward = false;
                self.refuse_function_call();
            }
            _ => self.to_backend.extend_from_slice(&raw),
        }
        self.flush_backend().await?;
        Ok(Flow::Continue)
    }

    fn on_parse(&mut self, raw: &[u8]) -> Result<(), RelayError> {
        let original = match Parse::decode(&raw[5..], self.session.text_encoding) {
            Err(ProtocolError::Text(e)) => {
                self.refuse_with(e.sqlstate(), &e.to_string(), tag::PARSE);
                return Ok(());
            }
            other => other?,
        };
        let session_mode = self.settings.mode == crate::config::PoolMode::Session;
        if session_mode && self.session.statements.contains_key(original.name) {
            // As the server answers (in transaction mode the proxy's backend names are its
            // own, and a name given again simply replaces the statement).
            let message = format!("prepared statement \"{}\" already exists", original.name);
            self.refuse_with("42P05", &message, tag::PARSE);
            return Ok(());
        }
        let outcome = self.rewrite(&original.query);
        let rewritten = match outcome.as_ref() {
            Ok(rewritten) => rewritten,
            Err(denial) => {
                self.refuse(denial, tag::PARSE);
                return Ok(());
            }
        };
        if rewritten.resets_session {
            // Takes effect when executed; the identity is pinned again after the Sync.
            self.repin_after_sync = true;
        }
        // As sent (see the simple-query path): a PREPARE is replayed in its rewritten form.
        let command = split_statements(rewritten.sql.as_deref().unwrap_or(&original.query))
            .first()
            .and_then(|s| classify(s));
        let rewritten_for = rewritten.sql.as_ref().map(|_| RewrittenFor {
            client_parse: Bytes::copy_from_slice(raw),
            encoding: original.encoding,
            generation: self.settings.policy.current().generation,
            user: self.session.effective_user().to_string(),
        });
        let parse = match &rewritten.sql {
            Some(sql) => Parse {
                query: sql.as_str().into(),
                ..original
            },
            None => original,
        };
        if parse.name.is_empty() {
            self.unnamed_command = command.clone();
            if rewritten.sql.is_none() || !self.settings.cache_rewritten_plans {
                self.unnamed_prepared = None;
                match rewritten.sql {
                    Some(_) => parse.encode_as(&mut self.to_backend, ""),
                    None => self.to_backend.extend_from_slice(raw),
                }
                self.pipeline.push(Expect::ParseComplete {
                    forward: true,
                    backend_name: None,
                });
                return Ok(());
            }
            // Otherwise: a policy view costs more to plan than to run, so the rewritten
            // statement is prepared under the proxy's name once per backend connection, and
            // the client's unnamed statement maps to it (`prepare_for_client`).
        }
        let statement = named_statement(
            &parse,
            command,
            rewritten_for,
            ShapeCell::default(),
            session_mode,
        );
        self.prepare_for_client(&parse, statement);
        Ok(())
    }

    /// Sends registered-table references to the effective user's views, with the session's
    /// search_path.
    pub(super) fn rewrite(&self, sql: &str) -> Outcome {
        self.rewrite_as(sql, self.session.effective_user())
    }

    /// Rewrites as `user` would read: its class views, its subscriptions.
    pub(super) fn rewrite_as(&self, sql: &str, user: &str) -> Outcome {
        let search_path = self.session.search_path(&self.settings.backend_role);
        // Read per statement, so a reloaded catalog applies from the next one.
        let policy = self.settings.policy.current();
        let registry = policy.registry(&self.session.database, user);
        let outcome = self.settings.rewrites.rewrite(
            sql,
            Scope {
                registry: &registry,
                database: &self.session.database,
                search_path,
                backend_role: &self.settings.backend_role,
                dialect: self.settings.dialect,
                lexing: self.session.lexing,
            },
        );
        // Subscription is the effective user's, so it is checked on every use, cached or not.
        if let Ok(rewritten) = outcome.as_ref() {
            if let Some(source) = rewritten
                .data_sources
                .iter()
                .find(|source| !policy.catalog.subscribed(user, source))
            {
                return std::sync::Arc::new(Err(Denial::new(format!(
                    "user \"{user}\" is not subscribed to data source \"{source}\""
                ))));
            }
        }
        outcome
    }

    /// Sends a client's Bind (its head, renamed for the proxy's statement, and `rest`, the
    /// first bytes of its `rest_len` bytes of values and formats). Returns whether it went to
    /// the backend: a statement whose shape changed is refused instead.
    async fn write_bind(
        &mut self,
        head: &BindHead<'_>,
        rest: &[u8],
        rest_len: usize,
    ) -> Result<bool, RelayError> {
        let command = if head.statement.is_empty() {
            self.unnamed_command.clone()
        } else {
            self.session
                .statements
                .get(head.statement)
                .and_then(|s| s.command.clone())
        };
        self.portal_commands
            .retain(|(p, _)| p.as_slice() != head.portal);
        self.portal_commands.push((head.portal.to_vec(), command));
        match self.ensure_prepared(head.statement).await? {
            Use::Named(name) => head.encode_head_as(&mut self.to_backend, &name, rest_len),
            Use::AsIs => head.encode_head_as(&mut self.to_backend, head.statement, rest_len),
            Use::Changed => {
                self.refuse_changed(tag::BIND);
                return Ok(false);
            }
            Use::Dropped => return Ok(false),
        }
        self.to_backend.extend_from_slice(rest);
        self.pipeline.push(Expect::BindComplete);
        Ok(true)
    }

    fn portal_command(&self, portal: &[u8]) -> Option<SessionCommand> {
        self.portal_commands
            .iter()
            .find(|(p, _)| p.as_slice() == portal)
            .and_then(|(_, c)| c.clone())
    }
}

impl ClientConnection {
    /// A SQL-level PREPARE was sent: it exists on the connection whether or not its
    /// transaction commits (PREPARE is not transactional), so the next client's clean
    /// deallocates it.
    fn note_sql_prepare<'a>(&mut self, mut commands: impl Iterator<Item = &'a SessionCommand>) {
        if commands.any(|c| matches!(c, SessionCommand::Prepare { .. })) {
            if let Some(backend) = self.backend.as_mut() {
                backend.has_sql_prepared = true;
            }
        }
    }
}

/// Whether a client's command deallocates the proxy's statements on the backend too.
fn drops_backend_statements(command: &SessionCommand) -> bool {
    matches!(
        command,
        SessionCommand::DiscardAll | SessionCommand::DeallocateAll
    )
}
