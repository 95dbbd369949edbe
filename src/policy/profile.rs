//! The profile half of sync: makes the four profile tables hold exactly what the catalog
//! says (users, their groups and attributes, and one entitlement row per user and data
//! source), and stores the identity tokens (see tokens.rs). That the query role cannot read
//! them is checked in guards.rs.

use super::entitle::AccessPlan;
use super::model::{Catalog, DataSource};
use super::report::{Change, SyncError};
use super::sql::{parameter_list, qualified};
use super::sync::Run;
use super::SYSTEM_SCHEMA;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::types::ToSql;

/// Bound values per statement: far below every engine's limit (PostgreSQL takes 65 535), and
/// enough that a large catalog needs few statements.
const VALUES_PER_STATEMENT: usize = 900;

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
        let issuer = tokens.current.issuer();
        let stored: BTreeSet<String> = self
            .tx
            .query(
                &format!("SELECT token FROM {table} WHERE issuer = $1 AND NOT impersonation"),
                &[&issuer],
            )
            .await
            .map_err(SyncError::db(context.clone()))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // Bound, not spliced: the tokens must never appear in statement text.
        let stale: Vec<&String> = stored.iter().filter(|t| !keep.contains(*t)).collect();
        for chunk in stale.chunks(VALUES_PER_STATEMENT) {
            let delete = format!(
                "DELETE FROM {table} WHERE issuer = $1 AND NOT impersonation AND token IN {}",
                parameter_list(2, chunk.len())
            );
            let mut values: Vec<&(dyn ToSql + Sync)> = vec![&issuer];
            values.extend(chunk.iter().map(|t| *t as &(dyn ToSql + Sync)));
            self.tx
                .execute(&delete, &values)
                .await
                .map_err(SyncError::db(context.clone()))?;
        }
        let fresh: Vec<(&String, &String)> = keep
            .iter()
            .zip(&users)
            .filter(|(token, _)| !stored.contains(*token))
            .collect();
        for chunk in fresh.chunks(VALUES_PER_STATEMENT / 2) {
            // The issuer is $1 in every row.
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3))
                .collect();
            let insert = format!(
                "INSERT INTO {table} (token, user_name, issuer) VALUES {}",
                rows.join(", ")
            );
            let mut values: Vec<&(dyn ToSql + Sync)> = vec![&issuer];
            for (token, user) in chunk {
                values.push(*token);
                values.push(*user);
            }
            self.tx
                .execute(&insert, &values)
                .await
                .map_err(SyncError::db(context.clone()))?;
        }
        Ok(())
    }

    /// Makes a profile table hold exactly `wanted`, rows compared as text. Rows are written
    /// many to a statement with bound values: one statement per row would cost a round trip
    /// each, and on Redshift a commit-sized write each.
    async fn sync_rows(
        &mut self,
        table: &str,
        columns: &[&str],
        wanted: BTreeSet<Vec<String>>,
    ) -> Result<(), SyncError> {
        let name = qualified(SYSTEM_SCHEMA, table);
        let read: Vec<String> = columns.iter().map(|c| read_as_text(c)).collect();
        let current: BTreeSet<Vec<String>> = self
            .tx
            .query(&format!("SELECT {} FROM {name}", read.join(", ")), &[])
            .await
            .map_err(SyncError::db(format!("reading {name}")))?
            .iter()
            .map(|r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
            .collect();
        let removed: Vec<&Vec<String>> = current.difference(&wanted).collect();
        let added: Vec<&Vec<String>> = wanted.difference(&current).collect();
        let rows_per_statement = VALUES_PER_STATEMENT / columns.len();
        for chunk in removed.chunks(rows_per_statement) {
            let matches: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let cells: Vec<String> = columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c} = ${}", row * columns.len() + i + 1))
                        .collect();
                    format!("({})", cells.join(" AND "))
                })
                .collect();
            let delete = format!("DELETE FROM {name} WHERE {}", matches.join(" OR "));
            self.tx
                .execute(&delete, &refs(&bound(columns, chunk)))
                .await
                .map_err(SyncError::db(format!("deleting from {name}")))?;
        }
        for chunk in added.chunks(rows_per_statement) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| parameter_list(row * columns.len() + 1, columns.len()))
                .collect();
            let insert = format!(
                "INSERT INTO {name} ({}) VALUES {}",
                columns.join(", "),
                rows.join(", ")
            );
            self.tx
                .execute(&insert, &refs(&bound(columns, chunk)))
                .await
                .map_err(SyncError::db(format!("inserting into {name}")))?;
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
const FLAG_COLUMN: &str = "can_impersonate";

/// A column read as the text `sync_rows` compares. Redshift cannot cast a boolean to a
/// character type (r_Boolean_type.html), so the flag is spelled out.
fn read_as_text(column: &str) -> String {
    if column == FLAG_COLUMN {
        format!("CASE WHEN {column} THEN 'true' ELSE 'false' END")
    } else {
        column.to_string()
    }
}

/// The rows' values, bound as their columns' types.
fn bound(columns: &[&str], rows: &[&Vec<String>]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    rows.iter()
        .flat_map(|row| columns.iter().zip(row.iter()))
        .map(|(column, value)| -> Box<dyn ToSql + Sync + Send> {
            if *column == FLAG_COLUMN {
                Box::new(value == "true")
            } else {
                Box::new(value.clone())
            }
        })
        .collect()
}

fn refs(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
