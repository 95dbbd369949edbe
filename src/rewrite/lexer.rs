//! A PostgreSQL lexer just precise enough to find statement boundaries and leading keywords:
//! it honours quotes, E'' escapes, dollar quoting and nested comments, so a `;` inside any of
//! them never splits a statement.

use crate::dialect::Lexing;

/// A token of a statement's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// An unquoted word, as written.
    Word(&'a str),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A string literal as written, quotes included.
    Literal(&'a str),
    /// Any other single character.
    Symbol(char),
}

/// Byte ranges of the non-empty statements in `sql`.
pub fn split_statements(sql: &str) -> Vec<&str> {
    // Most queries hold no `;` at all (or one at the end): one statement, no lexing needed
    // to find where it ends.
    match sql.find(';') {
        None => {
            let mut out = Vec::with_capacity(1);
            push_trimmed(&mut out, sql);
            return out;
        }
        Some(at)
            if trim(&sql[at + 1..]).is_empty()
                && !sql[..at].contains(['\'', '"', '$', '-', '/']) =>
        {
            let mut out = Vec::with_capacity(1);
            push_trimmed(&mut out, &sql[..at]);
            return out;
        }
        Some(_) => {}
    }
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b';' => {
                push_trimmed(&mut out, &sql[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i = skip_token(sql, i).1,
        }
    }
    push_trimmed(&mut out, &sql[start..]);
    out
}

/// Joins statements into one simple query string that [`split_statements`] cuts back into
/// the same statements. A statement forwarded as the client wrote it may end in a `--`
/// comment, which would swallow a `;` written right after it, so that one gets a newline first.
pub fn join_statements<S: AsRef<str>>(statements: &[S]) -> String {
    let mut out = String::new();
    for (i, statement) in statements.iter().enumerate() {
        if i > 0 {
            let comment = statements[i - 1].as_ref().contains("--");
            out.push_str(if comment { "\n;\n" } else { ";\n" });
        }
        out.push_str(statement.as_ref());
    }
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, statement: &'a str) {
    if tokens(statement).next().is_some() {
        out.push(trim(statement));
    }
}

/// `str::trim` would also strip Unicode spaces, which PostgreSQL reads as identifier characters
/// (`x\u{a0}` is not `x`): only the whitespace the lexer skips goes (found by fuzzing).
fn trim(statement: &str) -> &str {
    statement.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// The tokens of one statement, comments and whitespace skipped.
pub fn tokens(sql: &str) -> impl Iterator<Item = Token<'_>> {
    let mut i = 0;
    std::iter::from_fn(move || loop {
        if i >= sql.len() {
            return None;
        }
        let (token, next) = skip_token(sql, i);
        let start = i;
        i = next;
        if let Some(token) = token {
            return Some(token);
        }
        if next == start {
            i += 1;
        }
    })
}

/// Reads one token at `i`; returns it (None for whitespace/comments) and the next offset.
fn skip_token(sql: &str, i: usize) -> (Option<Token<'_>>, usize) {
    skip_token_in(sql, i, Lexing::Standard)
}

/// [`skip_token`], with plain literals read as `lexing` says.
pub(super) fn skip_token_in(sql: &str, i: usize, lexing: Lexing) -> (Option<Token<'_>>, usize) {
    let b = sql.as_bytes();
    let c = b[i];
    let rest = &b[i..];
    if c.is_ascii_whitespace() {
        return (None, i + 1);
    }
    if rest.starts_with(b"--") {
        let end = rest
            .iter()
            .position(|&x| x == b'\n')
            .map_or(b.len(), |p| i + p + 1);
        return (None, end);
    }
    if rest.starts_with(b"/*") {
        let mut depth = 0usize;
        let mut j = i;
        while j < b.len() {
            if b[j..].starts_with(b"/*") {
                depth += 1;
                j += 2;
            } else if b[j..].starts_with(b"*/") {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    break;
                }
            } else {
                j += 1;
            }
        }
        return (None, j.min(b.len()));
    }
    if c == b'\'' || ((c == b'E' || c == b'e') && rest.get(1) == Some(&b'\'')) {
        let open = if c == b'\'' { i + 1 } else { i + 2 };
        let escapes = c != b'\'' || lexing.backslash_escapes();
        let end = string_end(b, open, escapes);
        return (Some(Token::Literal(&sql[i..end])), end);
    }
    if c == b'"' {
        let end = string_end(b, i + 1, false);
        // Unterminated, the identifier runs to the end of the text, which may close on a
        // multi-byte character: drop a last byte only when it is the closing quote.
        let close = if end > i + 1 && b[end - 1] == b'"' {
            end - 1
        } else {
            end
        };
        let inner = &sql[i + 1..close];
        return (Some(Token::Quoted(inner.replace("\"\"", "\""))), end);
    }
    if c == b'$' {
        if let Some(tag_len) = dollar_tag(rest) {
            let tag = &rest[..tag_len];
            let body = i + tag_len;
            let end = find(b, body, tag).map_or(b.len(), |p| p + tag_len);
            return (Some(Token::Literal(&sql[i..end])), end);
        }
    }
    if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
        {
            j += 1;
        }
        return (Some(Token::Word(&sql[i..j])), j);
    }
    let ch = sql[i..].chars().next().unwrap_or('?');
    (Some(Token::Symbol(ch)), i + ch.len_utf8())
}

/// Offset just past the closing quote of a string starting at `open`.
fn string_end(b: &[u8], open: usize, backslash_escapes: bool) -> usize {
    let quote = b[open - 1];
    let mut j = open;
    while j < b.len() {
        if backslash_escapes && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// Length of a `$tag$` opener at the start of `rest`, if it is one.
fn dollar_tag(rest: &[u8]) -> Option<usize> {
    let close = rest[1..].iter().position(|&x| x == b'$')? + 1;
    let tag = &rest[1..close];
    let valid = tag
        .iter()
        .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x >= 0x80)
        && !tag.first().is_some_and(|x| x.is_ascii_digit());
    valid.then_some(close + 1)
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "select ';' ; select $x$ ; $x$; /* ; /* ; */ */ select 1 -- ;\n; ;";
        assert_eq!(
            split_statements(sql),
            [
                "select ';'",
                "select $x$ ; $x$",
                "/* ; /* ; */ */ select 1 -- ;"
            ]
        );
        assert_eq!(
            split_statements("select E'\\';' ; x"),
            ["select E'\\';'", "x"]
        );
        assert_eq!(
            split_statements("select \"a;\"\"b\""),
            ["select \"a;\"\"b\""]
        );
        assert!(split_statements(" ; -- nothing\n").is_empty());
    }

    /// The rewriter joined with `;\n` and sent `SELECT 1 -- x;\nSELECT ...`: one statement
    /// where the client wrote two (the rewriter fuzz target's statement-count property).
    #[test]
    fn joined_statements_split_back() {
        let statements = ["SELECT 1 -- x", "SELECT 2", "/* -- */ SELECT 3", "SELECT 4"];
        let joined = join_statements(&statements);
        assert_eq!(split_statements(&joined), statements);
        assert_eq!(
            join_statements(&["SELECT 1", "SELECT 2"]),
            "SELECT 1;\nSELECT 2"
        );
    }

    #[test]
    fn only_ascii_whitespace_is_trimmed() {
        assert_eq!(
            split_statements(" SELECT 1 AS x\u{a0} \n"),
            ["SELECT 1 AS x\u{a0}"]
        );
        assert_eq!(split_statements("SELECT 1;\u{a0}"), ["SELECT 1", "\u{a0}"]);
        assert_eq!(split_statements("\u{b}SELECT 1"), ["\u{b}SELECT 1"]);
    }

    #[test]
    fn tokens_skip_comments() {
        let got: Vec<_> = tokens("/* c */ SET -- x\n \"Search\" = 'a''b'").collect();
        assert_eq!(
            got,
            [
                Token::Word("SET"),
                Token::Quoted("Search".into()),
                Token::Symbol('='),
                Token::Literal("'a''b'")
            ]
        );
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        // `"abc€` and `U&"☃` panicked (found by the splitter and rewriter fuzz targets).
        for sql in [
            "'abc", "\"abc", "$a$ abc", "/* abc", "E'\\", "$", "é'", "\"abc€", "U&\"☃", "\"",
        ] {
            let _ = split_statements(sql);
            let _ = tokens(sql).count();
        }
    }
}
