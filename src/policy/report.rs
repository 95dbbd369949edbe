//! What sync reports: each change it made, or why it made none.

use super::compile::CompileError;
use std::collections::BTreeMap;
use std::fmt;

/// Something sync changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreatedSchema(String),
    CreatedTable(String),
    /// A secure view or the procedure, created or brought up to date.
    InstalledObject(String),
    CreatedView {
        view: String,
        data_source: String,
    },
    ReplacedView {
        view: String,
        data_source: String,
    },
    DroppedView {
        view: String,
        data_source: String,
    },
    /// A class view nobody falls in any more (see classes.rs).
    DroppedClassView {
        view: String,
        data_source: String,
    },
    Granted {
        privilege: String,
        object: String,
    },
    ProfileRows {
        table: String,
        added: usize,
        removed: usize,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreatedSchema(s) => write!(f, "created schema {s}"),
            Change::CreatedTable(t) => write!(f, "created table {t}"),
            Change::InstalledObject(o) => write!(f, "installed {o}"),
            Change::CreatedView { view, data_source } => {
                write!(f, "created view {view} for {data_source}")
            }
            Change::ReplacedView { view, data_source } => {
                write!(f, "replaced view {view} for {data_source}")
            }
            Change::DroppedView { view, data_source } => {
                write!(
                    f,
                    "dropped view {view} of removed data source {data_source}"
                )
            }
            Change::DroppedClassView { view, data_source } => {
                write!(f, "dropped class view {view} of {data_source}")
            }
            Change::Granted { privilege, object } => write!(f, "granted {privilege} on {object}"),
            Change::ProfileRows {
                table,
                added,
                removed,
            } => write!(f, "{table}: {added} rows added, {removed} removed"),
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub database: String,
    pub changes: Vec<Change>,
    /// Each synced data source's salt, by data source key: the proxy pins it for the class
    /// views (see classes.rs).
    pub salts: BTreeMap<String, String>,
}

impl SyncReport {
    /// True when the cluster already matched the catalog.
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return write!(f, "{}: policy up to date", self.database);
        }
        write!(f, "{}: {} changes", self.database, self.changes.len())?;
        for change in &self.changes {
            write!(f, "\n  {change}")?;
        }
        Ok(())
    }
}

/// Why sync failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{context}: {}", db_message(.source))]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("query role {0:?} does not exist in the cluster (backend.user)")]
    NoQueryRole(String),
    #[error("{item}: table {table} does not exist, or the system role cannot see it")]
    MissingTable { item: String, table: String },
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("{item}: the cluster rejected the view {view}: {message}")]
    ViewRejected {
        item: String,
        view: String,
        message: String,
    },
    #[error("the query role {role} can read {} directly, bypassing the policy views; revoke it (e.g. REVOKE SELECT ON {} FROM {role})", tables.join(", "), tables.join(", "))]
    DirectAccess { role: String, tables: Vec<String> },
    #[error("the query role {0} shows each of its sessions the statements of the others (pg_stat_activity), and every redveil client shares it; as a superuser run ALTER ROLE {0} SET track_activities = off")]
    StatementsVisible(String),
}

/// The server's message when there is one: tokio-postgres's own Display says only "db error".
fn db_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl SyncError {
    pub(super) fn db(
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> SyncError {
        let context = context.into();
        move |source| SyncError::Database { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_changes() {
        let report = SyncReport {
            database: "demo".into(),
            changes: vec![
                Change::CreatedView {
                    view: "immuta.hr_employees".into(),
                    data_source: "hr.employees".into(),
                },
                Change::ProfileRows {
                    table: "immuta_system.profile_users".into(),
                    added: 3,
                    removed: 0,
                },
            ],
            salts: BTreeMap::new(),
        };
        assert_eq!(
            report.to_string(),
            "demo: 2 changes\n  created view immuta.hr_employees for hr.employees\n  immuta_system.profile_users: 3 rows added, 0 removed"
        );
        assert_eq!(
            SyncReport {
                database: "demo".into(),
                changes: vec![],
                salts: BTreeMap::new(),
            }
            .to_string(),
            "demo: policy up to date"
        );
    }
}
