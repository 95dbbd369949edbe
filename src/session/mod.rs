//! Per-client session state: who logged in, the transaction status, the client's prepared
//! statements, and the session settings that transaction pooling must carry from one backend
//! connection to the next. The connection task owns its session; nothing here is shared.

mod impersonation;
mod pipeline;
mod state;

pub use impersonation::Impersonation;
pub use pipeline::{Expect, Pipeline, Substitution};
pub use state::{quote_literal, SessionState, Statement};

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
            pending: Vec::new(),
            failed: false,
            tx_status: IDLE,
            impersonation: Impersonation::default(),
            peer: String::new(),
        }
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
        }
        true
    }
}
