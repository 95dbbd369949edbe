//! Per-client session state: who logged in, the transaction status, the client's prepared
//! statements, and the session settings that transaction pooling must carry from one backend
//! connection to the next. The connection task owns its session; nothing here is shared.

mod impersonation;
mod pipeline;
mod state;

pub use impersonation::Impersonation;
pub use pipeline::{Expect, Pipeline, Skipped, Substitution};
pub use state::{quote_literal, RewrittenFor, SessionState, Statement};

use crate::rewrite::SessionCommand;
use std::collections::HashMap;

/// Transaction status as reported by ReadyForQuery.
pub const IDLE: u8 = b'I';

/// One client's session.
pub struct Session {
    pub login: String,
    pub database: String,
    /// The client's named statements by the client's name.
    pub statements: HashMap<String, Statement>,
    /// Settings and SQL-prepared statements as committed.
    pub state: SessionState,
    /// `state`'s search_path, parsed once per change rather than for every statement.
    search_path: std::cell::OnceCell<Vec<String>>,
    /// Session commands run in the current (possibly implicit) transaction, applied to
    /// `state` when it commits and dropped when it rolls back.
    pending: Vec<SessionCommand>,
    /// An error happened since the last ReadyForQuery in status idle.
    failed: bool,
    pub tx_status: u8,
    pub impersonation: Impersonation,
    /// The client's address, for audit records.
    pub peer: String,
}

impl Session {
    pub fn new(login: String, database: String, startup_settings: Vec<(String, String)>) -> Self {
        Self {
            login,
            database,
            statements: HashMap::new(),
            state: SessionState::from_startup(startup_settings),
            search_path: std::cell::OnceCell::new(),
            pending: Vec::new(),
            failed: false,
            tx_status: IDLE,
            impersonation: Impersonation::default(),
            peer: String::new(),
        }
    }

    /// The schemas of the session's search_path, `$user` meaning `backend_role`.
    pub fn search_path(&self, backend_role: &str) -> &[String] {
        self.search_path
            .get_or_init(|| self.state.search_path(backend_role))
    }

    /// Whose policies apply to the next statement.
    pub fn effective_user(&self) -> &str {
        self.impersonation.current().unwrap_or(&self.login)
    }

    /// A session command completed on the backend.
    pub fn command_done(&mut self, command: SessionCommand) {
        self.pending.push(command);
    }

    /// An ErrorResponse was relayed: the current transaction will roll back.
    pub fn error_seen(&mut self) {
        self.failed = true;
    }

    /// Whether the transaction now ending saw an error, so rolls back (read before `ready`).
    pub fn transaction_failed(&self) -> bool {
        self.failed
    }

    /// ReadyForQuery arrived. Returns true when the committed state changed.
    pub fn ready(&mut self, status: u8, rolled_back: bool) -> bool {
        self.tx_status = status;
        if status != IDLE {
            return false;
        }
        let pending = std::mem::take(&mut self.pending);
        let failed = std::mem::replace(&mut self.failed, false);
        if failed || rolled_back {
            self.impersonation.rollback();
            return false;
        }
        self.impersonation.commit();
        if pending.is_empty() {
            return false;
        }
        for command in pending {
            // DISCARD ALL deallocates protocol-level statements too.
            if command == SessionCommand::DiscardAll {
                self.statements.clear();
            }
            self.state.apply(command);
            self.search_path.take();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_follows_committed_sets_only() {
        let mut s = Session::new("u".into(), "demo".into(), Vec::new());
        assert_eq!(s.search_path("q"), ["q", "public"]);
        let set_hr = || SessionCommand::Set {
            name: "search_path".into(),
            value: "hr".into(),
        };
        s.command_done(set_hr());
        s.error_seen();
        s.ready(IDLE, false);
        assert_eq!(s.search_path("q"), ["q", "public"], "rolled back");
        s.command_done(set_hr());
        s.ready(IDLE, false);
        assert_eq!(s.search_path("q"), ["hr"]);
    }
}
