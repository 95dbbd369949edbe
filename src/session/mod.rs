//! Per-client session state: who logged in, the transaction status, the client's prepared
//! statements, and the session settings that transaction pooling must carry from one backend
//! connection to the next. The connection task owns its session; nothing here is shared.

mod impersonation;
mod pipeline;
mod savepoints;
mod shape;
mod state;

pub use crate::dialect::quote_literal;
pub use impersonation::Impersonation;
pub use pipeline::{Expect, Pipeline, Skipped, Substitution};
pub use shape::{Shape, ShapeCell, CHANGED_MESSAGE, CHANGED_SQLSTATE};
pub use state::{RewrittenFor, SessionState, Statement, SETTINGS_UNKNOWN};

use crate::rewrite::{SessionCommand, TransactionCommand};
use savepoints::Savepoints;
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
    /// The transaction block's savepoints, each with how many of `pending` it keeps.
    savepoints: Savepoints<usize>,
    /// The current transaction failed (an error not recovered by a ROLLBACK TO since).
    failed: bool,
    /// `state` changed since the last ReadyForQuery.
    state_changed: bool,
    /// A committed RESET put a startup value back that the backend connection does not have.
    startup_value_restored: bool,
    pub tx_status: u8,
    pub impersonation: Impersonation,
    /// The client's address, for audit records.
    pub peer: String,
    /// How the client's SQL text is read: follows the server's `client_encoding`.
    pub text_encoding: crate::protocol::encoding::TextEncoding,
    /// How the backend reads plain string literals: the `standard_conforming_strings` it
    /// reported last (at login, then after each change).
    pub lexing: crate::dialect::Lexing,
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
            savepoints: Savepoints::default(),
            failed: false,
            state_changed: false,
            startup_value_restored: false,
            tx_status: IDLE,
            impersonation: Impersonation::default(),
            peer: String::new(),
            text_encoding: Default::default(),
            lexing: Default::default(),
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

    /// A client statement completed on the backend with `tag`; `command` is what it was
    /// classified as, if anything. Takes effect in the backend's order, so relative to
    /// impersonation changes (see `Impersonation::settle`) in the order they were made.
    pub fn command_done(&mut self, tag: &str, command: Option<SessionCommand>) {
        use TransactionCommand::{Release, RollbackTo, Savepoint};
        match command {
            Some(SessionCommand::Transaction(
                ref savepoint @ (Savepoint(_) | RollbackTo(_) | Release(_)),
            )) => self.savepoint_command(savepoint),
            // Any COMMIT or ROLLBACK tag but ROLLBACK TO's ends the transaction, AND CHAIN
            // included (a new one starts at once).
            _ if tag == "COMMIT" => self.end_transaction(true),
            _ if tag == "ROLLBACK" => self.end_transaction(false),
            Some(SessionCommand::Transaction(_)) | None => {}
            Some(command) => self.pending.push(command),
        }
    }

    fn savepoint_command(&mut self, command: &TransactionCommand) {
        match command {
            TransactionCommand::Savepoint(name) => {
                self.savepoints.push(name.clone(), self.pending.len())
            }
            TransactionCommand::RollbackTo(name) => {
                if let Some(&kept) = self.savepoints.rollback_to(name) {
                    self.pending.truncate(kept);
                }
                // The transaction is usable again: what follows may commit.
                self.failed = false;
            }
            TransactionCommand::Release(name) => self.savepoints.release(name),
            TransactionCommand::Commit | TransactionCommand::Rollback => {}
        }
        self.impersonation.transaction(command);
    }

    /// An ErrorResponse was relayed: the current transaction will roll back.
    pub fn error_seen(&mut self) {
        self.failed = true;
    }

    /// Whether the transaction now ending saw an error, so rolls back (read before `ready`).
    pub fn transaction_failed(&self) -> bool {
        self.failed
    }

    /// ReadyForQuery arrived: in status idle any implicit transaction has ended. Returns true
    /// when the committed state changed since the last one.
    pub fn ready(&mut self, status: u8) -> bool {
        self.tx_status = status;
        if status == IDLE {
            self.end_transaction(!self.failed);
        }
        std::mem::take(&mut self.state_changed)
    }

    /// Whether the backend connection's settings are behind the session's since the last
    /// call (see `startup_value_restored`).
    pub fn take_startup_value_restored(&mut self) -> bool {
        std::mem::take(&mut self.startup_value_restored)
    }

    fn end_transaction(&mut self, commit: bool) {
        self.failed = false;
        self.savepoints.clear();
        let pending = std::mem::take(&mut self.pending);
        if !commit {
            self.impersonation.rollback();
            return;
        }
        self.impersonation.commit();
        for command in pending {
            // DISCARD ALL and DEALLOCATE deallocate protocol-level statements too: SQL and
            // the protocol share one namespace.
            match &command {
                SessionCommand::DiscardAll | SessionCommand::DeallocateAll => {
                    self.statements.clear()
                }
                SessionCommand::Deallocate { name } => {
                    self.statements.remove(name);
                }
                _ => {}
            }
            self.startup_value_restored |= self.state.restores_startup_value(&command);
            self.state.apply(command);
            self.search_path.take();
            self.state_changed = true;
        }
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
        s.command_done("SET", Some(set_hr()));
        s.error_seen();
        s.ready(IDLE);
        assert_eq!(s.search_path("q"), ["q", "public"], "rolled back");
        s.command_done("SET", Some(set_hr()));
        assert!(s.ready(IDLE));
        assert_eq!(s.search_path("q"), ["hr"]);
    }

    fn tx(command: TransactionCommand) -> Option<SessionCommand> {
        Some(SessionCommand::Transaction(command))
    }

    fn set(value: &str) -> Option<SessionCommand> {
        Some(SessionCommand::Set {
            name: "search_path".into(),
            value: value.into(),
        })
    }

    #[test]
    fn savepoints_govern_settings_and_impersonation_alike() {
        use TransactionCommand::*;
        let mut s = Session::new("u".into(), "demo".into(), Vec::new());
        s.ready(b'T');
        s.command_done("SET", set("a"));
        s.command_done("SAVEPOINT", tx(Savepoint("x".into())));
        s.command_done("SET", set("b"));
        s.impersonation.set(Some("analyst".into()));
        s.command_done("ROLLBACK", tx(RollbackTo("x".into())));
        assert_eq!(s.effective_user(), "u");
        s.command_done("SAVEPOINT", tx(Savepoint("y".into())));
        s.command_done("SET", set("c"));
        s.command_done("RELEASE", tx(Release("y".into())));
        assert!(!s.ready(b'T'));
        s.command_done("COMMIT", tx(Commit));
        assert!(s.ready(IDLE));
        assert_eq!(s.search_path("q"), ["c"]);
    }

    #[test]
    fn rollback_to_recovers_a_failed_transaction() {
        use TransactionCommand::*;
        let mut s = Session::new("u".into(), "demo".into(), Vec::new());
        s.command_done("SAVEPOINT", tx(Savepoint("x".into())));
        s.command_done("SET", set("a"));
        s.error_seen();
        s.command_done("ROLLBACK", tx(RollbackTo("x".into())));
        s.command_done("SET", set("b"));
        s.command_done("COMMIT", tx(Commit));
        assert!(s.ready(IDLE));
        assert_eq!(s.search_path("q"), ["b"]);
        // A COMMIT of a failed transaction is answered ROLLBACK.
        s.command_done("SET", set("c"));
        s.error_seen();
        s.command_done("ROLLBACK", tx(Commit));
        assert!(!s.ready(IDLE));
        assert_eq!(s.search_path("q"), ["b"]);
    }

    #[test]
    fn chained_commits_and_rollbacks_end_the_transaction_at_once() {
        use TransactionCommand::*;
        let mut s = Session::new("u".into(), "demo".into(), Vec::new());
        s.command_done("SET", set("a"));
        s.impersonation.set(Some("analyst".into()));
        s.command_done("COMMIT", tx(Commit));
        s.command_done("SET", set("b"));
        s.impersonation.set(Some("admin".into()));
        s.command_done("ROLLBACK", tx(Rollback));
        assert!(s.ready(b'T'));
        s.command_done("ROLLBACK", tx(Rollback));
        assert!(!s.ready(IDLE));
        assert_eq!(s.search_path("q"), ["a"]);
        assert_eq!(s.effective_user(), "analyst");
    }
}
