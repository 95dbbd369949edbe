//! Whom a session acts as. Changes behave like `set_config(..., false)` would: visible at once,
//! kept when the transaction commits, undone when it rolls back, and undone by a `ROLLBACK TO`
//! a savepoint made before them (kept, within the transaction, by its `RELEASE`).

use super::savepoints::Savepoints;
use crate::rewrite::TransactionCommand;
use std::collections::VecDeque;

#[derive(Debug, Default, Clone)]
pub struct Impersonation {
    committed: Option<String>,
    /// A change made in the current transaction (`Some(None)` = ended).
    pending: Option<Option<String>>,
    /// The savepoints of the current transaction block, each with the user in force (changes
    /// placed so far, not queued ones) when it was made.
    savepoints: Savepoints<Option<String>>,
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
        self.savepoints.clear();
        if let Some(pending) = self.pending.take() {
            self.committed = pending;
        }
    }

    pub fn rollback(&mut self) {
        self.savepoints.clear();
        self.pending = None;
    }

    /// A transaction command completed, in its place among the changes: everything before it
    /// is placed, everything after it still queued.
    pub fn transaction(&mut self, command: &TransactionCommand) {
        match command {
            TransactionCommand::Commit => self.commit(),
            TransactionCommand::Rollback => self.rollback(),
            TransactionCommand::Savepoint(name) => {
                let placed = match &self.pending {
                    Some(pending) => pending.clone(),
                    None => self.committed.clone(),
                };
                self.savepoints.push(name.clone(), placed);
            }
            TransactionCommand::RollbackTo(name) => {
                if let Some(saved) = self.savepoints.rollback_to(name) {
                    self.pending = Some(saved.clone());
                }
            }
            TransactionCommand::Release(name) => self.savepoints.release(name),
        }
    }

    /// What the state will be once every queued change has reached its place, none skipped,
    /// within the current transaction: to follow a multi-statement string's own savepoint
    /// and transaction commands ahead of the backend's replies.
    pub fn predicted(&self) -> Impersonation {
        let mut predicted = self.clone();
        while !predicted.queued.is_empty() {
            predicted.settle(false);
        }
        predicted
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

    fn user(name: &str) -> Option<String> {
        Some(name.to_string())
    }

    fn savepoint(i: &mut Impersonation, name: &str) {
        i.transaction(&TransactionCommand::Savepoint(name.into()));
    }

    fn rollback_to(i: &mut Impersonation, name: &str) {
        i.transaction(&TransactionCommand::RollbackTo(name.into()));
    }

    fn release(i: &mut Impersonation, name: &str) {
        i.transaction(&TransactionCommand::Release(name.into()));
    }

    #[test]
    fn rollback_to_restores_the_value_at_the_savepoint_which_stays() {
        let mut i = Impersonation::default();
        i.set(user("analyst"));
        savepoint(&mut i, "a");
        i.set(user("admin"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"));
        i.set(None);
        assert_eq!(i.current(), None);
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"), "a second rollback to a");
        i.commit();
        assert_eq!(i.current(), Some("analyst"));
        rollback_to(&mut i, "a");
        i.rollback();
        assert_eq!(
            i.current(),
            Some("analyst"),
            "the commit ended the savepoints"
        );
    }

    #[test]
    fn release_keeps_the_changes_within_the_transaction() {
        let mut i = Impersonation::default();
        savepoint(&mut i, "a");
        i.set(user("analyst"));
        savepoint(&mut i, "b");
        i.set(user("admin"));
        release(&mut i, "a");
        assert_eq!(i.current(), Some("admin"));
        rollback_to(&mut i, "b");
        assert_eq!(i.current(), Some("admin"), "b was released with a");
        i.rollback();
        assert_eq!(i.current(), None, "a whole rollback undoes them");
    }

    #[test]
    fn rollback_to_an_outer_savepoint_destroys_the_inner_ones() {
        let mut i = Impersonation::default();
        i.set(user("admin"));
        i.commit();
        savepoint(&mut i, "a");
        i.set(user("analyst"));
        savepoint(&mut i, "b");
        i.set(user("bi_service"));
        savepoint(&mut i, "c");
        i.set(None);
        rollback_to(&mut i, "b");
        assert_eq!(i.current(), Some("analyst"));
        rollback_to(&mut i, "c");
        assert_eq!(i.current(), Some("analyst"), "c is gone");
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("admin"));
        i.set(user("analyst"));
        rollback_to(&mut i, "b");
        assert_eq!(i.current(), Some("analyst"), "b is gone");
        i.commit();
        assert_eq!(i.current(), Some("analyst"));
    }

    #[test]
    fn a_reused_name_means_the_most_recent_savepoint() {
        let mut i = Impersonation::default();
        savepoint(&mut i, "a");
        i.set(user("analyst"));
        savepoint(&mut i, "a");
        i.set(user("admin"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"));
        release(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), None, "the first a");
    }

    #[test]
    fn chained_transactions_end_at_their_command() {
        let mut i = Impersonation::default();
        i.set(user("analyst"));
        i.transaction(&TransactionCommand::Commit);
        i.set(user("admin"));
        savepoint(&mut i, "a");
        i.transaction(&TransactionCommand::Rollback);
        assert_eq!(i.current(), Some("analyst"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"), "the rollback ended a");
    }

    #[test]
    fn savepoints_see_placed_changes_only() {
        let mut i = Impersonation::default();
        // Made before the savepoint, answered later: its reply releases it first.
        i.queue(user("analyst"));
        i.settle(false);
        savepoint(&mut i, "a");
        // Made after the savepoint but not placed yet when a rollback to it completes
        // (pipelined after the rollback): the rollback leaves it alone.
        i.queue(user("admin"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("admin"));
        i.settle(false);
        assert_eq!(i.current(), Some("admin"));
        rollback_to(&mut i, "a");
        assert_eq!(i.current(), Some("analyst"));
    }

    #[test]
    fn predicted_places_every_queued_change() {
        let mut i = Impersonation::default();
        savepoint(&mut i, "a");
        i.queue(user("analyst"));
        let mut predicted = i.predicted();
        savepoint(&mut predicted, "b");
        predicted.set(user("admin"));
        rollback_to(&mut predicted, "b");
        assert_eq!(predicted.current(), Some("analyst"));
        rollback_to(&mut predicted, "a");
        assert_eq!(predicted.current(), None);
        assert_eq!(
            i.current(),
            Some("analyst"),
            "the session itself is untouched"
        );
    }
}
