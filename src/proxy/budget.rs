//! One memory budget for every client message the proxy must hold whole (a Query or Parse
//! is parsed, so it cannot stream). Small messages are not counted: their buffers are bounded
//! per connection. A large one is admitted only if it fits what is left of the budget;
//! otherwise it is dropped as it arrives and its client gets 53200, so many large messages
//! at once cannot grow the process without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

/// Bytes held against the budget until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// `bytes` of the budget, if that much is left.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .ok()?;
        metrics::gauge!("redveil_buffered_bytes").increment(bytes as f64);
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        metrics::gauge!("redveil_buffered_bytes").decrement(self.bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_return_to_it() {
        let budget = MemoryBudget::new(300);
        let a = budget.try_reserve(150).expect("fits");
        let b = budget.try_reserve(150).expect("fits");
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert!(budget.try_reserve(151).is_none());
        let c = budget.try_reserve(150).expect("fits again");
        drop((b, c));
        assert!(budget.try_reserve(300).is_some());
        assert!(budget.try_reserve(usize::MAX).is_none());
    }
}
