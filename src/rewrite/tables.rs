//! The AST pass: swaps every read of a registered table for its policy view, keeps CTE scoping
//! as PostgreSQL does, and stops at any other reference to a registered table or proxy schema.

use super::deny::{arg_expr, check_call, check_function, Denial};
use super::lexer::{tokens, Token};
use super::names::{fold, QualifiedName, Scope, RESERVED_SCHEMAS};
use sqlparser::ast::{
    CopySource, Expr, FromTable, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, TableObject,
    VisitMut, VisitorMut,
};
use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;

/// What the pass changed in one statement.
#[derive(Debug, Default)]
pub struct TableRewrite {
    /// Data sources the statement reads (by display name).
    pub data_sources: BTreeSet<String>,
    /// Whether any reference was replaced.
    pub changed: bool,
}

/// Rewrites `statement` in place.
pub fn rewrite_tables(statement: &mut Statement, scope: Scope<'_>) -> Result<TableRewrite, Denial> {
    if let Statement::Copy {
        source: CopySource::Table { table_name, .. },
        ..
    } = &*statement
    {
        check_reserved(table_name, scope)?;
        if let Some(registered) = scope.resolve(table_name) {
            return Err(Denial::new(format!(
                "COPY of registered data source \"{}\" is not allowed through redveil; use COPY (SELECT ...) TO",
                registered.data_source
            )));
        }
    }
    let mut pass = Pass {
        scope,
        prepare: matches!(statement, Statement::Prepare { .. }),
        frames: Vec::new(),
        write_targets: HashSet::new(),
        handled: HashSet::new(),
        out: TableRewrite::default(),
    };
    match statement.visit(&mut pass) {
        ControlFlow::Break(denial) => Err(denial),
        ControlFlow::Continue(()) => Ok(pass.out),
    }
}

/// The CTE names one query introduces, and how many of them are visible at this point of
/// the walk (a non-recursive CTE sees only the ones before it; the query body sees all).
struct Frame {
    query: *const Query,
    names: Vec<String>,
    bodies: Vec<*const Query>,
    recursive: bool,
    visible: usize,
}

struct Pass<'a> {
    scope: Scope<'a>,
    /// The statement is a SQL-level PREPARE (see `Registered::prepared_view`).
    prepare: bool,
    frames: Vec<Frame>,
    /// Relation names the statement writes to (pointers into the AST being walked).
    write_targets: HashSet<*const ObjectName>,
    /// Relation names already judged by the table-factor hook.
    handled: HashSet<*const ObjectName>,
    out: TableRewrite,
}

impl Pass<'_> {
    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return false;
        };
        let folded = fold(ident);
        self.frames
            .iter()
            .any(|f| f.names[..f.visible].contains(&folded))
    }

    /// `hr.employees.col` no longer resolves once `hr.employees` is aliased `employees`, so a
    /// schema- (or database-) qualified prefix naming a registered table becomes the bare table
    /// name. `parts` is the table prefix; returns whether it changed.
    fn unqualify(&self, parts: &mut Vec<Ident>) -> bool {
        if parts.len() < 2 {
            return false;
        }
        let name = ObjectName::from(parts.clone());
        if self.scope.resolve(&name).is_none() {
            return false;
        }
        let table = parts.pop().expect("len checked");
        *parts = vec![table];
        true
    }

    fn view_name(view: &QualifiedName) -> ObjectName {
        ObjectName::from(vec![
            plain_or_quoted(&view.schema),
            plain_or_quoted(&view.name),
        ])
    }

    /// Handles a read of `name`; returns the replacement when it is registered.
    fn replacement(&mut self, name: &ObjectName) -> Result<Option<ObjectName>, Denial> {
        if self.is_cte(name) {
            return Ok(None);
        }
        if let Some(view) = session_view(name, self.scope) {
            self.out.changed = true;
            return Ok(Some(view));
        }
        check_reserved(name, self.scope)?;
        let Some(registered) = self.scope.resolve(name) else {
            return Ok(None);
        };
        self.out.data_sources.insert(registered.data_source.clone());
        self.out.changed = true;
        Ok(Some(Self::view_name(if self.prepare {
            &registered.prepared_view
        } else {
            &registered.view
        })))
    }

    /// `TABLE name` keeps no quoting information, so it is matched case-insensitively: a
    /// false match only sends a query to the view, never past it.
    fn rewrite_table_commands(&mut self, body: &mut SetExpr) -> Result<(), Denial> {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.rewrite_table_commands(left)?;
                self.rewrite_table_commands(right)
            }
            SetExpr::Table(table) => {
                let Some(name) = &table.table_name else {
                    return Ok(());
                };
                let mut parts: Vec<Ident> = table
                    .schema_name
                    .iter()
                    .map(|s| Ident::new(s.to_lowercase()))
                    .collect();
                parts.push(Ident::new(name.to_lowercase()));
                let object = ObjectName::from(parts);
                if let Some(view) = self.replacement(&object)? {
                    let [schema, name] = &view.0[..] else {
                        unreachable!("view names are schema-qualified")
                    };
                    table.schema_name = Some(schema.to_string());
                    table.table_name = Some(name.to_string());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl VisitorMut for Pass<'_> {
    type Break = Denial;

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<Denial> {
        // Data-modifying CTEs are statements nested in the query; their targets count too.
        self.write_targets.extend(write_targets(statement));
        if let Statement::Call(function) = statement {
            if let Err(denial) = check_function(function, self.scope) {
                return ControlFlow::Break(denial);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Denial> {
        let me = query as *const Query;
        if let Some(parent) = self.frames.last_mut() {
            if let Some(i) = parent.bodies.iter().position(|b| *b == me) {
                parent.visible = if parent.recursive {
                    parent.names.len()
                } else {
                    i
                };
            }
        }
        let (names, bodies, recursive) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|c| fold(&c.alias.name))
                    .collect(),
                with.cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
                with.recursive,
            ),
            None => (Vec::new(), Vec::new(), false),
        };
        self.frames.push(Frame {
            query: me,
            names,
            bodies,
            recursive,
            visible: 0,
        });
        // The body is walked after the CTEs, but `TABLE x` is not a relation the visitor
        // reports, so it is handled here with every CTE of this query in scope.
        let frame = self.frames.last_mut().expect("just pushed");
        let before = frame.visible;
        frame.visible = frame.names.len();
        let result = self.rewrite_table_commands(&mut query.body);
        self.frames.last_mut().expect("just pushed").visible = before;
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(denial) => ControlFlow::Break(denial),
        }
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<Denial> {
        let me = query as *const Query;
        let popped = self.frames.pop();
        debug_assert!(popped.is_some_and(|f| f.query == me));
        if let Some(parent) = self.frames.last_mut() {
            if parent.bodies.last() == Some(&me) {
                parent.visible = parent.names.len();
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Denial> {
        let TableFactor::Table {
            name, alias, args, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if let Some(args) = args {
            // `FROM f(...)` calls a function; its name is not a relation.
            let exprs: Vec<&Expr> = args.args.iter().filter_map(arg_expr).collect();
            if let Err(denial) = check_call(name, &exprs, self.scope) {
                return ControlFlow::Break(denial);
            }
            self.handled.insert(&*name as *const ObjectName);
            return ControlFlow::Continue(());
        }
        let target = &*name as *const ObjectName;
        if self.write_targets.contains(&target) {
            return ControlFlow::Continue(());
        }
        match self.replacement(name) {
            Err(denial) => ControlFlow::Break(denial),
            Ok(None) => {
                self.handled.insert(target);
                ControlFlow::Continue(())
            }
            Ok(Some(view)) => {
                if alias.is_none() {
                    let original = name.0.last().and_then(|p| p.as_ident()).cloned();
                    *alias = original.map(|name| TableAlias {
                        explicit: true,
                        name,
                        columns: Vec::new(),
                        at: None,
                    });
                }
                *name = view;
                self.handled.insert(&*name as *const ObjectName);
                ControlFlow::Continue(())
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Denial> {
        let me = &*relation as *const ObjectName;
        if self.handled.contains(&me) || self.is_cte(relation) {
            return ControlFlow::Continue(());
        }
        if let Err(denial) = check_reserved(relation, self.scope) {
            return ControlFlow::Break(denial);
        }
        let Some(registered) = self.scope.resolve(relation) else {
            return ControlFlow::Continue(());
        };
        if self.write_targets.contains(&me) && registered.writable {
            return ControlFlow::Continue(());
        }
        let verb = if self.write_targets.contains(&me) {
            "writing to"
        } else {
            "this use of"
        };
        ControlFlow::Break(Denial::new(format!(
            "{verb} registered data source \"{}\" is not allowed through redveil",
            registered.data_source
        )))
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Denial> {
        for item in &mut select.projection {
            if let SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) = item
            {
                let mut parts: Vec<Ident> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .cloned()
                    .collect();
                if self.unqualify(&mut parts) {
                    *name = ObjectName::from(parts);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Denial> {
        if let Expr::CompoundIdentifier(parts) = expr {
            // Add the column name back so the prefix is what `unqualify` sees as a table.
            if let Some(column) = parts.pop() {
                self.unqualify(parts);
                parts.push(column);
            }
        }
        if let Expr::Function(function) = expr {
            if let Err(denial) = check_function(function, self.scope) {
                return ControlFlow::Break(denial);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Sync's filtered stand-in for a read of PostgreSQL's `pg_settings` or `pg_stat_activity`
/// while registered data can be reached (see `policy::schema::SESSION_VIEWS`).
fn session_view(name: &ObjectName, scope: Scope<'_>) -> Option<ObjectName> {
    if !scope.guarded() || !scope.dialect.has_session_views() {
        return None;
    }
    if !Scope::schema_of(name).is_none_or(|s| s.eq_ignore_ascii_case("pg_catalog")) {
        return None;
    }
    let last = name.0.last().and_then(|p| p.as_ident()).map(fold)?;
    let (_, ours, _) = crate::policy::schema::SESSION_VIEWS
        .iter()
        .find(|(theirs, _, _)| *theirs == last)?;
    Some(ObjectName::from(vec![
        Ident::new(crate::policy::SYSTEM_SCHEMA),
        Ident::new(*ours),
    ]))
}

/// Refuses any name inside the proxy's own schemas, whatever the quoting, and, while registered
/// data can be reached, the views that show other sessions' statements or redveil's settings.
fn check_reserved(name: &ObjectName, scope: Scope<'_>) -> Result<(), Denial> {
    let last = name.0.last().and_then(|p| p.as_ident()).map(fold);
    if let Some(view) = last
        .as_deref()
        .filter(|v| scope.guarded() && super::deny::OTHER_SESSIONS.contains(v))
    {
        return Err(super::deny::shows_other_sessions(view));
    }
    let system = Scope::schema_of(name).is_none_or(|s| s.eq_ignore_ascii_case("pg_catalog"));
    if let Some(view) = last
        .as_deref()
        .filter(|v| scope.guarded() && system && scope.dialect.logs_other_sessions(v))
    {
        return Err(super::deny::shows_other_sessions(view));
    }
    if let Some(view @ ("pg_settings" | "pg_file_settings")) =
        last.as_deref().filter(|_| scope.guarded())
    {
        return Err(Denial::new(format!(
            "{view} exposes settings reserved for redveil and is not allowed through redveil"
        )));
    }
    match Scope::schema_of(name) {
        Some(schema)
            if RESERVED_SCHEMAS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&schema)) =>
        {
            Err(Denial::new(format!(
                "schema \"{schema}\" belongs to redveil and cannot be used directly"
            )))
        }
        _ => Ok(()),
    }
}

fn plain_or_quoted(name: &str) -> Ident {
    if super::names::quote_ident(name) == name {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

/// The relation names a statement modifies.
fn write_targets(statement: &Statement) -> HashSet<*const ObjectName> {
    let mut out = HashSet::new();
    let mut from_factor = |factor: &TableFactor| {
        if let TableFactor::Table { name, .. } = factor {
            out.insert(name as *const ObjectName);
        }
    };
    match statement {
        Statement::Update(update) => from_factor(&update.table.relation),
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &delete.from;
            for table in tables {
                from_factor(&table.relation);
            }
            for name in &delete.tables {
                out.insert(name as *const ObjectName);
            }
        }
        Statement::Merge(merge) => from_factor(&merge.table),
        Statement::Insert(insert) => {
            if let TableObject::TableName(name) = &insert.table {
                out.insert(name as *const ObjectName);
            }
        }
        _ => {}
    }
    out
}

/// Statements whose every table reference the AST pass understands.
pub fn is_rewritable(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_)
            | Statement::Explain { .. }
            | Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::Copy { .. }
            | Statement::Declare { .. }
            | Statement::Prepare { .. }
            | Statement::Execute { .. }
            | Statement::Call(_)
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

/// Any other statement (DDL, GRANT, TRUNCATE, LOCK, COMMENT…) may not name a registered table
/// or a redveil schema at all.
pub fn check_unrewritable(statement: &str, scope: Scope<'_>) -> Result<(), Denial> {
    for token in tokens(statement) {
        let name = match token {
            Token::Word(w) => w.to_ascii_lowercase(),
            Token::Quoted(q) => q,
            // Function bodies and other text that may later run as SQL.
            Token::Literal(text) if scope.registry.is_named_in_text(text) => {
                return Err(Denial::new(
                    "this statement carries SQL text naming a registered table or a redveil schema and is not allowed through redveil",
                ));
            }
            _ => continue,
        };
        // Setting and function names are matched case-insensitively even when quoted
        // (`SET "IMMUTA.USER"` is `immuta.user`); schema names below are not.
        let folded = name.to_ascii_lowercase();
        if scope.guarded()
            && (super::deny::OTHER_SESSIONS.contains(&folded.as_str())
                || scope.dialect.logs_other_sessions(&folded))
        {
            return Err(super::deny::shows_other_sessions(&name));
        }
        if scope.guarded() && super::deny::IDENTITY_WORDS.contains(&folded.as_str()) {
            return Err(Denial::new(format!(
                "this statement names {name} and is not allowed through redveil"
            )));
        }
        if scope.registry.has_table_named(&name) {
            return Err(Denial::new(format!(
                "this statement names the registered table \"{name}\" and is not allowed through redveil"
            )));
        }
        if RESERVED_SCHEMAS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&name))
            || name.eq_ignore_ascii_case(scope.registry.view_schema())
        {
            return Err(Denial::new(format!(
                "this statement names the redveil schema \"{name}\" and is not allowed through redveil"
            )));
        }
        // `immuta` is also the namespace of the identity settings, whatever the view schema:
        // a function's `SET immuta.user = …` clause would forge the identity while it runs.
        if folded == "immuta" || folded.starts_with("immuta.") {
            return Err(Denial::new(format!(
                "this statement names the redveil settings \"{name}\" and is not allowed through redveil"
            )));
        }
    }
    Ok(())
}
