//! The SQL lexer and statement splitter (`rewrite::split_statements`, `rewrite::tokens`) and
//! the session-command classifier that runs on every statement.
//!
//! Input: UTF-8 text (invalid bytes replaced). Properties: no panic; the statements are
//! slices of the input, in order, trimmed, each with at least one token; what lies between
//! them is only whitespace, comments and `;` (nothing is lost); joining the statements with a
//! `;` on a line of its own and splitting again gives the same statements (each lexes as a
//! whole). Time is bounded by libFuzzer's `-timeout`.

use redveil::rewrite::{classify, split_statements, tokens, Token};

pub fn check(data: &[u8]) {
    let sql = String::from_utf8_lossy(data);
    let statements = split_statements(&sql);
    let whole = sql.as_bytes().as_ptr_range();
    let mut covered = 0;
    for statement in &statements {
        let range = statement.as_bytes().as_ptr_range();
        assert!(
            whole.start <= range.start && range.end <= whole.end,
            "not a slice of the input"
        );
        let start = range.start as usize - whole.start as usize;
        assert!(start >= covered, "statements overlap or are out of order");
        assert_only_separators(&sql[covered..start]);
        covered = start + statement.len();
        assert_eq!(
            statement.trim_matches(|c: char| c.is_ascii_whitespace()),
            *statement
        );
        assert!(
            tokens(statement).next().is_some(),
            "an empty statement: {statement:?}"
        );
        let _ = classify(statement);
    }
    assert_only_separators(&sql[covered..]);
    let joined = statements.join("\n;\n");
    assert_eq!(
        split_statements(&joined),
        statements,
        "re-split of {joined:?}"
    );
}

/// A gap between statements holds no token but `;`.
fn assert_only_separators(gap: &str) {
    for token in tokens(gap) {
        assert_eq!(
            token,
            Token::Symbol(';'),
            "text lost between statements: {gap:?}"
        );
    }
}
