//! Sync's guards: what must hold of the query role (the pool's login, which every client
//! runs as) before and after views are installed. It exists; its sessions do not see each
//! other's statements; it cannot read a registered table or a profile table directly. Any
//! failure rolls the whole sync back.

use super::model::DataSource;
use super::report::SyncError;
use super::schema;
use super::sql::qualified;
use super::sync::Run;
use super::SYSTEM_SCHEMA;

impl Run<'_> {
    pub(super) async fn check_role_and_raw_tables(
        &self,
        sources: &[&DataSource],
    ) -> Result<(), SyncError> {
        let exists = self
            .flag(
                self.dialect.role_exists_sql(),
                &[&self.role],
                "looking up the query role",
            )
            .await?;
        if !exists {
            return Err(SyncError::NoQueryRole(self.role.to_string()));
        }
        // Every client's statements run as the query role, and a role's sessions see each
        // other's statement text (literals included) unless activity tracking is off for it;
        // only a superuser can turn it off or back on.
        let hidden = match self.dialect.statements_hidden_sql() {
            Some(check) => {
                self.flag(
                    check,
                    &[&self.role],
                    "checking the query role's activity tracking",
                )
                .await?
            }
            None => true,
        };
        if !hidden {
            return Err(SyncError::StatementsVisible(self.role.to_string()));
        }
        let mut readable = Vec::new();
        for ds in sources {
            let table = qualified(&ds.table.schema, &ds.table.table);
            let found = self
                .flag(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                     ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
                    &[&ds.table.schema, &ds.table.table],
                    "looking up a registered table",
                )
                .await?;
            if !found {
                return Err(SyncError::MissingTable {
                    item: format!("{}.table", ds.origin),
                    table: ds.table.to_string(),
                });
            }
            let can_read = self
                .flag(
                    self.dialect.can_select_sql(),
                    &[&self.role, &table],
                    "checking the query role's privileges",
                )
                .await?;
            if can_read {
                readable.push(ds.table.key());
            }
        }
        if readable.is_empty() {
            Ok(())
        } else {
            Err(SyncError::DirectAccess {
                role: self.role.to_string(),
                tables: readable,
            })
        }
    }

    pub(super) async fn check_profile_tables(&self) -> Result<(), SyncError> {
        let mut readable = Vec::new();
        for table in schema::PROFILE_TABLES {
            let name = qualified(SYSTEM_SCHEMA, table);
            if self
                .flag(
                    self.dialect.can_select_sql(),
                    &[&self.role, &name],
                    "checking the query role's privileges",
                )
                .await?
            {
                readable.push(format!("{SYSTEM_SCHEMA}.{table}"));
            }
        }
        if readable.is_empty() {
            Ok(())
        } else {
            Err(SyncError::DirectAccess {
                role: self.role.to_string(),
                tables: readable,
            })
        }
    }
}
