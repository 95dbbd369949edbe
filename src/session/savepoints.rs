//! The savepoints of a transaction block, as PostgreSQL keeps them: a stack of names, each with
//! what a `ROLLBACK TO` it restores. Names may repeat; `ROLLBACK TO` and `RELEASE` take the most
//! recent savepoint of the name. A failed savepoint command never reaches here (it has no
//! CommandComplete), so an unknown name changes nothing.

#[derive(Debug, Clone)]
pub struct Savepoints<T> {
    /// Oldest first.
    stack: Vec<(String, T)>,
}

impl<T> Default for Savepoints<T> {
    fn default() -> Self {
        Self { stack: Vec::new() }
    }
}

impl<T> Savepoints<T> {
    /// `SAVEPOINT name`, `saved` being what a rollback to it restores.
    pub fn push(&mut self, name: String, saved: T) {
        self.stack.push((name, saved));
    }

    /// `ROLLBACK TO name`: the savepoints made after it are destroyed, it stays (a second
    /// rollback to it is valid). Returns what it restores.
    pub fn rollback_to(&mut self, name: &str) -> Option<&T> {
        let at = self.position(name)?;
        self.stack.truncate(at + 1);
        self.stack.last().map(|(_, saved)| saved)
    }

    /// `RELEASE name`: it and every savepoint made after it are destroyed; the changes made
    /// since belong to the enclosing level.
    pub fn release(&mut self, name: &str) {
        if let Some(at) = self.position(name) {
            self.stack.truncate(at);
        }
    }

    /// The transaction block ended.
    pub fn clear(&mut self) {
        self.stack.clear();
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.stack.iter().rposition(|(n, _)| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_to_keeps_the_savepoint_and_release_drops_it() {
        let mut s = Savepoints::default();
        s.push("a".to_string(), 1);
        s.push("b".to_string(), 2);
        s.push("c".to_string(), 3);
        assert_eq!(s.rollback_to("b"), Some(&2));
        assert_eq!(s.rollback_to("c"), None, "destroyed by the rollback to b");
        assert_eq!(s.rollback_to("b"), Some(&2), "b itself stays");
        s.release("a");
        assert_eq!(s.rollback_to("b"), None, "released with a");
        assert_eq!(s.rollback_to("a"), None);
    }

    #[test]
    fn a_reused_name_means_the_most_recent() {
        let mut s = Savepoints::default();
        s.push("a".to_string(), 1);
        s.push("a".to_string(), 2);
        assert_eq!(s.rollback_to("a"), Some(&2));
        s.release("a");
        assert_eq!(s.rollback_to("a"), Some(&1), "the older one is found again");
        s.release("x");
        assert_eq!(
            s.rollback_to("a"),
            Some(&1),
            "an unknown name changes nothing"
        );
        s.clear();
        assert_eq!(s.rollback_to("a"), None);
    }
}
