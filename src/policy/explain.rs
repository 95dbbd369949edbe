//! `redveil explain-policy`: which subscription, masks and row rules apply to one user on one
//! data source, and the view's SQL. Pure text from the catalog and the table's columns; the
//! command fetches the columns over the control path.

use super::classes::CLASSES_SCHEMA;
use super::compile::{compile, compile_class, CompileError};
use super::entitle::AccessPlan;
use super::masks::Column;
use super::model::{Catalog, DataSource, Subscription, User};
use crate::dialect::Dialect;
use std::fmt::Write;

/// The explanation, ending with the view's `CREATE VIEW` statement.
pub fn explain(
    dialect: Dialect,
    catalog: &Catalog,
    user: &User,
    ds: &DataSource,
    columns: &[Column],
) -> Result<String, CompileError> {
    let view = compile(dialect, ds, &catalog.view_schema, columns)?;
    let plan = AccessPlan::of(ds);
    let row = plan.row_for(ds, user);
    let mut out = String::new();
    let _ = write!(out, "data source {}", ds.table);
    if let Some(description) = &ds.description {
        let _ = write!(out, ": {description}");
    }
    let _ = writeln!(out, "\nview {}.{}", catalog.view_schema, ds.view_name());
    let _ = writeln!(out, "user {} ({})", user.name, describe_user(user));

    let who = match &ds.subscription {
        Subscription::Anyone => "anyone in the catalog".to_string(),
        Subscription::AnyOf {
            users,
            groups,
            attributes,
        } => {
            let mut parts: Vec<String> = users.iter().map(|u| format!("user {u}")).collect();
            parts.extend(groups.iter().map(|g| format!("group {g}")));
            for (key, values) in attributes {
                parts.extend(values.iter().map(|v| format!("{key} = {v}")));
            }
            format!("any of: {}", parts.join(", "))
        }
    };
    let verdict = if row.is_some() {
        "subscribed"
    } else {
        "NOT subscribed: the view shows this user no rows"
    };
    let _ = writeln!(out, "\nsubscription: {who} → {verdict}");

    let _ = writeln!(out, "\nmasks:");
    if ds.masks.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for mask in &ds.masks {
        let unless = if mask.unless.is_empty() {
            String::new()
        } else {
            format!(", unless {}", mask.unless)
        };
        let effect = if mask.unless.exempts(user) {
            "exempt: sees the raw value"
        } else {
            "applies"
        };
        let _ = writeln!(out, "  {}: {}{unless} → {effect}", mask.column, mask.method);
    }

    let _ = writeln!(out, "\nrow rules:");
    if ds.row_rules.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for rule in &ds.row_rules {
        let mut scope = String::new();
        if let Some(groups) = &rule.for_groups {
            let list: Vec<&str> = groups.iter().map(String::as_str).collect();
            let _ = write!(scope, ", for members of {}", list.join(", "));
        }
        if !rule.unless.is_empty() {
            let _ = write!(scope, ", unless {}", rule.unless);
        }
        let mut effect = if rule.restricts(user) {
            "applies".to_string()
        } else {
            "does not restrict this user".to_string()
        };
        if let (true, super::model::RowFilter::AttributeMatch { attribute, .. }) =
            (rule.restricts(user), &rule.filter)
        {
            let values: Vec<&str> = user
                .attributes
                .get(attribute)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let _ = write!(
                effect,
                " (the user's {attribute} values: {})",
                if values.is_empty() {
                    "none, so no rows".to_string()
                } else {
                    values.join(", ")
                }
            );
        }
        let _ = writeln!(out, "  {}{scope} → {effect}", rule.filter);
    }

    let _ = writeln!(out, "\nview SQL:\n{};", view.sql);

    // What the proxy actually runs for this user (classes.rs); the canonical view above is
    // what a session with the user's token pinned reads (and SQL-level PREPARE).
    match &row {
        Some(row) => {
            let class = compile_class(dialect, ds, &row.flags, columns)?;
            let _ = writeln!(
                out,
                "\nthrough redveil: class view {}.{} (flags {}; it admits only sessions whose pinned token is of a user with these flags):\n{};",
                CLASSES_SCHEMA,
                super::classes::class_view_name(ds, &row.flags),
                row.flags,
                class.sql
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\nthrough redveil: no class view; the table is rewritten to the view above, \
                 which shows this user no rows"
            );
        }
    }
    Ok(out)
}

fn describe_user(user: &User) -> String {
    let groups = if user.groups.is_empty() {
        "no groups".to_string()
    } else {
        let list: Vec<&str> = user.groups.iter().map(String::as_str).collect();
        format!("groups: {}", list.join(", "))
    };
    let mut attributes = Vec::new();
    for (key, values) in &user.attributes {
        for value in values {
            attributes.push(format!("{key} = {value}"));
        }
    }
    let attributes = if attributes.is_empty() {
        "no attributes".to_string()
    } else {
        format!("attributes: {}", attributes.join(", "))
    };
    let permissions = if user.can_impersonate {
        "; may impersonate"
    } else {
        ""
    };
    format!("{groups}; {attributes}{permissions}")
}

/// Why explain-policy could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("invalid catalog: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Catalog(Vec<(String, String)>),
    #[error("no user named {0:?} in the catalog (such a login sees no rows in any view)")]
    UnknownUser(String),
    #[error(
        "no data source {0:?} in the catalog (give its table, e.g. hr.employees, or its view)"
    )]
    UnknownDataSource(String),
    #[error(transparent)]
    Control(#[from] super::control::ControlError),
    #[error("control connection: {0}")]
    Checkout(String),
    #[error(transparent)]
    Sync(#[from] super::report::SyncError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Dialect(#[from] crate::dialect::DialectMismatch),
    #[error("reading version(): {0}")]
    Version(String),
}

/// Explains with the configuration's catalog, reading the table's columns from the cluster
/// as the system role.
pub async fn explain_configured(
    config: &crate::config::Config,
    user: &str,
    data_source: &str,
) -> Result<String, ExplainError> {
    let catalog = Catalog::from_config(config).map_err(ExplainError::Catalog)?;
    let user = catalog
        .user(user)
        .ok_or_else(|| ExplainError::UnknownUser(user.to_string()))?;
    let ds = catalog
        .data_source(data_source)
        .ok_or_else(|| ExplainError::UnknownDataSource(data_source.to_string()))?;
    let database = ds
        .table
        .database
        .clone()
        .unwrap_or_else(|| config.backend.database.clone());
    let pool = super::control::pool(config, &database).await?;
    let conn = pool
        .get()
        .await
        .map_err(|e| ExplainError::Checkout(e.to_string()))?;
    // The SQL of the engine behind the proxy, as sync would write it there.
    let version: String = conn
        .query_one("SELECT version()", &[])
        .await
        .map_err(|e| ExplainError::Version(e.to_string()))?
        .get(0);
    let dialect = Dialect::resolve(config.backend.dialect, &version)?;
    let columns = super::sync::table_columns(&*conn, dialect, ds).await?;
    Ok(explain(dialect, &catalog, user, ds, &columns)?)
}
