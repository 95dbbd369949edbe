//! The proxy-named prepared statements that exist on one backend connection, bounded with
//! least-recently-used eviction, each with the shape it was prepared with there.
//!
//! A name may also be known to exist in a version the proxy no longer vouches for (its Parse
//! or Close was skipped after an error, or PostgreSQL reported that its plan went stale): it
//! is not used, still counts against the bound, and is closed before it is prepared again.

use crate::session::ShapeCell;
use std::collections::HashMap;

/// Statement names prepared on one backend connection.
#[derive(Debug)]
pub struct PreparedSet {
    capacity: usize,
    tick: u64,
    names: HashMap<String, Entry>,
    /// A client's DISCARD ALL or DEALLOCATE ALL was sent: the set was emptied, but if the
    /// command failed the statements still exist, so every Parse is preceded by a Close.
    all_doubtful: bool,
}

#[derive(Debug)]
struct Entry {
    used: u64,
    /// The preparation there; `None` when the name may exist in an unknown version.
    shape: Option<ShapeCell>,
}

/// What to send for a new preparation of a name.
#[derive(Debug, PartialEq, Eq)]
pub struct Preparation {
    /// The name may exist already: Close it first.
    pub close_first: bool,
    /// The least recently used statements, to be closed to stay within the bound.
    pub evicted: Vec<String>,
}

impl PreparedSet {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            names: HashMap::new(),
            all_doubtful: false,
        }
    }

    /// The preparation of `name` here, if it is prepared in a known version; marks it
    /// recently used.
    pub fn get(&mut self, name: &str) -> Option<ShapeCell> {
        self.tick += 1;
        let entry = self.names.get_mut(name)?;
        entry.used = self.tick;
        entry.shape.clone()
    }

    /// True when `name` is prepared in a known version; marks it recently used.
    pub fn touch(&mut self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Records a new preparation of `name`, sent now.
    pub fn prepare(&mut self, name: &str, shape: ShapeCell) -> Preparation {
        self.tick += 1;
        let replaced = self.names.insert(
            name.to_string(),
            Entry {
                used: self.tick,
                shape: Some(shape),
            },
        );
        Preparation {
            close_first: self.all_doubtful || replaced.is_some(),
            evicted: self.evict(name),
        }
    }

    fn evict(&mut self, keep: &str) -> Vec<String> {
        let mut victims = Vec::new();
        while self.names.len() > self.capacity {
            let Some(victim) = self
                .names
                .iter()
                .filter(|(n, _)| n.as_str() != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(n, _)| n.clone())
            else {
                break;
            };
            self.names.remove(&victim);
            victims.push(victim);
        }
        victims
    }

    /// `name` may exist in a version the proxy does not know (a Parse or Close of it never
    /// ran, or its plan went stale): not used again until prepared anew, closed first. It
    /// counts against the bound from the next preparation on (nothing can be sent now: the
    /// backend is skipping to the client's Sync).
    pub fn doubt(&mut self, name: &str) {
        self.tick += 1;
        self.names
            .entry(name.to_string())
            .and_modify(|e| e.shape = None)
            .or_insert(Entry {
                used: self.tick,
                shape: None,
            });
    }

    /// Every statement here may have gone stale.
    pub fn doubt_all(&mut self) {
        for entry in self.names.values_mut() {
            entry.shape = None;
        }
    }

    /// A client's DISCARD ALL or DEALLOCATE ALL was sent, which may fail (see `all_doubtful`).
    pub fn forget_all(&mut self) {
        self.names.clear();
        self.all_doubtful = true;
    }

    /// None of the proxy's statements exist here any more (a confirmed reset).
    pub fn clear(&mut self) {
        self.names.clear();
        self.all_doubtful = false;
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

    fn prepare(set: &mut PreparedSet, name: &str) -> Preparation {
        set.prepare(name, ShapeCell::default())
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut set = PreparedSet::new(2);
        assert!(prepare(&mut set, "a").evicted.is_empty());
        assert!(prepare(&mut set, "b").evicted.is_empty());
        assert!(set.touch("a"));
        assert_eq!(prepare(&mut set, "c").evicted, ["b"]);
        assert!(set.touch("a") && set.touch("c") && !set.touch("b"));
    }

    #[test]
    fn preparing_again_closes_the_old_version_first() {
        let mut set = PreparedSet::new(4);
        let first = ShapeCell::default();
        assert!(!set.prepare("a", first.clone()).close_first);
        let second = ShapeCell::default();
        assert!(set.prepare("a", second.clone()).close_first);
        assert!(set.get("a").unwrap().is(&second));
        assert!(!set.get("a").unwrap().is(&first));
    }

    #[test]
    fn doubtful_names_are_not_used_and_are_closed_before_their_next_parse() {
        let mut set = PreparedSet::new(2);
        prepare(&mut set, "a");
        set.doubt("a");
        assert!(!set.touch("a"));
        assert!(prepare(&mut set, "a").close_first);
        assert!(set.touch("a"));
        // A name the set had forgotten (its Close never ran) counts against the bound.
        prepare(&mut set, "b");
        set.doubt("gone");
        assert_eq!(
            set.prepare("gone", ShapeCell::default()),
            Preparation {
                close_first: true,
                evicted: vec!["a".into()]
            }
        );
        set.doubt_all();
        assert!(!set.touch("b") && !set.touch("gone"));
        set.forget_all();
        assert!(set.is_empty());
        assert!(prepare(&mut set, "c").close_first, "after DISCARD ALL");
        set.clear();
        assert!(
            !prepare(&mut set, "c").close_first,
            "after a confirmed reset"
        );
    }
}
