//! The proxy-named prepared statements that exist on one backend connection, bounded with
//! least-recently-used eviction.

use std::collections::HashMap;

/// Statement names prepared on one backend connection.
#[derive(Debug)]
pub struct PreparedSet {
    capacity: usize,
    tick: u64,
    names: HashMap<String, u64>,
}

impl PreparedSet {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            names: HashMap::new(),
        }
    }

    /// True when `name` is prepared; marks it recently used.
    pub fn touch(&mut self, name: &str) -> bool {
        self.tick += 1;
        match self.names.get_mut(name) {
            Some(used) => {
                *used = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records `name` as prepared; returns the evicted statement that must be closed.
    pub fn insert(&mut self, name: &str) -> Option<String> {
        self.tick += 1;
        self.names.insert(name.to_string(), self.tick);
        if self.names.len() <= self.capacity {
            return None;
        }
        let victim = self
            .names
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .min_by_key(|(_, used)| **used)
            .map(|(n, _)| n.clone())?;
        self.names.remove(&victim);
        Some(victim)
    }

    pub fn remove(&mut self, name: &str) {
        self.names.remove(name);
    }

    pub fn clear(&mut self) {
        self.names.clear();
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut set = PreparedSet::new(2);
        assert_eq!(set.insert("a"), None);
        assert_eq!(set.insert("b"), None);
        assert!(set.touch("a"));
        assert_eq!(set.insert("c"), Some("b".to_string()));
        assert!(set.touch("a") && set.touch("c") && !set.touch("b"));
    }
}
