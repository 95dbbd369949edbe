//! Statements that change session state: SET, RESET, PREPARE, DEALLOCATE, DISCARD. Transaction
//! pooling records them per client and replays them on the backend connection that serves it.

use super::lexer::{tokens, Token};

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
}

impl SessionCommand {
    /// The CommandComplete tag PostgreSQL answers this statement with.
    pub fn tag(&self) -> &'static str {
        match self {
            SessionCommand::Set { .. } => "SET",
            SessionCommand::Reset { .. } | SessionCommand::ResetAll => "RESET",
            SessionCommand::Prepare { .. } => "PREPARE",
            SessionCommand::Deallocate { .. } => "DEALLOCATE",
            SessionCommand::DeallocateAll => "DEALLOCATE ALL",
            SessionCommand::DiscardAll => "DISCARD ALL",
            SessionCommand::Untracked { tag } => tag,
        }
    }
}

/// Classifies one statement; `None` when it does not touch session state.
pub fn classify(statement: &str) -> Option<SessionCommand> {
    // Runs on every statement: look past the first word only when it can start a session
    // command.
    let mut rest = tokens(statement);
    let first = rest.next()?;
    match &first {
        Token::Word(w)
            if ["set", "reset", "prepare", "deallocate", "discard"]
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
            Some(t) => match ident(t) {
                Some(name) => SessionCommand::Reset {
                    name: normalise_name(&name, &toks[2..]),
                },
                None => SessionCommand::Untracked { tag: "RESET" },
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
        _ => None,
    }
}

fn classify_set(statement: &str, toks: &[Token<'_>]) -> SessionCommand {
    let mut i = 1;
    match word(toks.get(i)).as_deref() {
        Some("local") | Some("transaction") | Some("constraints") => {
            return SessionCommand::Untracked { tag: "SET" }
        }
        Some("session") => {
            if word(toks.get(2)).as_deref() == Some("characteristics") {
                return SessionCommand::Untracked { tag: "SET" };
            }
            i = 2;
        }
        _ => {}
    }
    let (name, value_from) = match (
        word(toks.get(i)).as_deref(),
        word(toks.get(i + 1)).as_deref(),
    ) {
        (Some("time"), Some("zone")) => ("timezone".to_string(), i + 2),
        (Some("session"), Some("authorization")) => ("session_authorization".to_string(), i + 2),
        (Some("role"), _) => ("role".to_string(), i + 1),
        (Some("names"), _) => ("client_encoding".to_string(), i + 1),
        _ => match toks.get(i).and_then(ident) {
            Some(first) => {
                let name = normalise_name(&first, &toks[i + 1..]);
                let dotted = name.matches('.').count();
                (name, i + 1 + 2 * dotted)
            }
            None => return SessionCommand::Untracked { tag: "SET" },
        },
    };
    let value = value_text(statement, toks, value_from);
    if value.eq_ignore_ascii_case("default") {
        return SessionCommand::Reset { name };
    }
    SessionCommand::Set { name, value }
}

/// The statement text after the `=`/`TO` that follows token `from`.
fn value_text(statement: &str, toks: &[Token<'_>], from: usize) -> String {
    let skip_assign = matches!(toks.get(from), Some(Token::Symbol('=')))
        || word(toks.get(from)).as_deref() == Some("to");
    let value_tok = if skip_assign { from + 1 } else { from };
    let anchor = match toks.get(value_tok) {
        Some(Token::Word(w)) | Some(Token::Literal(w)) => Some(*w),
        _ => None,
    };
    // The head tokens borrow from `statement`, so their offset finds where the value starts.
    match anchor {
        Some(w) => {
            let offset = w.as_ptr() as usize - statement.as_ptr() as usize;
            statement[offset..].trim().to_string()
        }
        None => {
            let mut rest = statement.trim();
            for t in toks.iter().take(value_tok) {
                let text = match t {
                    Token::Word(w) | Token::Literal(w) => w.to_string(),
                    Token::Quoted(q) => format!("\"{}\"", q.replace('"', "\"\"")),
                    Token::Symbol(c) => c.to_string(),
                };
                if let Some(pos) = rest.find(&text) {
                    rest = rest[pos + text.len()..].trim_start();
                }
            }
            rest.to_string()
        }
    }
}

/// `a . b` for custom settings such as `immuta.user`, lower-cased like PostgreSQL does.
fn normalise_name(first: &str, rest: &[Token<'_>]) -> String {
    let mut name = first.to_string();
    let mut iter = rest.iter();
    while let (Some(Token::Symbol('.')), Some(next)) = (iter.next(), iter.next()) {
        match ident(next) {
            Some(part) => {
                name.push('.');
                name.push_str(&part);
            }
            None => break,
        }
    }
    name
}

fn word(token: Option<&Token<'_>>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

/// An identifier with PostgreSQL's folding: unquoted lower-cased, quoted kept.
fn ident(token: &Token<'_>) -> Option<String> {
    match token {
        Token::Word(w) => Some(w.to_lowercase()),
        Token::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionCommand::*;

    fn set(name: &str, value: &str) -> Option<SessionCommand> {
        Some(Set {
            name: name.into(),
            value: value.into(),
        })
    }

    #[test]
    fn set_forms() {
        assert_eq!(
            classify("SET search_path TO a, \"B\""),
            set("search_path", "a, \"B\"")
        );
        assert_eq!(
            classify("set SESSION DateStyle = 'ISO'"),
            set("datestyle", "'ISO'")
        );
        assert_eq!(classify("SET TIME ZONE 'UTC'"), set("timezone", "'UTC'"));
        assert_eq!(classify("SET my.Custom = 5"), set("my.custom", "5"));
        assert_eq!(
            classify("SET statement_timeout TO DEFAULT"),
            Some(Reset {
                name: "statement_timeout".into()
            })
        );
        assert_eq!(
            classify("SET LOCAL work_mem = '1MB'"),
            Some(Untracked { tag: "SET" })
        );
        assert_eq!(
            classify("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Some(Untracked { tag: "SET" })
        );
        assert_eq!(classify("set role bob"), set("role", "bob"));
    }

    #[test]
    fn other_commands() {
        assert_eq!(classify("RESET ALL"), Some(ResetAll));
        assert_eq!(
            classify("reset Work_Mem"),
            Some(Reset {
                name: "work_mem".into()
            })
        );
        assert_eq!(
            classify("PREPARE Q1 (int) AS select $1"),
            Some(Prepare {
                name: "q1".into(),
                sql: "PREPARE Q1 (int) AS select $1".into()
            })
        );
        assert_eq!(
            classify("DEALLOCATE PREPARE \"Q\""),
            Some(Deallocate { name: "Q".into() })
        );
        assert_eq!(classify("deallocate all"), Some(DeallocateAll));
        assert_eq!(classify("DISCARD ALL"), Some(DiscardAll));
        assert_eq!(classify("select 1"), None);
        assert_eq!(classify("-- SET x = 1\nselect 1"), None);
    }
}
