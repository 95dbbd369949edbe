//! The rewriter (`rewrite::rewrite`) against the registry of the rewrite unit tests.
//!
//! Input: byte 0 picks the session's search path (`catalog::SEARCH_PATHS`); the rest is the
//! SQL text (invalid UTF-8 replaced). Properties: no panic; a refusal is always allowed (it
//! fails closed); text that is accepted, as sent, holds as many statements as the client's
//! (a rewrite never merges or splits statements); every statement the rewriter changed
//! parses again; and no statement as sent reads a registered read-only table: each relation
//! of each statement that parses is resolved independently (same search path rules, SET
//! search_path earlier in the text included) and must not name one, unless it is a one-part
//! name that a CTE of that statement defines, a function call (`FROM f()`) or a writable
//! table. The CTE exemption is coarser than PostgreSQL's scoping (any CTE of the statement
//! counts), so this misses a CTE scoping mistake but never flags a correct rewrite.

use crate::catalog::{registry, search_path, BACKEND_ROLE, DATABASE};
use redveil::dialect::{Dialect, Lexing};
use redveil::rewrite::{
    as_the_cluster_reads, classify, parse_search_path_sql, rewrite, split_statements, Registry,
    Scope, SessionCommand,
};
use sqlparser::ast::{Ident, ObjectName, Query, SetExpr, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::OnceLock;

/// The rewriter's own limit (`rewrite::RECURSION_LIMIT`).
const RECURSION_LIMIT: usize = 256;

fn shared_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(registry)
}

pub fn check(data: &[u8]) {
    let [selector, text @ ..] = data else {
        return;
    };
    let sql = String::from_utf8_lossy(text);
    let path = search_path(*selector);
    // The high bit reads literals as a server with standard_conforming_strings off does.
    let lexing = match selector & 0x80 {
        0 => Lexing::Standard,
        _ => Lexing::Backslash,
    };
    let scope = Scope {
        registry: shared_registry(),
        database: DATABASE,
        search_path: &path,
        backend_role: BACKEND_ROLE,
        dialect: Dialect::Postgres,
        lexing,
    };
    let Ok(rewritten) = rewrite(&sql, scope) else {
        return;
    };
    let Some(sent) = rewritten.sql.as_deref() else {
        assert!(
            rewritten.data_sources.is_empty(),
            "data sources read, nothing rewritten"
        );
        return check_sent(&sql, &split_statements(&sql), scope);
    };
    // Literals holding a backslash are sent as E'' (see `as_the_cluster_reads`): a statement
    // changed only by that need not parse.
    let read = as_the_cluster_reads(&sql, lexing, Dialect::Postgres)
        .expect("a text the rewriter accepted reads one way");
    let before = split_statements(&read);
    let after = split_statements(sent);
    assert_eq!(
        before.len(),
        after.len(),
        "{} statements sent as {}: {sent:?}",
        before.len(),
        after.len()
    );
    for (old, new) in before.iter().zip(&after) {
        if old != new {
            assert!(
                parse(new).is_some(),
                "a rewritten statement does not parse: {new:?}"
            );
        }
    }
    check_sent(sent, &after, scope);
}

fn parse(statement: &str) -> Option<Statement> {
    let mut parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(statement)
        .and_then(|mut p| p.parse_statements())
        .ok()?;
    (parsed.len() == 1).then(|| parsed.remove(0))
}

/// No statement of `sent` reads a registered read-only table.
fn check_sent(sent: &str, statements: &[&str], scope: Scope<'_>) {
    let mut path_override: Option<Vec<String>> = None;
    for statement in statements {
        let scope = Scope {
            search_path: path_override.as_deref().unwrap_or(scope.search_path),
            ..scope
        };
        if let Some(parsed) = parse(statement) {
            let mut names = Names::default();
            let _ = parsed.visit(&mut names);
            for name in names.relations {
                let shadowed = match name.0.as_slice() {
                    [one] => one
                        .as_ident()
                        .is_some_and(|i| names.ctes.contains(&redveil_fold(i))),
                    _ => false,
                };
                if shadowed {
                    continue;
                }
                if let Some(registered) = scope.resolve(&name) {
                    assert!(
                        registered.writable,
                        "{name} (registered {}) is read directly by {statement:?} in {sent:?}",
                        registered.data_source
                    );
                }
            }
        }
        match classify(statement) {
            Some(SessionCommand::Set { name, value }) if name == "search_path" => {
                path_override = Some(parse_search_path_sql(&value, BACKEND_ROLE));
            }
            Some(SessionCommand::Reset { name } | SessionCommand::SetDefault { name })
                if name == "search_path" =>
            {
                path_override = None;
            }
            _ => {}
        }
    }
}

/// PostgreSQL's identifier folding: unquoted names are lower-cased.
fn redveil_fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// Every relation a statement names (but function calls in FROM), every CTE name it defines.
#[derive(Default)]
struct Names {
    relations: Vec<ObjectName>,
    calls: HashSet<*const ObjectName>,
    ctes: HashSet<String>,
}

impl Names {
    fn table_commands(&mut self, body: &SetExpr) {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.table_commands(left);
                self.table_commands(right);
            }
            // `TABLE name` keeps no quoting: PostgreSQL folds it as it was written, so match
            // it lower-cased as the rewriter does.
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let mut parts: Vec<Ident> = table
                        .schema_name
                        .iter()
                        .map(|s| Ident::new(s.to_lowercase()))
                        .collect();
                    parts.push(Ident::new(name.to_lowercase()));
                    self.relations.push(ObjectName::from(parts));
                }
            }
            _ => {}
        }
    }
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.ctes
                .extend(with.cte_tables.iter().map(|c| redveil_fold(&c.alias.name)));
        }
        self.table_commands(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            self.calls.insert(name as *const ObjectName);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.calls.contains(&(relation as *const ObjectName)) {
            self.relations.push(relation.clone());
        }
        ControlFlow::Continue(())
    }
}
