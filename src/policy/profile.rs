//! The profile half of sync: makes the four profile tables hold exactly what the catalog
//! says (users, their groups and attributes, and one entitlement row per user and data
//! source), and stores the identity tokens (see tokens.rs). That the query role cannot read
//! them is checked in guards.rs.

use super::entitle::AccessPlan;
use super::model::{Catalog, DataSource};
use super::report::{Change, SyncError};
use super::sql::qualified;
use super::sync::Run;
use super::SYSTEM_SCHEMA;
use std::collections::{BTreeMap, BTreeSet};

impl Run<'_> {
    pub(super) async fn sync_profile(
        &mut self,
        catalog: &Catalog,
        sources: &[&DataSource],
        salts: &BTreeMap<String, String>,
    ) -> Result<(), SyncError> {
        let mut users = BTreeSet::new();
        let mut groups = BTreeSet::new();
        let mut attributes = BTreeSet::new();
        let mut access = BTreeSet::new();
        for user in &catalog.users {
            users.push_row([user.name.clone(), user.can_impersonate.to_string()]);
            for group in &user.groups {
                groups.push_row([user.name.clone(), group.clone()]);
            }
            for (key, values) in &user.attributes {
                for value in values {
                    attributes.push_row([user.name.clone(), key.clone(), value.clone()]);
                }
            }
        }
        for ds in sources {
            let key = ds.table.key();
            let plan = AccessPlan::of(ds);
            for user in &catalog.users {
                if let Some(row) = plan.row_for(ds, user) {
                    access.push_row([
                        user.name.clone(),
                        key.clone(),
                        row.flags,
                        row.attribute_values,
                        salts[&key].clone(),
                    ]);
                }
            }
        }
        self.sync_rows("profile_users", &["user_name", "can_impersonate"], users)
            .await?;
        self.sync_rows("profile_groups", &["user_name", "group_name"], groups)
            .await?;
        self.sync_rows(
            "profile_attributes",
            &["user_name", "attribute", "value"],
            attributes,
        )
        .await?;
        self.sync_rows(
            "profile_access",
            &[
                "user_name",
                "data_source",
                "flags",
                "attribute_values",
                "salt",
            ],
            access,
        )
        .await
    }

    /// Stores the tokens the proxy will pin and removes the rest of its issuer's (see
    /// tokens.rs). Not reported as a change: tokens are issued anew for every catalog
    /// version, a second sync of the same catalog included.
    pub(super) async fn sync_tokens(&mut self, tokens: &super::TokenSync) -> Result<(), SyncError> {
        let table = qualified(SYSTEM_SCHEMA, super::tokens::TOKENS_TABLE);
        let (mut keep, mut users) = (Vec::new(), Vec::new());
        for set in std::iter::once(&tokens.current).chain(&tokens.previous) {
            for (token, user) in set.pairs() {
                if !keep.iter().any(|kept: &String| kept == token) {
                    keep.push(token.to_string());
                    users.push(user.to_string());
                }
            }
        }
        let context = format!("storing identity tokens in {table}");
        // Bound, not spliced: the tokens must never appear in statement text.
        self.tx
            .execute(
                &format!("DELETE FROM {table} WHERE issuer = $2 AND NOT impersonation AND NOT (token = ANY($1))"),
                &[&keep, &tokens.current.issuer()],
            )
            .await
            .map_err(SyncError::db(context.clone()))?;
        self.tx
            .execute(
                &format!(
                    "INSERT INTO {table} (token, user_name, issuer) \
                     SELECT t, u, $3 FROM unnest($1::text[], $2::text[]) AS n(t, u) \
                     WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE token = n.t)"
                ),
                &[&keep, &users, &tokens.current.issuer()],
            )
            .await
            .map_err(SyncError::db(context))?;
        Ok(())
    }

    /// Makes a profile table hold exactly `wanted` (all columns compared as text).
    async fn sync_rows(
        &mut self,
        table: &str,
        columns: &[&str],
        wanted: BTreeSet<Vec<String>>,
    ) -> Result<(), SyncError> {
        let name = qualified(SYSTEM_SCHEMA, table);
        let list = columns.join(", ");
        let text_list: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
        let current: BTreeSet<Vec<String>> = self
            .tx
            .query(&format!("SELECT {} FROM {name}", text_list.join(", ")), &[])
            .await
            .map_err(SyncError::db(format!("reading {name}")))?
            .iter()
            .map(|r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
            .collect();
        let removed: Vec<&Vec<String>> = current.difference(&wanted).collect();
        let added: Vec<&Vec<String>> = wanted.difference(&current).collect();
        if !removed.is_empty() {
            let matches: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c}::text = ${}", i + 1))
                .collect();
            let delete = format!("DELETE FROM {name} WHERE {}", matches.join(" AND "));
            for row in &removed {
                self.tx
                    .execute(&delete, &params(row))
                    .await
                    .map_err(SyncError::db(format!("deleting from {name}")))?;
            }
        }
        if !added.is_empty() {
            // Parameters are text; each is cast to its column's type (boolean for one).
            let values: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("CAST(CAST(${} AS text) AS {})", i + 1, column_type(c)))
                .collect();
            let insert = format!("INSERT INTO {name} ({list}) VALUES ({})", values.join(", "));
            let statement = self
                .tx
                .prepare(&insert)
                .await
                .map_err(SyncError::db(format!("preparing inserts into {name}")))?;
            for row in &added {
                self.tx
                    .execute(&statement, &params(row))
                    .await
                    .map_err(SyncError::db(format!("inserting into {name}")))?;
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            // Fresh statistics let the planner pick the primary-key lookup the views rely on
            // once the table outgrows a page.
            self.exec(&format!("ANALYZE {name}"), "analyzing a profile table")
                .await?;
            self.changes.push(Change::ProfileRows {
                table: format!("{SYSTEM_SCHEMA}.{table}"),
                added: added.len(),
                removed: removed.len(),
            });
        }
        Ok(())
    }
}

trait PushRow {
    fn push_row<const N: usize>(&mut self, row: [String; N]);
}

impl PushRow for BTreeSet<Vec<String>> {
    fn push_row<const N: usize>(&mut self, row: [String; N]) {
        self.insert(row.into());
    }
}

/// The profile tables' only non-text column.
fn column_type(column: &str) -> &'static str {
    if column == "can_impersonate" {
        "boolean"
    } else {
        "text"
    }
}

fn params(row: &[String]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    row.iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}
