//! Whom a session acts as. Changes behave like `set_config(..., false)` would: visible at once,
//! kept when the transaction commits, undone when it rolls back.

#[derive(Debug, Default, Clone)]
pub struct Impersonation {
    committed: Option<String>,
    /// A change made in the current transaction (`Some(None)` = ended).
    pending: Option<Option<String>>,
    /// The first user this session impersonated (for `single_user_per_session`).
    first: Option<String>,
}

impl Impersonation {
    /// The impersonated user now, if any.
    pub fn current(&self) -> Option<&str> {
        match &self.pending {
            Some(pending) => pending.as_deref(),
            None => self.committed.as_deref(),
        }
    }

    /// The user this session first impersonated, if it ever did.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    pub fn set(&mut self, user: Option<String>) {
        if self.first.is_none() {
            self.first.clone_from(&user);
        }
        self.pending = Some(user);
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
}
