//! The SET forms (with SET SESSION CHARACTERISTICS) and the `set_config` statement that
//! `classify` records, and the value text each replays.

use super::{ident, word, SessionCommand};
use crate::rewrite::lexer::{tokens, Token};

pub(super) fn classify_set(statement: &str, toks: &[Token<'_>]) -> SessionCommand {
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
pub(super) fn normalise_name(first: &str, rest: &[Token<'_>]) -> String {
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
pub(super) fn classify_set_config<'a>(
    mut rest: impl Iterator<Item = Token<'a>>,
) -> Option<SessionCommand> {
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
