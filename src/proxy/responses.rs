//! Backend → client: relays replies as the backend sent them, dropping the replies to what the
//! proxy injected and inserting the ones it answers itself, and tracks transaction state.

use super::{ClientConnection, RelayError};
use crate::protocol::backend::{decode_command_tag, decode_parameter_status, ErrorFields};
use crate::protocol::scan::Piece;
use crate::protocol::tag;
use crate::session::{Expect, Shape};
use bytes::Bytes;

impl ClientConnection {
    /// Relays every complete piece in the backend buffer.
    pub(super) async fn on_backend_bytes(&mut self) -> Result<(), RelayError> {
        while let Some(backend) = self.backend.as_mut() {
            let backend: &mut crate::backend::BackendConn = backend;
            let Some(piece) = backend.scanner.next(&mut backend.read_buf)? else {
                break;
            };
            match piece {
                Piece::Large { .. } => {
                    return Err(crate::protocol::ProtocolError::Invalid(
                        "a backend message announced as large",
                    )
                    .into())
                }
                Piece::Chunk(bytes) => {
                    if self.backend_stream_forward {
                        self.to_client.extend_from_slice(&bytes);
                    }
                }
                Piece::Start { tag, raw, .. } => {
                    self.backend_stream_forward = self.on_backend_message(tag, &raw)?;
                    if self.backend_stream_forward {
                        self.to_client.extend_from_slice(&raw);
                    }
                }
                Piece::Message { tag, raw } => {
                    if self.on_backend_message(tag, &raw)? {
                        self.to_client.extend_from_slice(&raw);
                    }
                    if tag == tag::READY_FOR_QUERY {
                        self.after_ready().await?;
                    }
                }
            }
            // Keep memory flat while a large result streams through.
            if self.to_client.len() >= 256 * 1024 {
                self.flush_client().await?;
            }
        }
        self.flush_client().await
    }

    /// Matches one backend message against what is expected; returns whether it is relayed.
    /// `raw` holds the whole message for the types the proxy reads (never streamed).
    fn on_backend_message(&mut self, message_tag: u8, raw: &Bytes) -> Result<bool, RelayError> {
        self.emit_synthetic();
        if let Some(relay) = self.substituted(message_tag) {
            return Ok(relay);
        }
        if matches!(self.pipeline.front(), Some(Expect::Pin { .. })) {
            return self.on_pin_reply(message_tag, &raw[5..]);
        }
        let body = &raw[5..];
        if self.on_shape_reply(message_tag, body) {
            return Ok(false);
        }
        let forward = self.pipeline.front().is_none_or(Expect::forwards);
        match message_tag {
            tag::PARSE_COMPLETE => {
                if let Some(Expect::ParseComplete { forward, .. }) = self.pipeline.pop() {
                    return Ok(forward);
                }
            }
            tag::BIND_COMPLETE | tag::NO_DATA | tag::PORTAL_SUSPENDED => {
                self.pipeline.pop();
            }
            tag::CLOSE_COMPLETE => {
                if let Some(Expect::CloseComplete { forward, .. }) = self.pipeline.pop() {
                    return Ok(forward);
                }
            }
            tag::ROW_DESCRIPTION => {
                if matches!(self.pipeline.front(), Some(Expect::Describe)) {
                    self.pipeline.pop();
                }
            }
            tag::EMPTY_QUERY => {
                if matches!(self.pipeline.front(), Some(Expect::Execute { .. })) {
                    self.pipeline.pop();
                }
            }
            tag::COPY_IN_RESPONSE => self.on_copy_in(),
            tag::COMMAND_COMPLETE => self.on_command_complete(decode_command_tag(body)?),
            tag::PARAMETER_STATUS => {
                let (name, value) = decode_parameter_status(body)?;
                tracing::trace!(conn = self.id, %name, %value, "parameter status");
                if name == "client_encoding" {
                    self.session.text_encoding =
                        crate::protocol::encoding::TextEncoding::of(&value);
                }
                if name == "standard_conforming_strings" {
                    self.session.lexing = self.settings.dialect.lexing(Some(&value));
                }
            }
            tag::ERROR_RESPONSE => {
                let fields = ErrorFields::decode(body)?;
                if let Some(Expect::Refused(_)) = self.pipeline.front() {
                    if let Some(Expect::Refused(reply)) = self.pipeline.pop() {
                        self.to_client.extend_from_slice(&reply);
                    }
                    self.session.error_seen();
                    self.skip_after_error();
                    return Ok(false);
                }
                self.on_statement_error(&fields);
                // A statement the proxy prepared for the client fails as the client's next
                // message would have (PostgreSQL would have reported it at the Bind).
                let client_owned = forward
                    || matches!(
                        self.pipeline.front(),
                        Some(Expect::ParseComplete { .. } | Expect::Shape { .. })
                    );
                self.on_error(&fields, client_owned);
                return Ok(true);
            }
            tag::READY_FOR_QUERY => {
                let status = body.first().copied().unwrap_or(b'I');
                let expect = self.pipeline.pop();
                let client_owned = expect.as_ref().is_none_or(Expect::forwards);
                if client_owned {
                    let undone = self.session.transaction_failed();
                    if let Some(Expect::Query { substitutions, .. }) = &expect {
                        // An error ended the string before these: they never happened.
                        let skipped = substitutions.iter().filter(|s| s.impersonation).count();
                        self.session.impersonation.discard_queued(skipped);
                    }
                    if self.session.ready(status) {
                        let fingerprint = match self.session.take_startup_value_restored() {
                            true => crate::session::SETTINGS_UNKNOWN,
                            false => self.session.state.fingerprint(),
                        };
                        if let Some(backend) = self.backend.as_mut() {
                            backend.settings = fingerprint;
                            // Sticky: a PREPARE whose transaction failed still exists.
                            backend.has_sql_prepared |=
                                self.session.state.prepared().next().is_some();
                        }
                    }
                    if status == crate::session::IDLE {
                        self.portal_commands.clear();
                        if let Some(backend) = self.backend.as_mut().filter(|_| undone) {
                            // The failed transaction's rollback may have undone a pin made
                            // inside it (whether it was is not known here: the proxy's view of
                            // the status lags behind pipelined messages), so pin again. An
                            // explicit ROLLBACK forgot it already (`on_command_complete`).
                            backend.pinned = None;
                        }
                    }
                    if matches!(expect, Some(Expect::Sync))
                        && std::mem::take(&mut self.repin_after_sync)
                    {
                        if let Some(backend) = self.backend.as_mut() {
                            backend.pinned = None;
                            backend.engine_ready = false;
                        }
                    }
                }
                return Ok(client_owned);
            }
            _ => {}
        }
        Ok(forward)
    }

    /// Within a simple query some of whose statements the proxy answers itself: drops the
    /// backend's replies to those and relays the proxy's. `None` when not applicable.
    fn substituted(&mut self, message_tag: u8) -> Option<bool> {
        let Some(Expect::Query { substitutions, .. }) = self.pipeline.front_mut() else {
            return None;
        };
        let ends_statement = matches!(message_tag, tag::COMMAND_COMPLETE | tag::EMPTY_QUERY);
        if message_tag == tag::READY_FOR_QUERY || message_tag == tag::ERROR_RESPONSE {
            self.statement_in_query = 0;
            return None;
        }
        let current = self.statement_in_query;
        if ends_statement {
            self.statement_in_query += 1;
        }
        if substitutions.front().is_none_or(|s| s.index != current) {
            return None;
        }
        if !matches!(
            message_tag,
            tag::ROW_DESCRIPTION | tag::DATA_ROW | tag::COMMAND_COMPLETE | tag::EMPTY_QUERY
        ) {
            return None;
        }
        if ends_statement {
            let substitution = substitutions.pop_front().expect("checked");
            self.to_client.extend_from_slice(&substitution.reply);
            if substitution.impersonation {
                // Its place: within the string's transaction, after the statements before it.
                self.session.impersonation.settle(false);
            }
        }
        Some(false)
    }

    /// The backend entered COPY IN. Until the client's CopyDone or CopyFail it ignores Sync
    /// (libpq and tokio-postgres send one right after the COPY's Execute), so Syncs the
    /// client sent since the COPY started get no ReadyForQuery and must not be waited for.
    fn on_copy_in(&mut self) {
        if self.copy_ends_early > 0 {
            // The client pipelined its CopyDone without waiting for CopyInResponse; the Syncs
            // queued so far include ones after the CopyDone, which the backend will answer.
            self.copy_ends_early -= 1;
            return;
        }
        self.pipeline.drop_syncs_behind_front();
        self.copy_in = true;
    }

    fn on_command_complete(&mut self, command_tag: &str) {
        let client_owned = self.pipeline.front().is_none_or(Expect::forwards);
        let command = match self.pipeline.front_mut() {
            Some(Expect::Execute { .. }) => match self.pipeline.pop() {
                Some(Expect::Execute { command: Some(c) }) if c.completes_with(command_tag) => {
                    Some(c)
                }
                _ => None,
            },
            Some(Expect::Query {
                forward: true,
                commands,
                ..
            }) if commands
                .front()
                .is_some_and(|c| c.completes_with(command_tag)) =>
            {
                commands.pop_front()
            }
            _ => None,
        };
        if command_tag == "ROLLBACK" {
            // Also ROLLBACK TO SAVEPOINT, which may undo a pin made after the savepoint.
            if let Some(backend) = self.backend.as_mut() {
                backend.pinned = None;
            }
        }
        if client_owned {
            self.session.command_done(command_tag, command);
        }
    }

    fn on_error(&mut self, fields: &ErrorFields, client_owned: bool) {
        metrics::counter!("redveil_errors_total", "class" => fields.code.get(..2).unwrap_or("XX").to_string())
            .increment(1);
        if fields.is_fatal() {
            if let Some(backend) = self.backend.as_mut() {
                backend.broken = true;
            }
            self.backend_fatal_relayed |= client_owned;
        }
        if !client_owned {
            // A replay the proxy injected failed: this connection's state is unknown.
            tracing::warn!(conn = self.id, code = %fields.code, message = %fields.message, "session replay failed");
            if let Some(backend) = self.backend.as_mut() {
                backend.broken = true;
            }
        }
        if client_owned {
            self.session.error_seen();
        }
        self.skip_after_error();
    }

    /// A reply to the Describe that follows each of the proxy's preparations: it fills in
    /// that preparation's shape and is dropped. Returns false for anything else (an error,
    /// say, handled as usual).
    fn on_shape_reply(&mut self, message_tag: u8, body: &[u8]) -> bool {
        let Some(Expect::Shape { params, .. }) = self.pipeline.front_mut() else {
            return false;
        };
        match message_tag {
            tag::PARAMETER_DESCRIPTION => {
                *params = Some(Bytes::copy_from_slice(body));
                true
            }
            tag::ROW_DESCRIPTION | tag::NO_DATA => {
                let Some(Expect::Shape { cell, params }) = self.pipeline.pop() else {
                    unreachable!("checked above");
                };
                let rows = (message_tag == tag::ROW_DESCRIPTION).then_some(body);
                cell.set(Shape::of(params.as_deref().unwrap_or(&[0, 0]), rows));
                true
            }
            _ => false,
        }
    }

    /// PostgreSQL found a statement's plan stale (a schema change under it): 0A000 when its
    /// result type changed, or a lookup of a dropped type or relation. Which of the proxy's
    /// statements it was is not known here, so none of this connection's is used again before
    /// it is prepared anew (a shape check then decides whether each client may use it).
    fn on_statement_error(&mut self, fields: &ErrorFields) {
        let at_use = matches!(
            self.pipeline.front(),
            Some(Expect::BindComplete | Expect::Describe)
        );
        let stale = fields.code == crate::session::CHANGED_SQLSTATE
            || (fields.code == "XX000" && fields.message.starts_with("cache lookup failed"));
        if at_use && stale {
            if let Some(backend) = self.backend.as_mut() {
                backend.prepared.doubt_all();
            }
        }
    }

    /// A reply to an identity pin (see pins.rs): dropped, except what belongs to the client.
    fn on_pin_reply(&mut self, message_tag: u8, body: &[u8]) -> Result<bool, RelayError> {
        let Some(Expect::Pin {
            synced,
            closes_left,
        }) = self.pipeline.front_mut()
        else {
            return Ok(false);
        };
        match message_tag {
            // Asynchronous: the client's LISTEN, not the pin's.
            tag::NOTIFICATION => return Ok(true),
            tag::CLOSE_COMPLETE if !*synced => {
                *closes_left = closes_left.saturating_sub(1);
                if *closes_left == 0 {
                    self.pipeline.pop();
                }
            }
            tag::READY_FOR_QUERY if *synced => {
                self.pipeline.pop();
            }
            tag::ERROR_RESPONSE => {
                let fields = ErrorFields::decode(body)?;
                if *synced {
                    // Its ReadyForQuery follows and ends it.
                    self.on_pin_error(&fields);
                    return Ok(false);
                }
                // Inside the client's batch the backend now skips to the client's Sync, as
                // it would have after the client's own next message failed the same way
                // (a pin fails only in a failed transaction): the error is the batch's.
                self.pipeline.pop();
                if let Some(backend) = self.backend.as_mut() {
                    backend.pinned = None;
                }
                self.on_error(&fields, true);
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    /// The pin failed. Inside a failed transaction that is expected (the client's statement
    /// fails the same way); anywhere else the connection's identity is unknown, so it is
    /// never reused.
    fn on_pin_error(&mut self, fields: &ErrorFields) {
        let in_block = self.session.tx_status != crate::session::IDLE;
        if let Some(backend) = self.backend.as_mut() {
            backend.pinned = None;
            if !in_block {
                tracing::error!(conn = self.id, code = %fields.code, message = %fields.message, "pinning the identity failed");
                backend.broken = true;
            }
        }
    }

    /// In the extended protocol the backend skips everything up to Sync after an error.
    fn skip_after_error(&mut self) {
        match self.pipeline.front() {
            Some(Expect::Query { .. }) | Some(Expect::FunctionCall) | Some(Expect::Sync) | None => {
            }
            Some(_) => {
                let skipped = self.pipeline.skip_to_sync();
                if let Some(backend) = self.backend.as_mut() {
                    for name in skipped.unprepared {
                        backend.prepared.doubt(&name);
                    }
                    if skipped.pin {
                        backend.pinned = None;
                    }
                }
                self.session
                    .impersonation
                    .discard_queued(skipped.impersonations);
                // The client's Sync has not been read yet: what it sends before that Sync
                // the backend discards, so it is dropped here and expects no reply.
                self.discard_until_sync = self.pipeline.is_empty();
            }
        }
    }

    /// After ReadyForQuery: give the connection back at a transaction boundary.
    async fn after_ready(&mut self) -> Result<(), RelayError> {
        // Replies the proxy answered itself may be next in line now.
        self.emit_synthetic();
        if self.pipeline.is_empty() && self.session.tx_status == crate::session::IDLE {
            self.retire_impersonation_tokens(false).await;
            self.flush_client().await?;
            self.release_if_done().await;
        }
        Ok(())
    }
}
