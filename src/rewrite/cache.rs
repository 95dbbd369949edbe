//! Rewrite results by statement text, search path and catalog version. BI tools send the same
//! few statements over and over; parsing each again would dominate the proxy's CPU time.

use super::{rewrite, Denial, Rewritten, Scope};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Texts longer than this are rewritten every time rather than held in memory.
const MAX_CACHED_TEXT: usize = 64 * 1024;

/// What a cached rewrite produced.
pub type Outcome = Arc<Result<Rewritten, Denial>>;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    sql: Box<str>,
    database: Box<str>,
    search_path: Vec<String>,
    catalog_version: u64,
    /// The same text reads differently when backslashes escape.
    lexing: crate::dialect::Lexing,
}

/// A bounded map shared by all connections; evicts the least recently used quarter when full.
pub struct RewriteCache {
    capacity: usize,
    tick: AtomicU64,
    entries: Mutex<HashMap<Key, (Outcome, u64)>>,
}

impl RewriteCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(4),
            tick: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The rewrite of `sql` in `scope`, from the cache when an equal key was seen.
    pub fn rewrite(&self, sql: &str, scope: Scope<'_>) -> Outcome {
        if sql.len() > MAX_CACHED_TEXT {
            metrics::counter!("redveil_rewrite_cache_total", "result" => "bypass").increment(1);
            return Arc::new(rewrite(sql, scope));
        }
        // Statements that need no parse are cheaper to check again than to look up, and
        // would fill the cache with one-off texts (literals inlined by simple-protocol clients).
        if !scope.registry.needs_parse(&sql.to_lowercase()) {
            metrics::counter!("redveil_rewrite_cache_total", "result" => "pass").increment(1);
            return Arc::new(rewrite(sql, scope));
        }
        let key = Key {
            sql: sql.into(),
            database: scope.database.into(),
            search_path: scope.search_path.to_vec(),
            catalog_version: scope.registry.version(),
            lexing: scope.lexing,
        };
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Some((outcome, used)) = self.lock().get_mut(&key) {
            *used = now;
            metrics::counter!("redveil_rewrite_cache_total", "result" => "hit").increment(1);
            return outcome.clone();
        }
        metrics::counter!("redveil_rewrite_cache_total", "result" => "miss").increment(1);
        // Parsed outside the lock: other connections keep hitting the cache meanwhile.
        let outcome: Outcome = Arc::new(rewrite(sql, scope));
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            evict_oldest_quarter(&mut entries);
        }
        entries.insert(key, (outcome.clone(), now));
        outcome
    }

    /// Drops every entry (a catalog change also changes the version, so this only frees
    /// memory sooner).
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Outcome, u64)>> {
        // A panic while holding the lock cannot leave the map inconsistent for readers.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn evict_oldest_quarter(entries: &mut HashMap<Key, (Outcome, u64)>) {
    let mut ages: Vec<u64> = entries.values().map(|(_, used)| *used).collect();
    let cut = ages.len() / 4;
    let (_, threshold, _) = ages.select_nth_unstable(cut);
    let threshold = *threshold;
    entries.retain(|_, (_, used)| *used > threshold);
}

/// Registries are compared by version in cache keys; every new registry gets a fresh one.
pub(super) fn next_catalog_version() -> u64 {
    static VERSION: AtomicU64 = AtomicU64::new(1);
    VERSION.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::{QualifiedName, Registered, Registry};

    fn registry() -> Registry {
        Registry::new(
            "immuta",
            [(
                QualifiedName::new("hr", "employees"),
                Registered {
                    data_source: "hr.employees".into(),
                    view: QualifiedName::new("immuta", "hr_employees"),
                    prepared_view: QualifiedName::new("immuta", "hr_employees"),
                    writable: false,
                },
            )],
        )
    }

    #[test]
    fn hits_depend_on_text_path_and_catalog() {
        let cache = RewriteCache::new(16);
        let (old, new) = (registry(), registry());
        let hr = vec!["hr".to_string()];
        let scope = |registry, search_path| Scope {
            registry,
            database: "demo",
            search_path,
            backend_role: "redveil_query",
            dialect: crate::dialect::Dialect::Postgres,
            lexing: crate::dialect::Lexing::Standard,
        };
        let first = cache.rewrite("SELECT * FROM employees", scope(&old, &hr));
        let again = cache.rewrite("SELECT * FROM employees", scope(&old, &hr));
        assert!(Arc::ptr_eq(&first, &again));
        let other_path = cache.rewrite("SELECT * FROM employees", scope(&old, &[]));
        assert_eq!(other_path.as_ref().as_ref().unwrap().sql, None);
        let new_catalog = cache.rewrite("SELECT * FROM employees", scope(&new, &hr));
        assert!(!Arc::ptr_eq(&first, &new_catalog));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn stays_bounded() {
        let cache = RewriteCache::new(8);
        let registry = registry();
        let scope = Scope {
            registry: &registry,
            database: "demo",
            search_path: &[],
            backend_role: "redveil_query",
            dialect: crate::dialect::Dialect::Postgres,
            lexing: crate::dialect::Lexing::Standard,
        };
        for i in 0..100 {
            cache.rewrite(&format!("SELECT {i}"), scope);
        }
        assert!(cache.len() <= 8);
    }
}
