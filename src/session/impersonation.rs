//! Whom a session acts as. Changes behave like `set_config(..., false)` would: visible at once,
//! kept when the transaction commits, undone when it rolls back.

use std::collections::VecDeque;

#[derive(Debug, Default, Clone)]
pub struct Impersonation {
    committed: Option<String>,
    /// A change made in the current transaction (`Some(None)` = ended).
    pending: Option<Option<String>>,
    /// Changes the proxy answered whose replies still wait behind replies the backend owes:
    /// which transaction they belong to is known only when those have arrived (see `settle`).
    /// Ending transactions before then do not touch them.
    queued: VecDeque<Option<String>>,
    /// The first user this session impersonated (for `single_user_per_session`).
    first: Option<String>,
}

impl Impersonation {
    /// The impersonated user now, if any.
    pub fn current(&self) -> Option<&str> {
        match (self.queued.back(), &self.pending) {
            (Some(queued), _) => queued.as_deref(),
            (None, Some(pending)) => pending.as_deref(),
            (None, None) => self.committed.as_deref(),
        }
    }

    /// The user this session first impersonated, if it ever did.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    pub fn set(&mut self, user: Option<String>) {
        self.note_first(&user);
        self.pending = Some(user);
    }

    /// A change whose place in the transaction order is not known yet.
    pub fn queue(&mut self, user: Option<String>) {
        self.note_first(&user);
        self.queued.push_back(user);
    }

    fn note_first(&mut self, user: &Option<String>) {
        if self.first.is_none() {
            self.first.clone_from(user);
        }
    }

    /// The `count` oldest queued changes will never reach their place (skipped after an
    /// error, as PostgreSQL skips the rest of a failed extended-protocol batch).
    pub fn discard_queued(&mut self, count: usize) {
        self.queued.drain(..count.min(self.queued.len()));
    }

    /// The oldest queued change reached its place: it joins the current transaction, or is
    /// committed at once when `outside_transaction`.
    pub fn settle(&mut self, outside_transaction: bool) {
        if let Some(user) = self.queued.pop_front() {
            self.pending = Some(user);
            if outside_transaction {
                self.commit();
            }
        }
    }

    pub fn commit(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.committed = pending;
        }
    }

    pub fn rollback(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional() {
        let mut i = Impersonation::default();
        i.set(Some("analyst".into()));
        assert_eq!(i.current(), Some("analyst"));
        i.rollback();
        assert_eq!(i.current(), None);
        i.set(Some("admin".into()));
        i.commit();
        i.set(None);
        assert_eq!(i.current(), None);
        i.commit();
        assert_eq!((i.current(), i.first()), (None, Some("analyst")));
    }

    #[test]
    fn queued_changes_wait_for_their_place() {
        let mut i = Impersonation::default();
        i.queue(Some("admin".into()));
        assert_eq!(i.current(), Some("admin"));
        // An earlier transaction ends: the queued change is not its to keep or undo.
        i.rollback();
        i.commit();
        assert_eq!(i.current(), Some("admin"));
        i.settle(false);
        i.rollback();
        assert_eq!(i.current(), None);
        i.queue(Some("analyst".into()));
        i.queue(None);
        i.settle(true);
        assert_eq!(i.current(), None, "the later change is still queued");
        i.settle(true);
        assert_eq!(i.current(), None);
        i.rollback();
        assert_eq!(i.current(), None, "committed");
    }
}
