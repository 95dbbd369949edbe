//! Statements that change session state: SET, RESET, PREPARE, DEALLOCATE, DISCARD. Transaction
//! pooling records them per client and replays them on the backend connection that serves it.
//! Also the transaction commands that decide which of those changes last (COMMIT, ROLLBACK,
//! savepoints).

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

fn classify_set(statement: &str, toks: &[Token<'_>]) -> SessionCommand {
    let mut i = 1;
    match word(toks.get(i)).as_deref() {
        Some("local") | Some("transaction") | Some("constraints") => {
            return SessionCommand::Untracked { tag: "SET" }
        }
        Some("session") => {
            if word(toks.get(2)).as_deref() == Some("characteristics") {
                return characteristics(statement);
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
    if is_default(&value) {
        return SessionCommand::SetDefault { name };
    }
    SessionCommand::Set { name, value }
}

/// The value `DEFAULT`, in any case, comments around it allowed (`'default'` is a string).
fn is_default(value: &str) -> bool {
    let mut value = tokens(value);
    matches!(
        (value.next(), value.next()),
        (Some(Token::Word(w)), None) if w.eq_ignore_ascii_case("default")
    )
}

/// `SET SESSION CHARACTERISTICS AS TRANSACTION mode [, ...]`, each mode one of `ISOLATION
/// LEVEL {SERIALIZABLE | REPEATABLE READ | READ COMMITTED | READ UNCOMMITTED}`, `READ
/// {WRITE | ONLY}`, `[NOT] DEFERRABLE`, as the settings they set. Text that is not exactly
/// that is left untracked (the server refuses it).
fn characteristics(statement: &str) -> SessionCommand {
    let words: Option<Vec<String>> = tokens(statement)
        .skip(3)
        .filter(|t| !matches!(t, Token::Symbol(',')))
        .map(|t| word(Some(&t)))
        .collect();
    let untracked = SessionCommand::Untracked { tag: "SET" };
    let Some(words) = words else {
        return untracked;
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let ["as", "transaction", modes @ ..] = words.as_slice() else {
        return untracked;
    };
    let mut modes: &[&str] = modes;
    let mut settings = Vec::new();
    while !modes.is_empty() {
        let (setting, value, rest): (&str, &str, _) = match modes {
            ["isolation", "level", "serializable", rest @ ..] => {
                ("isolation", "serializable", rest)
            }
            ["isolation", "level", "repeatable", "read", rest @ ..] => {
                ("isolation", "repeatable read", rest)
            }
            ["isolation", "level", "read", "committed", rest @ ..] => {
                ("isolation", "read committed", rest)
            }
            ["isolation", "level", "read", "uncommitted", rest @ ..] => {
                ("isolation", "read uncommitted", rest)
            }
            ["read", "only", rest @ ..] => ("read_only", "on", rest),
            ["read", "write", rest @ ..] => ("read_only", "off", rest),
            ["deferrable", rest @ ..] => ("deferrable", "on", rest),
            ["not", "deferrable", rest @ ..] => ("deferrable", "off", rest),
            _ => return untracked,
        };
        settings.push((
            format!("default_transaction_{setting}"),
            format!("'{value}'"),
        ));
        modes = rest;
    }
    if settings.is_empty() {
        return untracked;
    }
    SessionCommand::Characteristics(settings)
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

/// What follows `SELECT` in `SELECT [pg_catalog.]set_config('name', 'value', false)`, the
/// whole statement, with plain literals (no backslash, so read alike under either
/// `standard_conforming_strings`). Any other SELECT is `None` after a token or two.
fn classify_set_config<'a>(mut rest: impl Iterator<Item = Token<'a>>) -> Option<SessionCommand> {
    // Every SELECT comes here: the common case ends at the first word, without allocating.
    let first = rest.next()?;
    let Token::Word(first_word) = first else {
        return None;
    };
    if !first_word.eq_ignore_ascii_case("set_config")
        && !first_word.eq_ignore_ascii_case("pg_catalog")
    {
        return None;
    }
    let next_word = |rest: &mut dyn Iterator<Item = Token<'a>>| word(rest.next().as_ref());
    let mut function = first_word.to_ascii_lowercase();
    if function == "pg_catalog" {
        if rest.next() != Some(Token::Symbol('.')) {
            return None;
        }
        function = next_word(&mut rest)?;
    }
    if function != "set_config" || rest.next() != Some(Token::Symbol('(')) {
        return None;
    }
    // A literal the lexer ended at the end of the text has no closing quote.
    let plain = |token: Option<Token<'_>>| match token {
        Some(Token::Literal(l))
            if l.len() >= 2 && l.starts_with('\'') && l.ends_with('\'') && !l.contains('\\') =>
        {
            Some(l[1..l.len() - 1].replace("''", "'"))
        }
        _ => None,
    };
    let name = plain(rest.next())?.trim().to_ascii_lowercase();
    if rest.next() != Some(Token::Symbol(',')) {
        return None;
    }
    let value = plain(rest.next())?;
    let session_wide = rest.next() == Some(Token::Symbol(','))
        && next_word(&mut rest).as_deref() == Some("false")
        && rest.next() == Some(Token::Symbol(')'));
    let rest: Vec<Token<'_>> = rest.collect();
    (session_wide && matches!(rest.as_slice(), [] | [Token::Symbol(';')]))
        .then_some(SessionCommand::SetRaw { name, value })
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
        for sql in [
            "SET statement_timeout TO DEFAULT",
            "set Statement_Timeout = default",
            "SET SESSION statement_timeout TO DEFAULT -- back",
        ] {
            assert_eq!(
                classify(sql),
                Some(SetDefault {
                    name: "statement_timeout".into()
                }),
                "{sql}"
            );
        }
        assert_eq!(
            classify("SET search_path TO default_schema"),
            set("search_path", "default_schema")
        );
        assert_eq!(
            classify("SET LOCAL work_mem TO DEFAULT"),
            Some(Untracked { tag: "SET" })
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
    fn two_word_names_reset_as_they_are_set() {
        let reset = |name: &str| Some(Reset { name: name.into() });
        assert_eq!(classify("RESET TIME ZONE"), reset("timezone"));
        assert_eq!(
            classify("reset session authorization"),
            reset("session_authorization")
        );
        assert_eq!(classify("RESET timezone"), reset("timezone"));
        assert_eq!(classify("RESET ROLE"), reset("role"));
    }

    #[test]
    fn session_characteristics() {
        let characteristics = |pairs: &[(&str, &str)]| {
            Some(Characteristics(
                pairs
                    .iter()
                    .map(|(k, v)| (format!("default_transaction_{k}"), format!("'{v}'")))
                    .collect(),
            ))
        };
        assert_eq!(
            classify("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            characteristics(&[("isolation", "serializable")])
        );
        assert_eq!(
            classify(
                "set session characteristics as transaction read only, isolation level \
                 repeatable read not deferrable"
            ),
            characteristics(&[
                ("read_only", "on"),
                ("isolation", "repeatable read"),
                ("deferrable", "off")
            ])
        );
        assert_eq!(
            classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE, /* x */ DEFERRABLE, ISOLATION LEVEL READ UNCOMMITTED"),
            characteristics(&[
                ("read_only", "off"),
                ("deferrable", "on"),
                ("isolation", "read uncommitted")
            ])
        );
        assert_eq!(
            classify("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            characteristics(&[("isolation", "read committed")])
        );
        for sql in [
            "SET SESSION CHARACTERISTICS AS TRANSACTION",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL CHAOS",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY 'x'",
            "SET SESSION CHARACTERISTICS TRANSACTION READ ONLY",
        ] {
            assert_eq!(classify(sql), Some(Untracked { tag: "SET" }), "{sql}");
        }
        assert_eq!(
            Characteristics(Vec::new()).tag(),
            "SET",
            "answered as SET, like SET x TO DEFAULT"
        );
        assert!(SetDefault { name: "x".into() }.completes_with("SET"));
    }

    #[test]
    fn a_whole_statement_of_set_config_is_tracked_raw() {
        let raw = |name: &str, value: &str| {
            Some(SessionCommand::SetRaw {
                name: name.into(),
                value: value.into(),
            })
        };
        assert_eq!(
            classify("SELECT pg_catalog.set_config('search_path', '', false);"),
            raw("search_path", "")
        );
        assert_eq!(
            classify("select SET_CONFIG('Work_Mem', 'it''s', FALSE)"),
            raw("work_mem", "it's")
        );
        for other in [
            "SELECT set_config('search_path', 'hr', true)",
            "SELECT set_config('search_path', 'hr', false), 1",
            "SELECT set_config('search_path', 'a\\b', false)",
            "SELECT set_config('search_path', $1, false)",
            "SELECT other.set_config('search_path', 'hr', false)",
            "SELECT set_config('search_path', 'hr', false) FROM t",
            "SELECT set_config('",
            "SELECT set_config('x', 'é",
            "SELECT 1",
        ] {
            assert_eq!(classify(other), None, "{other}");
        }
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

    #[test]
    fn transaction_commands() {
        let tx = |c| Some(Transaction(c));
        use TransactionCommand::*;
        for sql in [
            "COMMIT",
            "commit work",
            "END TRANSACTION",
            "COMMIT AND CHAIN",
        ] {
            assert_eq!(classify(sql), tx(Commit), "{sql}");
        }
        for sql in ["ROLLBACK", "abort", "ROLLBACK WORK AND NO CHAIN"] {
            assert_eq!(classify(sql), tx(Rollback), "{sql}");
        }
        assert_eq!(classify("COMMIT PREPARED 'x'"), None);
        assert_eq!(classify("ROLLBACK PREPARED 'x'"), None);
        for sql in [
            "ROLLBACK TO SAVEPOINT A",
            "rollback to a",
            "ROLLBACK TRANSACTION TO SAVEPOINT a",
            "ROLLBACK WORK TO /* x */ a",
            "ROLLBACK TO \"a\"",
        ] {
            assert_eq!(classify(sql), tx(RollbackTo("a".into())), "{sql}");
        }
        assert_eq!(
            classify("ROLLBACK TO savepoint"),
            tx(RollbackTo("savepoint".into()))
        );
        assert_eq!(classify("SAVEPOINT \"A\""), tx(Savepoint("A".into())));
        assert_eq!(classify("savepoint Sp_1"), tx(Savepoint("sp_1".into())));
        assert_eq!(classify("RELEASE SAVEPOINT B"), tx(Release("b".into())));
        assert_eq!(classify("release b"), tx(Release("b".into())));
        assert_eq!(
            classify("RELEASE savepoint"),
            tx(Release("savepoint".into()))
        );
        assert_eq!(
            classify(&format!("SAVEPOINT {}", "x".repeat(70))),
            tx(Savepoint("x".repeat(63)))
        );
        assert_eq!(classify("SAVEPOINT"), None);
        assert_eq!(classify("ROLLBACK TO"), None);
        let failed_commit = Transaction(Commit);
        assert!(failed_commit.completes_with("COMMIT") && failed_commit.completes_with("ROLLBACK"));
        assert!(!Transaction(Release("b".into())).completes_with("ROLLBACK"));
        assert_eq!(Transaction(RollbackTo("a".into())).tag(), "ROLLBACK");
    }
}
