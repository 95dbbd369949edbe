//! Connects to a cluster that just refused one wait a moment. Without this, every client
//! statement during an outage (or a restart's start-up) makes its own attempt: thousands a
//! second against a server that is trying to come up. Within the window after a failure,
//! further connects fail at once with that failure's SQLSTATE and words; the window doubles
//! per failure, from 50 ms up to 1 s, and closes at the first success, so recovery is at most
//! a second behind the cluster.

use crate::backend::BackendError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST_WINDOW: Duration = Duration::from_millis(50);
const LONGEST_WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct ConnectBackoff {
    last_failure: Mutex<Option<Failure>>,
}

struct Failure {
    until: Instant,
    window: Duration,
    code: &'static str,
    message: String,
}

impl ConnectBackoff {
    /// The error a connect gets without trying, inside a failure's window.
    pub fn refusal(&self, now: Instant) -> Option<BackendError> {
        let last = self.lock();
        let failure = last.as_ref().filter(|f| now < f.until)?;
        Some(BackendError::Unavailable {
            code: failure.code,
            message: failure.message.clone(),
        })
    }

    pub fn failed(&self, error: &BackendError, now: Instant) {
        let mut last = self.lock();
        let window = match last.as_ref() {
            Some(previous) => (previous.window * 2).min(LONGEST_WINDOW),
            None => FIRST_WINDOW,
        };
        let (code, message) = match error {
            BackendError::Unavailable { code, message } => (*code, message.clone()),
            other => (other.sqlstate(), other.to_string()),
        };
        *last = Some(Failure {
            until: now + window,
            window,
            code,
            message,
        });
    }

    pub fn succeeded(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.last_failure.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_open_a_growing_window_that_a_success_closes() {
        let backoff = ConnectBackoff::default();
        let t0 = Instant::now();
        assert!(backoff.refusal(t0).is_none());
        backoff.failed(&BackendError::Closed, t0);
        let refused = backoff
            .refusal(t0 + Duration::from_millis(10))
            .expect("in the window");
        assert_eq!(refused.sqlstate(), "08006");
        assert!(refused.to_string().contains("closed the connection"));
        assert!(backoff.refusal(t0 + FIRST_WINDOW).is_none());
        let t1 = t0 + FIRST_WINDOW;
        backoff.failed(&BackendError::Closed, t1);
        assert!(backoff.refusal(t1 + FIRST_WINDOW).is_some(), "doubled");
        for _ in 0..10 {
            backoff.failed(&BackendError::Closed, t1);
        }
        assert!(
            backoff.refusal(t1 + LONGEST_WINDOW).is_none(),
            "at most a second"
        );
        backoff.failed(
            &BackendError::Unavailable {
                code: "57P03",
                message: "the database system is starting up".into(),
            },
            t1,
        );
        assert_eq!(backoff.refusal(t1).map(|e| e.sqlstate()), Some("57P03"));
        backoff.succeeded();
        assert!(backoff.refusal(t1).is_none());
    }
}
