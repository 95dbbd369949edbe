//! The class-view half of sync: one view per (data source, class some user falls in), in
//! `immuta_classes`, replaced only when its definition changes and dropped when nobody falls
//! in its class any more (see classes.rs).

use super::classes::{self, CLASSES_SCHEMA};
use super::compile::compile_class;
use super::masks::Column;
use super::model::{Catalog, DataSource};
use super::report::{Change, SyncError};
use super::sql::qualified;
use super::sync::{Run, ViewState};
use super::SYSTEM_SCHEMA;
use std::collections::BTreeMap;

impl Run<'_> {
    /// `columns` holds each source's columns by data source key, as sync_views read them.
    pub(super) async fn sync_classes(
        &mut self,
        catalog: &Catalog,
        sources: &[&DataSource],
        columns: &BTreeMap<String, Vec<Column>>,
    ) -> Result<(), SyncError> {
        let registry = qualified(SYSTEM_SCHEMA, "class_views");
        let mut installed: BTreeMap<String, (String, String)> = self
            .tx
            .query(
                &format!("SELECT view_name, data_source, definition_sha256 FROM {registry}"),
                &[],
            )
            .await
            .map_err(SyncError::db("reading the class view registry"))?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let relations = self.relations_in(CLASSES_SCHEMA).await?;
        for ds in sources {
            let key = ds.table.key();
            for flags in classes::realized_classes(catalog, ds) {
                let view = compile_class(self.dialect, ds, &flags, &columns[&key])?;
                let name = classes::class_view_name(ds, &flags);
                let digest = classes::hex_sha256(&view.sql);
                let existing = relations.get(&name).copied();
                let unchanged = installed
                    .remove(&name)
                    .is_some_and(|(source, old)| source == key && old == digest);
                let display = format!("{CLASSES_SCHEMA}.{name}");
                let state = ViewState {
                    granted: existing,
                    current: unchanged,
                    replaces: existing.is_some(),
                };
                self.install_view(ds, &view, &display, state).await?;
                if !(existing.is_some() && unchanged) {
                    self.record("class_views", "view_name", &name, &[&name, &key, &digest])
                        .await?;
                }
            }
        }
        // Left over: classes of removed data sources, or that nobody falls in any more.
        for (name, (data_source, _)) in installed {
            self.exec(
                &format!("DROP VIEW IF EXISTS {}", qualified(CLASSES_SCHEMA, &name)),
                "dropping a class view",
            )
            .await?;
            self.tx
                .execute(
                    &format!("DELETE FROM {registry} WHERE view_name = $1"),
                    &[&name],
                )
                .await
                .map_err(SyncError::db("forgetting a class view"))?;
            self.changes.push(Change::DroppedClassView {
                view: format!("{CLASSES_SCHEMA}.{name}"),
                data_source,
            });
        }
        Ok(())
    }
}
