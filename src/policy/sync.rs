//! Sync: makes one database's schemas, profile, views and grants match the catalog, in one
//! transaction, touching only what differs, and reports every change (so a second run
//! reports none).
//!
//! Order matters: first the checks that make the rest pointless (the query role must exist
//! and must not read a registered table), then fixed objects, then views, then the profile
//! rows, then the profile-table check. Any error rolls everything back: the cluster keeps the
//! previous, consistent policy.

use super::compile::{compile, CompiledView};
use super::masks::{Column, ColumnKind};
use super::model::{Catalog, DataSource};
use super::report::{Change, SyncError, SyncReport};
use super::schema::{self, ManagedKind};
use super::sql::{ident, qualified};
use super::SYSTEM_SCHEMA;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::{Client, Transaction};

/// Serializes concurrent syncs of one database (several proxy instances starting at once).
const ADVISORY_LOCK: i64 = 0x7265_6476_6569_6c00; // "redveil\0"

/// Where and for whom to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The database the client is connected to.
    pub database: String,
    /// The database of data sources that name none (`backend.database`).
    pub default_database: String,
    /// The query role (the pool's login) that gets the views.
    pub query_role: String,
    /// The identity tokens to store (see tokens.rs).
    pub tokens: super::TokenSync,
    /// The engine the views are written for.
    pub dialect: crate::dialect::Dialect,
}
/// Syncs the data sources of `options.database`. The client must be logged in as the system
/// role and connected to that database.
pub async fn sync(
    client: &mut Client,
    catalog: &Catalog,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let tx = client
        .transaction()
        .await
        .map_err(SyncError::db("starting the sync transaction"))?;
    if let Some(preamble) = options.dialect.sync_preamble(ADVISORY_LOCK) {
        tx.batch_execute(&preamble)
            .await
            .map_err(SyncError::db("locking for sync"))?;
    }
    let sources: Vec<&DataSource> = catalog
        .data_sources
        .iter()
        .filter(|ds| {
            ds.table
                .database
                .as_deref()
                .unwrap_or(&options.default_database)
                == options.database
        })
        .collect();
    let mut run = Run {
        tx: &tx,
        role: &options.query_role,
        changes: Vec::new(),
        dialect: options.dialect,
    };
    run.check_role_and_raw_tables(&sources).await?;
    run.install_fixed(&catalog.view_schema).await?;
    let registry = qualified(SYSTEM_SCHEMA, "data_sources");
    if let Some(lock) = options.dialect.sync_lock(&registry) {
        run.exec(&lock, "locking for sync").await?;
    }
    let (salts, columns) = run.sync_views(&sources, &catalog.view_schema).await?;
    run.sync_classes(catalog, &sources, &columns).await?;
    run.sync_profile(catalog, &sources, &salts).await?;
    run.sync_tokens(&options.tokens).await?;
    run.check_profile_tables().await?;
    let changes = run.changes;
    tx.commit()
        .await
        .map_err(SyncError::db("committing the sync"))?;
    // Keyed across databases, as the proxy's entitlements read them (see TableName::id).
    let salts = sources
        .iter()
        .filter_map(|ds| Some((ds.table.id(), salts.get(&ds.table.key())?.clone())))
        .collect();
    Ok(SyncReport {
        database: options.database.clone(),
        changes,
        salts,
    })
}

/// The table's columns in order, as the compiler needs them.
pub async fn table_columns(
    client: &impl tokio_postgres::GenericClient,
    dialect: crate::dialect::Dialect,
    ds: &DataSource,
) -> Result<Vec<Column>, SyncError> {
    let rows = client
        .query(
            dialect.table_columns_sql(),
            &[&ds.table.schema, &ds.table.table],
        )
        .await
        .map_err(SyncError::db(format!(
            "reading the columns of {}",
            ds.table
        )))?;
    if rows.is_empty() {
        return Err(SyncError::MissingTable {
            item: format!("{}.table", ds.origin),
            table: ds.table.to_string(),
        });
    }
    Ok(rows
        .iter()
        .map(|row| Column {
            name: row.get(0),
            kind: ColumnKind::from_data_type(row.get(1)),
            sql_type: row.get(2),
        })
        .collect())
}

/// A privilege the query role must hold.
pub(super) struct Grant<'a> {
    /// `SELECT has_…_privilege($1, $2, '…')`; `None` where the engine cannot tell, so the
    /// grant (idempotent) is given every time.
    pub(super) check: Option<&'a str>,
    /// `$2` of the check.
    pub(super) object: &'a str,
    /// The object as reports name it.
    pub(super) display: &'a str,
    pub(super) privilege: &'a str,
    /// What follows GRANT, e.g. `SELECT ON "immuta"."hr_employees"`.
    pub(super) what: String,
}

/// A view as sync found it.
pub(super) struct ViewState {
    /// `None` when absent, else whether the query role may SELECT from it.
    pub(super) granted: Option<bool>,
    /// Its definition is the one compiled now (per the registry).
    pub(super) current: bool,
    /// A (re)creation is reported as a replacement.
    pub(super) replaces: bool,
}

/// One sync in progress; its profile half lives in profile.rs.
pub(super) struct Run<'a> {
    pub(super) tx: &'a Transaction<'a>,
    pub(super) role: &'a str,
    pub(super) changes: Vec<Change>,
    /// The engine the views are written for.
    pub(super) dialect: crate::dialect::Dialect,
}

impl Run<'_> {
    pub(super) async fn exec(&self, sql: &str, context: &str) -> Result<(), SyncError> {
        self.tx
            .batch_execute(sql)
            .await
            .map_err(SyncError::db(context.to_string()))
    }

    pub(super) async fn flag(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: &str,
    ) -> Result<bool, SyncError> {
        let row = self
            .tx
            .query_one(sql, params)
            .await
            .map_err(SyncError::db(context.to_string()))?;
        Ok(row.get(0))
    }

    /// Replaces the row of `key` in a registry table (DELETE + INSERT: Redshift has no
    /// ON CONFLICT).
    pub(super) async fn record(
        &self,
        table: &str,
        key_column: &str,
        key: &str,
        row: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), SyncError> {
        let name = qualified(SYSTEM_SCHEMA, table);
        let context = format!("recording in {name}");
        self.tx
            .execute(
                &format!("DELETE FROM {name} WHERE {key_column} = $1"),
                &[&key],
            )
            .await
            .map_err(SyncError::db(context.clone()))?;
        let values: Vec<String> = (1..=row.len()).map(|i| format!("${i}")).collect();
        self.tx
            .execute(
                &format!("INSERT INTO {name} VALUES ({})", values.join(", ")),
                row,
            )
            .await
            .map_err(SyncError::db(context))?;
        Ok(())
    }

    pub(super) async fn relation_exists(
        &self,
        schema: &str,
        name: &str,
    ) -> Result<bool, SyncError> {
        self.flag(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema, &name],
            "looking up a relation",
        )
        .await
    }

    /// The relations in `schema`, each with whether the query role may SELECT from it: one
    /// query instead of two per view, which is what a sync with nothing to do would spend
    /// its time on.
    pub(super) async fn relations_in(
        &self,
        schema: &str,
    ) -> Result<BTreeMap<String, bool>, SyncError> {
        Ok(self
            .tx
            .query(
                "SELECT CAST(c.relname AS VARCHAR(128)), has_table_privilege($1, c.oid, 'SELECT') \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $2",
                &[&self.role, &schema],
            )
            .await
            .map_err(SyncError::db(format!("listing the relations of {schema}")))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Grants `privilege` on `object` (as SQL text for the `has_*_privilege` check) unless
    /// the query role has it. A grant that completes an object created in this run is part
    /// of that change; only a repaired grant is reported on its own.
    pub(super) async fn grant(
        &mut self,
        grant: Grant<'_>,
        just_created: bool,
    ) -> Result<(), SyncError> {
        let has = match grant.check {
            Some(check) => {
                self.flag(check, &[&self.role, &grant.object], "checking a grant")
                    .await?
            }
            None => false,
        };
        if !has {
            let sql = format!("GRANT {} TO {}", grant.what, ident(self.role));
            self.exec(
                &sql,
                &format!("granting {} on {}", grant.privilege, grant.display),
            )
            .await?;
            if !just_created && grant.check.is_some() {
                self.changes.push(Change::Granted {
                    privilege: grant.privilege.into(),
                    object: grant.display.into(),
                });
            }
        }
        Ok(())
    }

    async fn install_fixed(&mut self, view_schema: &str) -> Result<(), SyncError> {
        let mut created = BTreeSet::new();
        for name in schema::SCHEMAS.iter().copied().chain([view_schema]) {
            let exists = self
                .flag(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
                    &[&name],
                    "looking up a schema",
                )
                .await?;
            if !exists {
                self.exec(
                    &format!("CREATE SCHEMA {}", ident(name)),
                    "creating a schema",
                )
                .await?;
                self.changes.push(Change::CreatedSchema(name.into()));
                created.insert(name);
            }
        }
        for (table, columns) in schema::TABLES {
            if !self.relation_exists(SYSTEM_SCHEMA, table).await? {
                let name = qualified(SYSTEM_SCHEMA, table);
                self.exec(
                    &format!("CREATE TABLE {name} ({})", self.dialect.columns(columns)),
                    "creating a profile table",
                )
                .await?;
                self.changes
                    .push(Change::CreatedTable(format!("{SYSTEM_SCHEMA}.{table}")));
            }
        }
        let installed: BTreeMap<String, String> = self
            .tx
            .query(
                "SELECT object, definition_sha256 FROM immuta_system.managed_objects",
                &[],
            )
            .await
            .map_err(SyncError::db("reading managed objects"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for object in schema::managed_objects(self.dialect) {
            let digest = sha256_hex(&object.ddl);
            let (obj_schema, obj_name) = object.name.split_once('.').unwrap_or_default();
            let present = match &object.kind {
                ManagedKind::View => self.relation_exists(obj_schema, obj_name).await?,
                ManagedKind::Procedure { .. } => {
                    self.flag(
                        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n \
                         ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2)",
                        &[&obj_schema, &obj_name],
                        "looking up a procedure",
                    )
                    .await?
                }
            };
            let install = !present || installed.get(&object.name) != Some(&digest);
            if install {
                self.exec(&object.ddl, &format!("installing {}", object.name))
                    .await?;
                self.record(
                    "managed_objects",
                    "object",
                    &object.name,
                    &[&object.name, &digest],
                )
                .await?;
                self.changes
                    .push(Change::InstalledObject(object.name.clone()));
            }
            let grant = match &object.kind {
                ManagedKind::View => Grant {
                    check: Some("SELECT has_table_privilege($1, $2, 'SELECT')"),
                    object: &object.name,
                    display: &object.name,
                    privilege: "SELECT",
                    what: format!("SELECT ON {}", object.name),
                },
                ManagedKind::Procedure { signature } => Grant {
                    check: self.dialect.can_execute_sql(),
                    object: signature,
                    display: &object.name,
                    privilege: "EXECUTE",
                    what: format!("EXECUTE ON PROCEDURE {signature}"),
                },
            };
            self.grant(grant, install).await?;
        }
        for name in schema::SCHEMAS.iter().copied().chain([view_schema]) {
            let grant = Grant {
                check: Some("SELECT has_schema_privilege($1, $2, 'USAGE')"),
                object: name,
                display: name,
                privilege: "USAGE",
                what: format!("USAGE ON SCHEMA {}", ident(name)),
            };
            self.grant(grant, created.contains(name)).await?;
        }
        Ok(())
    }

    /// Creates, replaces and drops views; returns each data source's salt and columns.
    async fn sync_views(
        &mut self,
        sources: &[&DataSource],
        view_schema: &str,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, Vec<Column>>), SyncError> {
        struct Registered {
            view_schema: String,
            view_name: String,
            salt: String,
            digest: String,
        }
        let mut registry: BTreeMap<String, Registered> = self
            .tx
            .query(
                "SELECT data_source, view_schema, view_name, salt, definition_sha256 FROM immuta_system.data_sources",
                &[],
            )
            .await
            .map_err(SyncError::db("reading the data source registry"))?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Registered {
                        view_schema: r.get(1),
                        view_name: r.get(2),
                        salt: r.get(3),
                        digest: r.get(4),
                    },
                )
            })
            .collect();
        let relations = self.relations_in(view_schema).await?;
        let mut salts = BTreeMap::new();
        let mut all_columns = BTreeMap::new();
        for ds in sources {
            let key = ds.table.key();
            let columns = table_columns(self.tx, self.dialect, ds).await?;
            let view = compile(self.dialect, ds, view_schema, &columns)?;
            let digest = sha256_hex(&view.sql);
            let previous = registry.remove(&key);
            let salt = ds
                .salt
                .clone()
                .or_else(|| previous.as_ref().map(|p| p.salt.clone()))
                .unwrap_or_else(random_salt);
            let view_name = ds.view_name();
            let existing = relations.get(&view_name).copied();
            let present = existing.is_some();
            let unchanged = previous.as_ref().is_some_and(|p| {
                p.digest == digest && p.view_schema == view_schema && p.view_name == view_name
            });
            if !(present && unchanged) {
                if let Some(p) = previous
                    .as_ref()
                    .filter(|p| p.view_schema != view_schema || p.view_name != view_name)
                {
                    let old = qualified(&p.view_schema, &p.view_name);
                    self.exec(&format!("DROP VIEW IF EXISTS {old}"), "dropping a view")
                        .await?;
                }
            }
            let display = format!("{view_schema}.{view_name}");
            let replaces = previous.is_some() || present;
            let state = ViewState {
                granted: existing,
                current: unchanged,
                replaces,
            };
            self.install_view(ds, &view, &display, state).await?;
            if !unchanged || previous.as_ref().is_some_and(|p| p.salt != salt) {
                let row: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                    [&key, &view_schema, &view_name, &salt, &digest];
                self.record("data_sources", "data_source", &key, &row)
                    .await?;
            }
            salts.insert(key.clone(), salt);
            all_columns.insert(key, columns);
        }
        // Whatever is left in the registry was removed from the catalog.
        for (data_source, old) in registry {
            let view = qualified(&old.view_schema, &old.view_name);
            self.exec(&format!("DROP VIEW IF EXISTS {view}"), "dropping a view")
                .await?;
            self.tx
                .execute(
                    "DELETE FROM immuta_system.data_sources WHERE data_source = $1",
                    &[&data_source],
                )
                .await
                .map_err(SyncError::db("forgetting a data source"))?;
            self.changes.push(Change::DroppedView {
                view: format!("{}.{}", old.view_schema, old.view_name),
                data_source,
            });
        }
        Ok((salts, all_columns))
    }

    /// Installs `view` unless it is present as compiled (reporting it as created, or as
    /// replaced when `state.replaces`), and grants the query role SELECT on it.
    pub(super) async fn install_view(
        &mut self,
        ds: &DataSource,
        view: &CompiledView,
        display: &str,
        state: ViewState,
    ) -> Result<(), SyncError> {
        let installed = state.current && state.granted.is_some();
        if !installed {
            self.create_view(ds, view).await?;
            let (view, data_source) = (display.to_string(), ds.table.key());
            self.changes.push(if state.replaces {
                Change::ReplacedView { view, data_source }
            } else {
                Change::CreatedView { view, data_source }
            });
        } else if state.granted == Some(true) {
            return Ok(());
        }
        let grant = Grant {
            check: Some("SELECT has_table_privilege($1, $2, 'SELECT')"),
            object: &view.view,
            display,
            privilege: "SELECT",
            what: format!("SELECT ON {}", view.view),
        };
        self.grant(grant, !installed).await
    }

    async fn create_view(&self, ds: &DataSource, view: &CompiledView) -> Result<(), SyncError> {
        // Not CREATE OR REPLACE: it refuses column type changes after an ALTER TABLE.
        self.exec(
            &format!("DROP VIEW IF EXISTS {}", view.view),
            "dropping a view",
        )
        .await?;
        self.tx
            .batch_execute(&view.sql)
            .await
            .map_err(|e| SyncError::ViewRejected {
                item: ds.origin.clone(),
                view: view.view.clone(),
                message: e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            })
    }
}

use super::classes::hex_sha256 as sha256_hex;

/// 128 random bits as hex. No entropy means no safe salt, so that is fatal (as for SCRAM).
fn random_salt() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_salts_are_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_salt().len(), 32);
    }
}
