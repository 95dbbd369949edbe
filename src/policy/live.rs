//! The catalog in force, swappable while sessions run: a reload syncs the cluster first, then
//! replaces it, and every session reads it again at its next statement.

use super::Catalog;
use crate::config::Config;
use crate::rewrite::Registry;
use dashmap::DashMap;
use std::sync::{Arc, RwLock};

/// One version of the catalog with what the query path derives from it.
pub struct LivePolicy {
    /// The configuration it came from (users' permissions, impersonation rules).
    pub config: Arc<Config>,
    pub catalog: Catalog,
    /// Registered tables per database, built on first use.
    registries: DashMap<String, Arc<Registry>>,
}

impl LivePolicy {
    pub fn new(config: Arc<Config>, catalog: Catalog) -> Self {
        Self {
            config,
            catalog,
            registries: DashMap::new(),
        }
    }

    /// The registry of `database`'s registered tables.
    pub fn registry(&self, database: &str) -> Arc<Registry> {
        self.registries
            .entry(database.to_string())
            .or_insert_with(|| {
                Arc::new(Registry::from_catalog(
                    &self.catalog,
                    database,
                    &self.config.backend.database,
                ))
            })
            .clone()
    }
}

/// Shared by every session; cloning the current version is one read lock and a refcount.
pub struct PolicyHandle(RwLock<Arc<LivePolicy>>);

impl PolicyHandle {
    pub fn new(policy: LivePolicy) -> Self {
        Self(RwLock::new(Arc::new(policy)))
    }

    pub fn current(&self) -> Arc<LivePolicy> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, policy: LivePolicy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}
