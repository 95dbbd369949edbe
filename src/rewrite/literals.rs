//! Plain string literals read the way the cluster reads them.
//!
//! A plain `'...'` literal means two things: with `standard_conforming_strings` on, a backslash
//! is an ordinary character; with it off (and always on Redshift), it escapes the next one. So
//! `SELECT 'x\' ; SET immuta.user TO admin; --'` is one statement to a reader of the first kind
//! and two to the second, and `'imm\x75ta.user'` names `immuta.user` only to the second. While
//! policies apply, the proxy (1) refuses a text whose literals end in different places under the
//! two readings, and (2) sends every plain literal holding a backslash in a form whose reading
//! does not depend on the server: `E'...'` on PostgreSQL (what the proxy checked is what runs,
//! even if its idea of the connection's setting were stale), and on Redshift, which has no
//! `E''`, the value re-quoted without backslashes (escapes whose meaning there is not
//! documented are refused). A text without a backslash reads the same either way and is left
//! alone.

use super::lexer::{skip_token_in, Token};
use super::Denial;
use crate::dialect::{Dialect, Lexing};
use std::borrow::Cow;

const READ_TWO_WAYS: &str = "redveil refuses this text: a string literal in it ends in a different place depending on whether backslashes escape quotes (standard_conforming_strings), so the proxy cannot be sure how the cluster reads it; write a quote inside a literal as '' and a backslash in an E'...' literal or a dollar-quoted string";
const NATIONAL_WITH_BACKSLASH: &str = "redveil refuses this text: an N'...' literal holds a backslash, which the cluster may read as an escape; write it as E'...' or as a dollar-quoted string";
const REDSHIFT_UNCLEAR_ESCAPE: &str = "redveil refuses this text: a string literal holds a backslash escape whose meaning on Redshift is not documented (two backslashes, octal, \\x, \\u, or a letter other than b, f, n, r, t); write the character itself";

/// The text to check and send for a client's `sql`, given how its backend connection reads
/// literals; borrowed when it needs no change.
pub fn as_the_cluster_reads(
    sql: &str,
    lexing: Lexing,
    dialect: Dialect,
) -> Result<Cow<'_, str>, Denial> {
    if !sql.contains('\\') {
        return Ok(Cow::Borrowed(sql));
    }
    let spans = literal_spans(sql, lexing);
    let other = match lexing {
        Lexing::Standard => Lexing::Backslash,
        Lexing::Backslash => Lexing::Standard,
    };
    if spans != literal_spans(sql, other) {
        return Err(Denial::new(READ_TWO_WAYS));
    }
    let b = sql.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    for &(start, end) in &spans {
        let text = &sql[start..end];
        if b[start] != b'\'' || !text.contains('\\') {
            continue;
        }
        let prefix = word_before(sql, start);
        match prefix.to_ascii_lowercase().as_str() {
            // Bit strings take no escapes, and U&'' is refused by a server that escapes.
            "b" | "x" => continue,
            _ if is_unicode_escape(sql, start) => continue,
            "n" => return Err(Denial::new(NATIONAL_WITH_BACKSLASH)),
            _ => {}
        }
        out.push_str(&sql[copied..start]);
        if !dialect.has_escape_strings() {
            out.push_str(&without_backslashes(text)?);
            copied = end;
            continue;
        }
        // `text'...'` stays a typed literal as `text E'...'`.
        out.push_str(if prefix.is_empty() { "E" } else { " E" });
        match lexing {
            Lexing::Backslash => out.push_str(text),
            Lexing::Standard => out.push_str(&text.replace('\\', "\\\\")),
        }
        copied = end;
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(sql));
    }
    out.push_str(&sql[copied..]);
    Ok(Cow::Owned(out))
}

/// A backslash-escaping literal (quotes included) as a plain one without backslashes that
/// reads as the same value.
fn without_backslashes(literal: &str) -> Result<String, Denial> {
    let inner = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or(literal);
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(match chars.next() {
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some(c) if !c.is_alphanumeric() && c != '\\' => c,
                _ => return Err(Denial::new(REDSHIFT_UNCLEAR_ESCAPE)),
            }),
            // A doubled quote inside the literal.
            '\'' => {
                chars.next();
                value.push('\'');
            }
            c => value.push(c),
        }
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Byte ranges of every literal token (quoted, escaped or dollar-quoted).
fn literal_spans(sql: &str, lexing: Lexing) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let (token, next) = skip_token_in(sql, i, lexing);
        if let Some(Token::Literal(_)) = token {
            spans.push((i, next));
        }
        i = next.max(i + 1);
        while !sql.is_char_boundary(i.min(sql.len())) {
            i += 1;
        }
    }
    spans
}

/// The identifier characters right before `at` (a typed literal's type, or a prefix).
fn word_before(sql: &str, at: usize) -> &str {
    let b = sql.as_bytes();
    let mut start = at;
    while start > 0 && is_identifier_byte(b[start - 1]) {
        start -= 1;
    }
    &sql[start..at]
}

/// `U&'...'`: the literal at `at` follows `U&`, itself not part of a longer word.
fn is_unicode_escape(sql: &str, at: usize) -> bool {
    let b = sql.as_bytes();
    at >= 2
        && b[at - 1] == b'&'
        && b[at - 2].eq_ignore_ascii_case(&b'u')
        && (at == 2 || !is_identifier_byte(b[at - 3]))
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::split_statements;

    fn read(sql: &str, lexing: Lexing) -> Result<Cow<'_, str>, Denial> {
        as_the_cluster_reads(sql, lexing, Dialect::Postgres)
    }

    #[test]
    fn texts_without_backslashes_are_left_alone() {
        for lexing in [Lexing::Standard, Lexing::Backslash] {
            let sql = "SELECT 'it''s', E'x', $$y$$";
            assert!(matches!(read(sql, lexing), Ok(Cow::Borrowed(s)) if s == sql));
        }
    }

    #[test]
    fn a_text_split_differently_by_the_two_readings_is_refused() {
        for sql in [
            "SELECT 'x\\' ; SET immuta.user TO admin; --'",
            "SELECT 'a\\' || $$ ; $$ || '",
            "SELECT '\\'' ; SELECT 1",
            "SELECT B'\\' ; SET x.y = 1; -- '",
        ] {
            for lexing in [Lexing::Standard, Lexing::Backslash] {
                assert!(read(sql, lexing).is_err(), "{sql:?} read {lexing:?}");
            }
        }
    }

    #[test]
    fn literals_with_backslashes_are_sent_as_escape_strings() {
        let sql = "SELECT set_config('imm\\x75ta.user', 'a\\\\b', false), text'\\n'";
        assert_eq!(
            read(sql, Lexing::Backslash).unwrap(),
            "SELECT set_config(E'imm\\x75ta.user', E'a\\\\b', false), text E'\\n'"
        );
        assert_eq!(
            read(sql, Lexing::Standard).unwrap(),
            "SELECT set_config(E'imm\\\\x75ta.user', E'a\\\\\\\\b', false), text E'\\\\n'"
        );
        // E'' and dollar quotes read alike either way; bit strings take no escapes.
        let same = "SELECT E'\\'', $$\\$$, B'\\'";
        assert_eq!(read(same, Lexing::Backslash).unwrap(), same);
    }

    #[test]
    fn national_literals_with_backslashes_are_refused_and_unicode_ones_kept() {
        assert!(read("SELECT N'a\\b'", Lexing::Standard).is_err());
        let unicode = "SELECT U&'\\0041'";
        assert_eq!(read(unicode, Lexing::Standard).unwrap(), unicode);
        assert_eq!(
            read("SELECT MU&'\\0041'", Lexing::Standard).unwrap(),
            "SELECT MU&E'\\\\0041'"
        );
    }

    #[test]
    fn redshift_literals_are_sent_without_backslashes() {
        let read = |sql| as_the_cluster_reads(sql, Lexing::Backslash, Dialect::Redshift);
        assert_eq!(
            read(r"SELECT 'it''s a \ tab\t', text'\%'").unwrap(),
            "SELECT 'it''s a  tab\t', text'%'"
        );
        for unclear in [
            r"SELECT 'a\\b'",
            r"SELECT 'imm\x75ta'",
            r"SELECT '\151'",
            r"SELECT '\u0069'",
            r"SELECT '\q'",
        ] {
            assert!(read(unclear).is_err(), "{unclear}");
        }
        assert!(read(r"SELECT $$a\b$$").is_ok());
    }

    #[test]
    fn normalising_keeps_the_statement_count() {
        let sql = "SELECT 'a\\;b'; SELECT 'c'";
        let read = read(sql, Lexing::Backslash).unwrap();
        assert_eq!(split_statements(&read).len(), 2);
    }
}
