//! How the proxy fails a client's message itself: a refused statement, a message over the
//! memory budget, a fast-path call, no backend connection. Each fails the way PostgreSQL
//! would, so the client's transaction and extended-protocol batch end as they would there.

use super::{ClientConnection, Flow, RelayError};
use crate::protocol::backend as msg;
use crate::protocol::frontend::{self, Parse};
use crate::protocol::tag;
use crate::rewrite::Denial;
use crate::session::Expect;
use bytes::BytesMut;

/// Not valid SQL in any dialect: the backend answers it with a syntax error.
const REFUSED_PLACEHOLDER: &str = "redveil_refused";

impl ClientConnection {
    /// A fast-path call names a function by OID with binary arguments, past every SQL rule
    /// (`set_config` by OID would forge the identity), so it is relayed only while no data
    /// source is registered: then the proxy is a plain pooler with nothing to protect.
    pub(super) fn function_calls_allowed(&self) -> bool {
        self.settings
            .policy
            .current()
            .catalog
            .data_sources
            .is_empty()
    }

    pub(super) fn refuse_function_call(&mut self) {
        self.refuse(
            &Denial::new("fast-path function calls are not allowed through redveil"),
            tag::QUERY,
        );
    }

    /// Answers a refused statement with 42501. The backend gets a syntax error in its place,
    /// so the transaction (and, in the extended protocol, the skip to Sync) fails exactly as
    /// if PostgreSQL itself had refused the statement; nothing of the client's text is sent.
    pub(super) fn refuse(&mut self, denial: &Denial, message_tag: u8) {
        tracing::info!(conn = self.id, user = %self.session.effective_user(), reason = %denial, "statement refused");
        metrics::counter!("redveil_refused_total").increment(1);
        self.refuse_with(Denial::SQLSTATE, &denial.message, message_tag);
    }

    /// Fails the client's current statement with `code`, through the backend (see `refuse`).
    pub(super) fn refuse_with(&mut self, code: &str, message: &str, message_tag: u8) {
        let mut reply = BytesMut::new();
        msg::error(&mut reply, msg::Severity::Error, code, message);
        if message_tag == tag::QUERY {
            frontend::query(&mut self.to_backend, REFUSED_PLACEHOLDER);
            self.pipeline.push(Expect::Refused(reply.freeze()));
            self.pipeline.push(Expect::Query {
                forward: true,
                commands: Default::default(),
                substitutions: Default::default(),
            });
        } else {
            let placeholder = Parse {
                name: "",
                query: REFUSED_PLACEHOLDER.into(),
                param_types: &[0, 0],
                encoding: Default::default(),
            };
            placeholder.encode_as(&mut self.to_backend, "");
            self.pipeline.push(Expect::Refused(reply.freeze()));
        }
    }

    /// A message that does not fit the memory budget: dropped unread, and the client told
    /// as PostgreSQL tells of memory it cannot get (53200). Its transaction or batch fails
    /// as for any error.
    pub(super) async fn refuse_too_large(
        &mut self,
        message_tag: u8,
        len: usize,
    ) -> Result<(), RelayError> {
        tracing::warn!(
            conn = self.id,
            bytes = len,
            "message refused: the memory budget is spent"
        );
        metrics::counter!("redveil_refused_total", "reason" => "memory").increment(1);
        if self.skip_until_sync || self.discard_until_sync {
            // Dropped unread, as any message in a failed batch is.
            return Ok(());
        }
        if let Err(e) = self.ensure_backend().await {
            self.backend_unavailable(e, message_tag).await?;
            return Ok(());
        }
        let (as_tag, in_batch) = match message_tag {
            tag::QUERY => (tag::QUERY, false),
            _ => (tag::PARSE, true),
        };
        self.in_batch = in_batch;
        self.refuse_with(
            "53200",
            &format!(
                "out of memory: a message of {len} bytes does not fit what is left of redveil's buffer budget (limits.max_buffered_bytes = {}; a message takes twice its size)",
                self.settings.memory.limit()
            ),
            as_tag,
        );
        Ok(())
    }

    /// No backend connection could be had: tell the client, keep the connection.
    pub(super) async fn backend_unavailable(
        &mut self,
        error: crate::backend::BackendError,
        message_tag: u8,
    ) -> Result<Flow, RelayError> {
        tracing::warn!(conn = self.id, error = %error, "no backend connection");
        metrics::counter!("redveil_errors_total", "class" => error.sqlstate()[..2].to_string())
            .increment(1);
        msg::error(
            &mut self.to_client,
            msg::Severity::Error,
            error.sqlstate(),
            &error.to_string(),
        );
        // A simple query or Sync ends its cycle here; in the middle of an extended-protocol
        // batch the client's messages up to its Sync are skipped, as PostgreSQL does after
        // an error.
        if matches!(message_tag, tag::QUERY | tag::SYNC | tag::FUNCTION_CALL) {
            msg::ready_for_query(&mut self.to_client, self.session.tx_status);
        } else {
            self.skip_until_sync = true;
        }
        Ok(Flow::Continue)
    }
}
