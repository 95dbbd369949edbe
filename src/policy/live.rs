//! The catalog in force, swappable while sessions run: a reload syncs the cluster first, then
//! replaces it, and every session reads it again at its next statement.

use super::classes::Entitlement;
use super::{Catalog, Tokens};
use crate::config::Config;
use crate::rewrite::Registry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// One version of the catalog with what the query path derives from it.
pub struct LivePolicy {
    /// The configuration it came from (users' permissions, impersonation rules).
    pub config: Arc<Config>,
    pub catalog: Catalog,
    /// Tells this version from every other, so a pin made under another is made again.
    pub generation: u64,
    /// The identity tokens sync stored for this version.
    pub tokens: Arc<Tokens>,
    /// Per effective user: its class views, pin and registries, built on first use.
    users: DashMap<String, Arc<UserPolicy>>,
    /// Registries by (database, entitlement signature): users of the same classes share one,
    /// and so share rewrites.
    shared: DashMap<(String, String), Arc<Registry>>,
}

/// What the query path needs about one effective user, looked up once per statement.
pub struct UserPolicy {
    pub entitlement: Entitlement,
    registries: DashMap<String, Arc<Registry>>,
}

impl LivePolicy {
    /// `tokens` as sync stored them (users without one read nothing: fail closed).
    pub fn new(config: Arc<Config>, catalog: Catalog, tokens: Arc<Tokens>) -> Self {
        Self {
            config,
            catalog,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            tokens,
            users: DashMap::new(),
            shared: DashMap::new(),
        }
    }

    /// What `user` reads and what the proxy pins for it.
    pub fn user(&self, user: &str) -> Arc<UserPolicy> {
        if let Some(found) = self.users.get(user) {
            return found.clone();
        }
        self.users
            .entry(user.to_string())
            .or_insert_with(|| {
                Arc::new(UserPolicy {
                    entitlement: Entitlement::of(&self.catalog, &self.tokens, user),
                    registries: DashMap::new(),
                })
            })
            .clone()
    }

    /// The registry of `database`'s registered tables as `user` reads them: each mapped to
    /// the user's class view.
    pub fn registry(&self, database: &str, user: &str) -> Arc<Registry> {
        let user = self.user(user);
        if let Some(found) = user.registries.get(database) {
            return found.clone();
        }
        let key = (database.to_string(), user.entitlement.signature());
        let registry = self
            .shared
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Registry::from_catalog(
                    &self.catalog,
                    database,
                    &self.config.backend.database,
                    &user.entitlement.views,
                ))
            })
            .clone();
        user.registries
            .insert(database.to_string(), registry.clone());
        registry
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
