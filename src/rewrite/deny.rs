//! Fail-closed rules: constructs that could reach raw data or the proxy's identity setting by a
//! path the view rewrite does not cover are refused with 42501 and a message naming them.

use super::lexer::{tokens, Token};
use super::names::{fold, Scope, RESERVED_SCHEMAS};
use super::session_commands::{classify, SessionCommand};
use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, Value,
};

/// A refused statement; always SQLSTATE 42501 (insufficient_privilege).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub message: String,
}

impl Denial {
    pub const SQLSTATE: &'static str = "42501";

    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Settings only the proxy may change, in SQL or at connect time: the identity it pins and the
/// ones that would switch the backend role.
pub fn is_reserved_setting(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    name.starts_with("immuta") || name == "role" || name == "session_authorization"
}

/// A setting a client may not give this value, at connect time or with SET: the identity
/// settings always; while registered data can be reached (`guarded`), also the role and
/// `standard_conforming_strings = off`, under which the server reads a backslash in `'...'`
/// as an escape while the proxy's lexer and sqlparser do not, so text the proxy judged to be
/// inside a string literal would run as SQL.
pub fn is_refused_setting(name: &str, value: &str, guarded: bool) -> bool {
    let name = name.trim();
    if name.to_ascii_lowercase().starts_with("immuta") {
        return true;
    }
    guarded
        && (is_reserved_setting(name)
            || (name.eq_ignore_ascii_case("standard_conforming_strings") && !is_on(value)))
}

fn is_on(value: &str) -> bool {
    let value = value.trim().trim_matches('\'').to_ascii_lowercase();
    matches!(value.as_str(), "on" | "true" | "yes" | "1" | "default")
}

/// Words that, in text the proxy cannot check call by call (code bodies, statements
/// sqlparser cannot read), may reach the identity setting or the string syntax the proxy
/// relies on.
pub(super) const IDENTITY_WORDS: [&str; 4] = [
    "set_config",
    "current_setting",
    "pg_settings",
    "standard_conforming_strings",
];

/// Views and functions that show the statement text of other sessions. Every redveil session
/// shares the pool's login, so these would show one client the statements of every other,
/// literals and the identity pins (with their salts) included.
pub(super) const OTHER_SESSIONS: [&str; 6] = [
    "pg_stat_activity",
    "pg_stat_get_activity",
    "pg_stat_get_backend_activity",
    "pg_stat_statements",
    // A pooled backend's prepared statements are every client's that used it.
    "pg_prepared_statements",
    "pg_prepared_statement",
];

/// The denial for naming one of `OTHER_SESSIONS`.
pub(super) fn shows_other_sessions(name: &str) -> Denial {
    Denial::new(format!(
        "{name} shows the statements of other redveil sessions (they share one login) and is not allowed through redveil"
    ))
}

/// Functions that run SQL given as text, or read every setting at once. No argument check
/// can make them safe: the text may be computed.
fn runs_sql_text(name: &str) -> bool {
    name.contains("_to_xml")
        || name.starts_with("dblink")
        || matches!(name, "ts_stat" | "pg_show_all_settings" | "pg_settings")
}

/// Large objects belong to the pool's login role, which every redveil user shares: one user's
/// large object is every other user's to read.
fn is_large_object_function(name: &str) -> bool {
    name.starts_with("lo_") || matches!(name, "loread" | "lowrite")
}

/// Functions that may take text naming a registered table without running it as SQL.
fn inert_with_text(name: &str) -> bool {
    name.starts_with("pg_")
        || name.starts_with("has_")
        || matches!(
            name,
            "lower"
                | "upper"
                | "initcap"
                | "length"
                | "char_length"
                | "octet_length"
                | "concat"
                | "concat_ws"
                | "format"
                | "replace"
                | "substring"
                | "substr"
                | "left"
                | "right"
                | "trim"
                | "btrim"
                | "ltrim"
                | "rtrim"
                | "lpad"
                | "rpad"
                | "position"
                | "strpos"
                | "split_part"
                | "starts_with"
                | "regexp_replace"
                | "regexp_match"
                | "regexp_matches"
                | "regexp_like"
                | "to_char"
                | "to_date"
                | "to_timestamp"
                | "to_number"
                | "coalesce"
                | "nullif"
                | "md5"
                | "quote_ident"
                | "quote_literal"
                | "quote_nullable"
                | "to_regclass"
                | "to_regnamespace"
                | "obj_description"
                | "col_description"
                | "format_type"
                | "translate"
                | "reverse"
                | "repeat"
                | "string_agg"
                | "array_agg"
                | "count"
                | "max"
                | "min"
                | "date_trunc"
                | "date_part"
                | "to_json"
                | "to_jsonb"
                | "json_build_object"
                | "jsonb_build_object"
        )
}

/// Checks a function call anywhere in a statement (expressions, `FROM f(...)`, CALL).
pub fn check_function(function: &Function, scope: Scope<'_>) -> Result<(), Denial> {
    let args: Vec<&Expr> = match &function.args {
        FunctionArguments::List(list) => list.args.iter().filter_map(arg_expr).collect(),
        _ => Vec::new(),
    };
    check_call(&function.name, &args, scope)
}

pub fn arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    let (FunctionArg::Unnamed(e)
    | FunctionArg::Named { arg: e, .. }
    | FunctionArg::ExprNamed { arg: e, .. }) = arg;
    match e {
        FunctionArgExpr::Expr(expr) => Some(expr),
        _ => None,
    }
}

pub fn check_call(name: &ObjectName, args: &[&Expr], scope: Scope<'_>) -> Result<(), Denial> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(fold)
        .collect();
    let Some(function) = parts.last().map(|f| f.to_ascii_lowercase()) else {
        return Ok(());
    };
    if let Some(schema) = parts.iter().rev().nth(1) {
        if RESERVED_SCHEMAS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(schema))
        {
            return Err(Denial::new(format!(
                "schema \"{schema}\" belongs to redveil and cannot be used directly"
            )));
        }
    }
    if !scope.guarded() {
        return match function.as_str() {
            "set_config" | "current_setting" => match first_literal_of(args) {
                Some(setting) if setting.trim().to_ascii_lowercase().starts_with("immuta") => Err(
                    Denial::new(format!("the setting \"{setting}\" is reserved for redveil")),
                ),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
    }
    if runs_sql_text(&function) {
        return Err(Denial::new(format!(
            "function {function}() runs SQL text or exposes server settings and is not allowed through redveil"
        )));
    }
    if OTHER_SESSIONS.contains(&function.as_str()) {
        return Err(shows_other_sessions(&function));
    }
    if is_large_object_function(&function) {
        return Err(Denial::new(format!(
            "large objects are shared by every redveil user; {function}() is not allowed through redveil"
        )));
    }
    let first_literal = first_literal_of(args);
    match function.as_str() {
        "set_config" => {
            let tracked_elsewhere = |s: &str| {
                ["search_path", "standard_conforming_strings"]
                    .iter()
                    .any(|n| s.trim().eq_ignore_ascii_case(n))
            };
            return match first_literal {
                Some(setting)
                    if !is_reserved_setting(setting)
                        && !tracked_elsewhere(setting)
                        && !scope.dialect.owns_setting(setting) =>
                {
                    Ok(())
                }
                Some(setting) => Err(Denial::new(format!(
                    "set_config('{setting}', ...) is not allowed through redveil; use SET for settings the proxy may track"
                ))),
                None => Err(Denial::new(
                    "set_config() with a computed setting name is not allowed through redveil",
                )),
            };
        }
        "current_setting" => {
            return match first_literal {
                Some(setting) if !is_reserved_setting(setting) => Ok(()),
                Some(setting) => Err(Denial::new(format!(
                    "the setting \"{setting}\" is reserved for redveil"
                ))),
                None => Err(Denial::new(
                    "current_setting() with a computed setting name is not allowed through redveil",
                )),
            };
        }
        _ => {}
    }
    if inert_with_text(&function) {
        return Ok(());
    }
    for arg in args {
        if let Some(text) = any_string_literal(arg) {
            if scope.registry.is_named_in_text(text) {
                return Err(Denial::new(format!(
                    "function {function}() is given text that names a registered table or redveil schema; it could run it as SQL"
                )));
            }
        }
    }
    Ok(())
}

fn first_literal_of<'e>(args: &[&'e Expr]) -> Option<&'e str> {
    args.first().and_then(|a| plain_literal(a))
}

/// A plain `'...'` literal's text; other spellings (E'', U&'', $$) are treated as computed.
fn plain_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn any_string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::DoubleQuotedString(s) => Some(s),
            Value::DollarQuotedString(d) => Some(&d.value),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => any_string_literal(expr),
        _ => None,
    }
}

/// The prefix of the names under which the proxy prepares statements on backend connections.
pub const BACKEND_STATEMENT_PREFIX: &str = "redveil_";

/// What the statement's first words say, checked on the raw text before any parsing so a
/// statement sqlparser cannot read is judged too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Nothing special.
    Plain,
    /// RESET ALL / DISCARD ALL: forwarded, but the proxy must pin the identity again.
    ResetsSession,
}

/// Whether the statement runs EXPLAIN ANALYZE: `EXPLAIN ANALYZE …`, `EXPLAIN (ANALYZE …) …`,
/// or a code block or function body that contains one (`FOR r IN EXPLAIN ANALYZE …`). Actual
/// row counts count the rows a policy hides below the view's filter, and what the statement
/// reads may be hidden from the proxy (a prepared statement, a temporary view over a policy
/// view), so while data sources are registered it is refused whatever it names.
pub fn explains_by_running(statement: &str, lowercase: &str) -> bool {
    let mut words = tokens(statement).filter_map(|t| match t {
        Token::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    });
    match words.next().as_deref() {
        Some("explain") => words
            .take_while(|w| {
                !matches!(
                    w.as_str(),
                    "select"
                        | "execute"
                        | "with"
                        | "insert"
                        | "update"
                        | "delete"
                        | "table"
                        | "values"
                        | "create"
                        | "declare"
                        | "merge"
                )
            })
            .any(|w| w == "analyze" || w == "analyse"),
        Some("do" | "create") => {
            lowercase.contains("explain")
                && (lowercase.contains("analyze") || lowercase.contains("analyse"))
        }
        _ => false,
    }
}

/// The rules of the engine behind the proxy (see `Dialect`), while registered data can be
/// reached.
pub(super) fn check_engine(statement: &str, scope: Scope<'_>) -> Result<(), Denial> {
    let dialect = scope.dialect;
    if !scope.guarded() || dialect == crate::dialect::Dialect::Postgres {
        return Ok(());
    }
    let words: Vec<String> = tokens(statement)
        .take(5)
        .map_while(|t| match t {
            Token::Word(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let defines_function = matches!(
        w.as_slice(),
        ["create", "function" | "external", ..]
            | ["create", "or", "replace", "function" | "external", ..]
    );
    if defines_function && dialect.refuses_client_functions() {
        return Err(Denial::new(format!(
            "CREATE FUNCTION is not allowed through redveil on {}: its views have no security barrier, so a function in a predicate could see rows a policy hides",
            dialect.name()
        )));
    }
    match classify(statement) {
        Some(
            SessionCommand::Set { name, .. }
            | SessionCommand::Reset { name }
            | SessionCommand::SetDefault { name },
        ) if dialect.owns_setting(&name) => Err(Denial::new(format!(
            "{name} is kept by redveil (the result cache is shared by every user of one login) and cannot be changed"
        ))),
        _ => Ok(()),
    }
}

pub fn check_head(statement: &str, lowercase: &str, guarded: bool) -> Result<Head, Denial> {
    if guarded && (lowercase.contains("u&\"") || lowercase.contains("u&'")) {
        return Err(Denial::new(
            "Unicode-escaped identifiers and strings (U&\"...\") are not allowed through redveil",
        ));
    }
    // Runs on every statement: every rule below starts with one of these words.
    let first = match tokens(statement).next() {
        Some(Token::Word(w)) => w.to_ascii_lowercase(),
        Some(Token::Quoted(q)) => q.to_ascii_lowercase(),
        _ => return Ok(Head::Plain),
    };
    if ![
        "alter",
        "prepare",
        "execute",
        "deallocate",
        "set",
        "reset",
        "show",
        "discard",
        "do",
        "create",
    ]
    .contains(&first.as_str())
    {
        return Ok(Head::Plain);
    }
    let words: Vec<String> = tokens(statement)
        .take(8)
        .map(|t| match t {
            Token::Word(w) => w.to_ascii_lowercase(),
            Token::Quoted(q) => q.to_ascii_lowercase(),
            Token::Literal(l) => l.to_string(),
            Token::Symbol(c) => c.to_string(),
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    if let (true, ["alter", "role" | "user" | "group" | "database", ..]) = (guarded, w.as_slice()) {
        return Err(Denial::new(
            "ALTER ROLE and ALTER DATABASE change the pool's login role, which every redveil user shares, and are not allowed through redveil",
        ));
    }
    if let ["prepare" | "execute" | "deallocate", ..] = w.as_slice() {
        let name = match w.as_slice() {
            ["deallocate", "prepare", name, ..] => Some(*name),
            [_, name, ..] => Some(*name),
            _ => None,
        };
        if name.is_some_and(|n| n.starts_with(BACKEND_STATEMENT_PREFIX)) {
            return Err(Denial::new(
                "prepared statements named redveil_* belong to redveil and are shared by its users",
            ));
        }
    }
    // Settings by the name the server resolves (`SET session_authorization = ...`,
    // `SET standard_conforming_strings = off`), after the more specific rules below.
    let refused = match classify(statement) {
        Some(SessionCommand::Set { name, value }) if is_refused_setting(&name, &value, guarded) => {
            Some(format!(
                "SET {name} to {value} is not allowed through redveil"
            ))
        }
        Some(SessionCommand::Reset { name } | SessionCommand::SetDefault { name })
            if is_refused_setting(&name, "default", guarded) =>
        {
            Some(format!("RESET {name} is not allowed through redveil"))
        }
        _ => None,
    };
    let switches_role = matches!(
        w.as_slice(),
        ["set", "role", ..]
            | ["set", "session", "authorization", ..]
            | ["set", "session" | "local", "role", ..]
            | ["set", "session" | "local", "session", "authorization", ..]
    );
    match w.as_slice() {
        ["set", ..] | ["reset", ..] | ["show", ..] if lowercase.contains("immuta") => Err(
            Denial::new("immuta settings are reserved for redveil and cannot be read or changed"),
        ),
        ["set", ..] if guarded && switches_role => Err(Denial::new(
            "SET ROLE and SET SESSION AUTHORIZATION are not allowed through redveil",
        )),
        ["reset", "role", ..] | ["reset", "session", "authorization", ..] if guarded => Err(Denial::new(
            "RESET ROLE and RESET SESSION AUTHORIZATION are not allowed through redveil",
        )),
        _ if refused.is_some() => Err(Denial::new(refused.unwrap_or_default())),
        ["reset", "all", ..] | ["discard", "all", ..] => Ok(Head::ResetsSession),
        ["do", ..] | ["create", "function", ..] | ["create", "procedure", ..]
        | ["create", "or", "replace", "function" | "procedure", ..]
            if guarded
                && IDENTITY_WORDS
                .iter()
                .chain(&OTHER_SESSIONS)
                .chain(&["execute"])
                .any(|k| lowercase.contains(k)) =>
        {
            Err(Denial::new(
                "code blocks that run dynamic SQL (EXECUTE), touch settings (set_config, current_setting, pg_settings, standard_conforming_strings) or read other sessions' statements (pg_stat_activity, pg_prepared_statements) are not allowed through redveil",
            ))
        }
        // A block's RESET ALL clears the pinned identity as the statement would.
        ["do", ..] if lowercase.contains("reset") => Ok(Head::ResetsSession),
        _ => Ok(Head::Plain),
    }
}
