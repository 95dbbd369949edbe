//! Statements that change session state: SET, RESET, PREPARE, DEALLOCATE, DISCARD. Transaction
//! pooling records them per client and replays them on the backend connection that serves it.
//! Also the transaction commands that decide which of those changes last (COMMIT, ROLLBACK,
//! savepoints).

mod set;
#[cfg(test)]
mod tests;

use super::lexer::{tokens, Token};
use set::{classify_set, classify_set_config, normalise_name};

/// What a statement does to session state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// A session-level `SET name = value`; `value` is the SQL text after `=`/`TO`.
    Set {
        name: String,
        value: String,
    },
    Reset {
        name: String,
    },
    /// `SELECT [pg_catalog.]set_config('name', 'value', false)` and nothing else (pg_dump's
    /// first statement): `value` is raw, as the server takes it there (`''` is an empty
    /// search_path, where `SET search_path = ''` names one schema called "").
    SetRaw {
        name: String,
        value: String,
    },
    /// `SET name TO DEFAULT` (or `= DEFAULT`): a reset, answered with the tag SET.
    SetDefault {
        name: String,
    },
    /// `SET SESSION CHARACTERISTICS AS TRANSACTION ...`: the `default_transaction_*` settings
    /// it sets, with their SQL values.
    Characteristics(Vec<(String, String)>),
    ResetAll,
    /// `PREPARE name AS ...`; `sql` is the whole statement, to replay verbatim.
    Prepare {
        name: String,
        sql: String,
    },
    Deallocate {
        name: String,
    },
    DeallocateAll,
    DiscardAll,
    /// Same command tag, but nothing to replay (SET LOCAL, SET TRANSACTION, DISCARD PLANS…).
    Untracked {
        tag: &'static str,
    },
    /// Ends the transaction or works on its savepoints.
    Transaction(TransactionCommand),
}

/// A statement that decides which of a transaction's session changes last, as it does for
/// `set_config(..., false)`. Savepoint names are identifiers: folded unless quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionCommand {
    /// `COMMIT`, `END`, also `AND CHAIN` (tagged ROLLBACK in a failed transaction).
    Commit,
    /// `ROLLBACK`, `ABORT`, also `AND CHAIN`.
    Rollback,
    Savepoint(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
}

impl SessionCommand {
    /// The CommandComplete tag PostgreSQL answers this statement with.
    pub fn tag(&self) -> &'static str {
        match self {
            SessionCommand::Set { .. }
            | SessionCommand::SetDefault { .. }
            | SessionCommand::Characteristics(_) => "SET",
            SessionCommand::Reset { .. } | SessionCommand::ResetAll => "RESET",
            SessionCommand::SetRaw { .. } => "SELECT 1",
            SessionCommand::Prepare { .. } => "PREPARE",
            SessionCommand::Deallocate { .. } => "DEALLOCATE",
            SessionCommand::DeallocateAll => "DEALLOCATE ALL",
            SessionCommand::DiscardAll => "DISCARD ALL",
            SessionCommand::Untracked { tag } => tag,
            SessionCommand::Transaction(command) => match command {
                TransactionCommand::Commit => "COMMIT",
                TransactionCommand::Rollback | TransactionCommand::RollbackTo(_) => "ROLLBACK",
                TransactionCommand::Savepoint(_) => "SAVEPOINT",
                TransactionCommand::Release(_) => "RELEASE",
            },
        }
    }

    /// Whether a CommandComplete with `tag` is this statement's: a COMMIT of a failed
    /// transaction is answered ROLLBACK.
    pub fn completes_with(&self, tag: &str) -> bool {
        self.tag() == tag
            || (*self == SessionCommand::Transaction(TransactionCommand::Commit)
                && tag == "ROLLBACK")
    }
}

/// Classifies one statement; `None` when it does not touch session state.
pub fn classify(statement: &str) -> Option<SessionCommand> {
    // Runs on every statement: look past the first word only when it can start a session
    // command.
    let mut rest = tokens(statement);
    let first = rest.next()?;
    match &first {
        Token::Word(w) if w.eq_ignore_ascii_case("select") => return classify_set_config(rest),
        Token::Word(w)
            if [
                "set",
                "reset",
                "prepare",
                "deallocate",
                "discard",
                "commit",
                "end",
                "rollback",
                "abort",
                "savepoint",
                "release",
            ]
            .iter()
            .any(|verb| w.eq_ignore_ascii_case(verb)) => {}
        _ => return None,
    }
    let toks: Vec<Token<'_>> = std::iter::once(first).chain(rest.take(5)).collect();
    let first = word(toks.first())?;
    match first.as_str() {
        "set" => Some(classify_set(statement, &toks)),
        "reset" => Some(match toks.get(1) {
            Some(t) if word(Some(t)).as_deref() == Some("all") => SessionCommand::ResetAll,
            // The two-word names, as SET spells them.
            Some(t) => match (word(Some(t)).as_deref(), word(toks.get(2)).as_deref()) {
                (Some("time"), Some("zone")) => SessionCommand::Reset {
                    name: "timezone".into(),
                },
                (Some("session"), Some("authorization")) => SessionCommand::Reset {
                    name: "session_authorization".into(),
                },
                _ => match ident(t) {
                    Some(name) => SessionCommand::Reset {
                        name: normalise_name(&name, &toks[2..]),
                    },
                    None => SessionCommand::Untracked { tag: "RESET" },
                },
            },
            None => SessionCommand::Untracked { tag: "RESET" },
        }),
        "prepare" => {
            let name = toks.get(1).and_then(ident)?;
            if name == "transaction" {
                return Some(SessionCommand::Untracked {
                    tag: "PREPARE TRANSACTION",
                });
            }
            Some(SessionCommand::Prepare {
                name,
                sql: statement.trim().to_string(),
            })
        }
        "deallocate" => {
            let mut rest = toks[1..].iter();
            let mut next = rest.next();
            if word(next).as_deref() == Some("prepare") {
                next = rest.next();
            }
            match next {
                Some(t) if word(Some(t)).as_deref() == Some("all") => {
                    Some(SessionCommand::DeallocateAll)
                }
                Some(t) => ident(t).map(|name| SessionCommand::Deallocate { name }),
                None => None,
            }
        }
        "discard" => Some(match word(toks.get(1)).as_deref() {
            Some("all") => SessionCommand::DiscardAll,
            Some("plans") => SessionCommand::Untracked {
                tag: "DISCARD PLANS",
            },
            Some("sequences") => SessionCommand::Untracked {
                tag: "DISCARD SEQUENCES",
            },
            Some("temp") | Some("temporary") => SessionCommand::Untracked {
                tag: "DISCARD TEMP",
            },
            _ => SessionCommand::Untracked { tag: "DISCARD" },
        }),
        verb => classify_transaction(verb, &toks[1..]).map(SessionCommand::Transaction),
    }
}

/// COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE; `None` for their PREPARED forms and for
/// text the server will refuse anyway.
fn classify_transaction(verb: &str, rest: &[Token<'_>]) -> Option<TransactionCommand> {
    let mut rest = rest;
    if matches!(verb, "commit" | "end" | "rollback" | "abort")
        && matches!(word(rest.first()).as_deref(), Some("work" | "transaction"))
    {
        rest = &rest[1..];
    }
    match verb {
        "commit" | "end" if word(rest.first()).as_deref() != Some("prepared") => {
            Some(TransactionCommand::Commit)
        }
        "rollback" if word(rest.first()).as_deref() == Some("to") => {
            savepoint_name(&rest[1..]).map(TransactionCommand::RollbackTo)
        }
        "rollback" | "abort" if word(rest.first()).as_deref() != Some("prepared") => {
            Some(TransactionCommand::Rollback)
        }
        "savepoint" => rest
            .first()
            .and_then(identifier)
            .map(TransactionCommand::Savepoint),
        "release" => savepoint_name(rest).map(TransactionCommand::Release),
        _ => None,
    }
}

/// The name after `ROLLBACK ... TO` or `RELEASE`: `[SAVEPOINT] name`, where `SAVEPOINT` alone
/// is the name.
fn savepoint_name(rest: &[Token<'_>]) -> Option<String> {
    match rest {
        [first, name, ..] if word(Some(first)).as_deref() == Some("savepoint") => identifier(name),
        [name, ..] => identifier(name),
        [] => None,
    }
}

/// A savepoint name as the server keeps it: ASCII letters folded unless quoted, cut to 63
/// bytes (NAMEDATALEN - 1) on a character boundary.
fn identifier(token: &Token<'_>) -> Option<String> {
    let mut name = match token {
        Token::Word(w) => w.to_ascii_lowercase(),
        Token::Quoted(q) if !q.is_empty() => q.clone(),
        _ => return None,
    };
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    Some(name)
}

pub(super) fn word(token: Option<&Token<'_>>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

/// An identifier with PostgreSQL's folding: unquoted lower-cased, quoted kept.
pub(super) fn ident(token: &Token<'_>) -> Option<String> {
    match token {
        Token::Word(w) => Some(w.to_lowercase()),
        Token::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}
