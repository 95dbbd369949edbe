//! SQL understanding on the query path, without I/O: splitting a simple query into statements,
//! classifying the ones that change session state (which transaction pooling replays), and
//! sending every read of a registered table to its policy view while refusing the paths around
//! it.

mod cache;
mod deny;
mod lexer;
mod literals;
mod names;
mod sample;
mod session_commands;
mod tables;

pub use cache::{Outcome, RewriteCache};
pub use deny::{is_refused_setting, is_reserved_setting, Denial, BACKEND_STATEMENT_PREFIX};
pub use lexer::{join_statements, split_statements, tokens, Token};
pub use literals::as_the_cluster_reads;
pub use names::{
    parse_search_path_list, parse_search_path_sql, QualifiedName, Registered, Registry, Scope,
    DEFAULT_SEARCH_PATH,
};
#[doc(hidden)]
pub use sample::sample_registry;
pub use session_commands::{classify, SessionCommand, TransactionCommand};

use sqlparser::parser::Parser;
use std::collections::BTreeSet;

/// EXPLAIN ANALYZE reports actual row counts, which count the rows a policy hides; see
/// `deny::explains_by_running`.
const EXPLAIN_ANALYZE_REFUSED: &str = "EXPLAIN ANALYZE is not allowed through redveil while data sources are registered: its row counts include the rows policies hide";

/// Deep enough for generated BI queries; sqlparser's default (50) rejects some of them.
const RECURSION_LIMIT: usize = 256;

/// What the proxy should send for a client's SQL text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The text to send instead; `None` means forward the client's bytes unchanged.
    pub sql: Option<String>,
    /// Registered data sources the text reads.
    pub data_sources: BTreeSet<String>,
    /// The text resets session settings (RESET ALL, DISCARD ALL), so the pinned identity must
    /// be set again before the next statement.
    pub resets_session: bool,
}

/// Rewrites a simple query string (one or more statements) or a Parse message's statement.
/// On refusal nothing of the text may be sent.
pub fn rewrite(sql: &str, scope: Scope<'_>) -> Result<Rewritten, Denial> {
    if !scope.guarded() {
        return rewrite_text(sql, scope);
    }
    let read = literals::as_the_cluster_reads(sql, scope.lexing, scope.dialect)?;
    let mut out = rewrite_text(&read, scope)?;
    if let (std::borrow::Cow::Owned(read), None) = (read, &out.sql) {
        out.sql = Some(read);
    }
    Ok(out)
}

fn rewrite_text(sql: &str, scope: Scope<'_>) -> Result<Rewritten, Denial> {
    let statements = split_statements(sql);
    let mut out = Rewritten::default();
    let mut texts = Vec::with_capacity(statements.len());
    // A SET search_path earlier in the same string applies to the statements after it.
    let mut search_path_override: Option<Vec<String>> = None;
    for statement in &statements {
        let scope = Scope {
            search_path: search_path_override.as_deref().unwrap_or(scope.search_path),
            ..scope
        };
        if let Some(value) = tracked_set_config(statement, scope) {
            // Tracked and replayed like SET (see `SessionCommand::SetRaw`), so it may name
            // search_path, which the function check below refuses elsewhere.
            if let Some(path) = value {
                search_path_override = Some(parse_search_path_list(&path, scope.backend_role));
            }
            texts.push(None);
            continue;
        }
        let lowercase = statement.to_lowercase();
        if deny::check_head(statement, &lowercase, scope.guarded())? == deny::Head::ResetsSession {
            out.resets_session = true;
        }
        deny::check_engine(statement, scope)?;
        if !scope.registry.is_empty() && deny::explains_by_running(statement, &lowercase) {
            return Err(Denial::new(EXPLAIN_ANALYZE_REFUSED));
        }
        let rewritten = if scope.registry.needs_parse(&lowercase) {
            rewrite_statement(statement, scope, &mut out.data_sources)?
        } else {
            None
        };
        texts.push(rewritten);
        match classify(statement) {
            Some(SessionCommand::Set { name, value }) if name == "search_path" => {
                search_path_override = Some(parse_search_path_sql(&value, scope.backend_role));
            }
            Some(SessionCommand::Reset { name } | SessionCommand::SetDefault { name })
                if name == "search_path" =>
            {
                // Back to the session's value (the startup one, which the caller resolved).
                search_path_override = None;
            }
            _ => {}
        }
    }
    if texts.iter().any(Option::is_some) {
        let joined: Vec<&str> = texts
            .iter()
            .zip(&statements)
            .map(|(new, old)| new.as_deref().unwrap_or(old))
            .collect();
        out.sql = Some(join_statements(&joined));
    }
    Ok(out)
}

/// For a `set_config` the session tracks (`SessionCommand::SetRaw`) of a setting a client
/// may change: `Some(Some(raw search_path))`, or `Some(None)` for another setting.
fn tracked_set_config(statement: &str, scope: Scope<'_>) -> Option<Option<String>> {
    let Some(SessionCommand::SetRaw { name, value }) = classify(statement) else {
        return None;
    };
    if is_refused_setting(&name, &value, scope.guarded())
        || name == "standard_conforming_strings"
        || scope.dialect.owns_setting(&name)
    {
        return None;
    }
    Some((name == "search_path").then_some(value))
}

/// Parses and rewrites one statement; `Ok(None)` when it needs no change.
fn rewrite_statement(
    statement: &str,
    scope: Scope<'_>,
    data_sources: &mut BTreeSet<String>,
) -> Result<Option<String>, Denial> {
    let parsed = Parser::new(scope.dialect.parser())
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(statement)
        .and_then(|mut p| p.parse_statements());
    let mut parsed = match parsed {
        Ok(parsed) if parsed.len() == 1 => parsed,
        _ => {
            if scope.registry.is_named_in(statement) {
                return Err(Denial::new(
                    "redveil cannot parse this statement and it mentions a registered table or a redveil schema; it is refused rather than forwarded unchecked",
                ));
            }
            // E.g. CREATE AGGREGATE ... (SFUNC = set_config, INITCOND = E'\151mmuta.user').
            let lowercase = statement.to_lowercase();
            let word = deny::IDENTITY_WORDS
                .iter()
                .chain(&deny::OTHER_SESSIONS)
                .find(|w| lowercase.contains(*w));
            if let Some(word) = word.filter(|_| scope.guarded()) {
                return Err(Denial::new(format!(
                    "redveil cannot parse this statement and it mentions {word}; it is refused rather than forwarded unchecked"
                )));
            }
            return Ok(None);
        }
    };
    let statement_ast = &mut parsed[0];
    if explains_by_running(statement_ast) {
        // Actual row counts (`Rows Removed by Filter`) count the rows a policy hides.
        return Err(Denial::new(EXPLAIN_ANALYZE_REFUSED));
    }
    if !tables::is_rewritable(statement_ast) {
        tables::check_unrewritable(statement, scope)?;
        return Ok(None);
    }
    let result = tables::rewrite_tables(statement_ast, scope)?;
    data_sources.extend(result.data_sources);
    Ok(result.changed.then(|| statement_ast.to_string()))
}

/// The database a statement needs no other session in: DROP DATABASE, ALTER DATABASE ...
/// RENAME, CREATE DATABASE ... TEMPLATE.
pub fn database_to_free(statement: &str) -> Option<String> {
    // Runs on every statement of every simple query: only these three heads go further.
    match tokens(statement).next() {
        Some(Token::Word(w))
            if ["drop", "alter", "create"]
                .iter()
                .any(|head| w.eq_ignore_ascii_case(head)) => {}
        _ => return None,
    }
    let words: Vec<String> = tokens(statement)
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.to_ascii_lowercase()),
            Token::Quoted(q) => Some(q),
            _ => None,
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["drop", "database", "if", "exists", name, ..]
        | ["drop", "database", name, ..]
        | ["alter", "database", name, "rename", ..] => Some(name.to_string()),
        ["create", "database", ..] => w
            .iter()
            .position(|word| *word == "template")
            .and_then(|at| w.get(at + 1))
            .map(|name| name.to_string()),
        _ => None,
    }
}

/// `EXPLAIN ANALYZE ...` or `EXPLAIN (ANALYZE ...) ...`.
fn explains_by_running(statement: &sqlparser::ast::Statement) -> bool {
    match statement {
        sqlparser::ast::Statement::Explain {
            analyze, options, ..
        } => {
            *analyze
                || options.iter().flatten().any(|o| {
                    o.name.value.eq_ignore_ascii_case("analyze")
                        || o.name.value.eq_ignore_ascii_case("analyse")
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
