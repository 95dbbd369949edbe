//! Policy: the catalog model, the view compiler (policy → SQL) and the sync of views and
//! profile into the cluster. It never sees client connections.
//!
//! - `model`, `load`: the validated catalog (users, data sources, subscription, masks, row
//!   rules), built from proxy.toml with errors naming key and line.
//! - `entitle`: a user's entitlements per data source, precomputed into `profile_access`.
//! - `masks`, `compile`: one `security_barrier` view per data source.
//! - `schema`, `sync`, `profile`, `guards`, `report`: the cluster side, one idempotent transaction per
//!   database, and what it reports.
//! - `control`: the system role's connection pool; `explain`: `redveil explain-policy`.
//!
//! Invariants: the query role reads views and secure profile views only (sync refuses to
//! finish if it can read a registered table or a profile table); a view shows every column
//! of its table with the same name, order and type (hash → text); a user without a profile
//! row sees no rows.
//!
//! SQL dialect. Generated SQL is PostgreSQL. It avoids extensions, UDFs and arrays so it
//! carries over to Amazon Redshift, where these spellings differ:
//! - SHA-256 hex: `encode(sha256(convert_to(x, 'UTF8')), 'hex')` is `sha2(x, 256)`;
//! - hex digits to integer: `CAST(CAST('x' || h AS bit(32)) AS bigint)` is `strtol(h, 16)`;
//! - `regexp_replace(s, p, r, 'g')`: Redshift replaces every match by default and writes
//!   back-references in the replacement as `$1` instead of `\1`;
//! - `WITH (security_barrier)` does not exist (Redshift has no user-defined leaky functions
//!   to guard against), nor does `pg_advisory_xact_lock` (sync would `LOCK` its registry).

mod class_sync;
pub mod classes;
pub mod compile;
pub mod control;
pub mod entitle;
pub mod explain;
mod guards;
mod live;
mod load;
pub mod masks;
pub mod model;
mod profile;
pub mod report;
pub mod schema;
pub mod sql;
pub mod sync;
pub mod tokens;

pub use compile::{compile, compile_class, CompileError, CompiledView};
pub use live::{LivePolicy, PolicyHandle};
pub use load::{PERMISSIONS, RESERVED_SCHEMAS};
pub use model::*;
pub use report::{Change, SyncError, SyncReport};
pub use sync::{sync, table_columns, SyncOptions};
pub use tokens::Tokens;

use crate::config::Config;
use std::collections::BTreeSet;

/// Profile tables, registry and secure views.
pub const SYSTEM_SCHEMA: &str = "immuta_system";
/// Masking helpers' schema.
pub const FUNCTIONS_SCHEMA: &str = "immuta_functions";
/// Home of the `impersonate_user` stub.
pub const PROCEDURES_SCHEMA: &str = "immuta_procedures";

/// Why the proxy could not sync its configured catalog.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid catalog: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Catalog(Vec<(String, String)>),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("control connection to {database}: {message}")]
    Checkout { database: String, message: String },
    #[error("sync of database {database}: {source}")]
    Sync {
        database: String,
        #[source]
        source: SyncError,
    },
}

impl PolicyError {
    /// The database whose sync failed, when it got that far.
    pub fn database(&self) -> Option<&str> {
        match self {
            PolicyError::Catalog(_) | PolicyError::Control(control::ControlError::Tls(_)) => None,
            PolicyError::Control(control::ControlError::Connect { database, .. })
            | PolicyError::Checkout { database, .. }
            | PolicyError::Sync { database, .. } => Some(database),
        }
    }
}

/// The databases holding the catalog's data sources (`backend.database` for those that name
/// none), sorted.
pub fn databases(catalog: &Catalog, default_database: &str) -> Vec<String> {
    catalog
        .data_sources
        .iter()
        .map(|ds| {
            ds.table
                .database
                .clone()
                .unwrap_or_else(|| default_database.to_string())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The identity tokens a sync stores: `current` for the catalog being synced, and those of
/// the version in force until the proxy switches (`previous`), so statements pinned under
/// them finish. Every other token is removed.
#[derive(Debug, Clone, Default)]
pub struct TokenSync {
    pub current: std::sync::Arc<Tokens>,
    pub previous: Option<std::sync::Arc<Tokens>>,
}

/// Syncs every database of the configured catalog over the control path; what the proxy
/// runs at start and on reload.
pub async fn sync_configured(
    config: &Config,
    tokens: &TokenSync,
    dialect: crate::dialect::Dialect,
) -> Result<Vec<SyncReport>, PolicyError> {
    let catalog = Catalog::from_config(config).map_err(PolicyError::Catalog)?;
    let all = databases(&catalog, &config.backend.database);
    sync_into(config, &catalog, all, tokens, dialect).await
}

/// Syncs the configured catalog into `database_names` (also ones where it has no data
/// source: their views and profile rows are removed).
pub async fn sync_configured_into(
    config: &Config,
    database_names: Vec<String>,
    tokens: &TokenSync,
    dialect: crate::dialect::Dialect,
) -> Result<Vec<SyncReport>, PolicyError> {
    let catalog = Catalog::from_config(config).map_err(PolicyError::Catalog)?;
    sync_into(config, &catalog, database_names, tokens, dialect).await
}

async fn sync_into(
    config: &Config,
    catalog: &Catalog,
    database_names: Vec<String>,
    tokens: &TokenSync,
    dialect: crate::dialect::Dialect,
) -> Result<Vec<SyncReport>, PolicyError> {
    let mut reports = Vec::new();
    for database in database_names {
        let pool = control::pool(config, &database).await?;
        let mut conn = pool.get().await.map_err(|e| PolicyError::Checkout {
            database: database.clone(),
            message: e.to_string(),
        })?;
        let options = SyncOptions {
            database: database.clone(),
            default_database: config.backend.database.clone(),
            query_role: config.backend.user.clone(),
            tokens: tokens.clone(),
            dialect,
        };
        let report =
            sync(&mut conn, catalog, &options)
                .await
                .map_err(|source| PolicyError::Sync {
                    database: database.clone(),
                    source,
                })?;
        reports.push(report);
    }
    Ok(reports)
}
