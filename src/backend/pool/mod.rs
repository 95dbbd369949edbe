//! The query path's pool of raw backend connections, one per database a client asks for.
//!
//! Ours rather than bb8's because it chooses among idle connections: a connection carries the
//! identities placed on it and the client that used it last, and handing it to another
//! identity costs a complete reset, to another client a session replay (`idle::choose` has
//! the order). Invariants:
//! - At most `pool.size` connections open or being opened: a slot is reserved under the lock
//!   before a connection is opened outside it, and passed on or freed if that fails.
//! - A returned connection or a freed slot goes to the longest-waiting checkout before it is
//!   idled or freed, so waiters are served in arrival order and nobody waits while something
//!   is idle.
//! - Every connection and reserved slot lives in a guard (`Checkout`, `Slot`) whose drop gives
//!   it back, even from a channel to a waiter that gave up; the lock is never held across an
//!   await, a send or a guard's drop.
//! - Broken connections, and ones past `max_lifetime_s` when they come back, are closed; idle
//!   ones are checked when taken and reaped past their timeouts.
//! - A checkout waits at most `checkout_timeout_ms`, a connect included, and a connect that
//!   fails fails the checkout that asked for it at once: a cluster that is down fails
//!   statements now, not after the timeout.

mod backoff;
mod idle;
mod shared;

pub use idle::Affinity;
pub use shared::Checkout;

use super::{BackendError, BackendTarget};
use dashmap::DashMap;
use idle::{IdleInfo, Reuse};
use shared::{Grant, Limits, Next, Shared};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A pool for one database.
#[derive(Clone)]
pub struct BackendPool {
    shared: Arc<Shared>,
}

impl BackendPool {
    pub fn new(target: BackendTarget, settings: &crate::config::PoolConfig) -> Self {
        let nonzero = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let limits = Limits {
            size: settings.size,
            min_idle: settings.min_idle.min(settings.size),
            checkout_timeout: Duration::from_millis(settings.checkout_timeout_ms),
            idle_timeout: nonzero(settings.idle_timeout_s),
            max_lifetime: nonzero(settings.max_lifetime_s),
            rotate: settings.reuse == crate::config::PoolReuse::Rotate,
        };
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared::new(target, limits, stop.clone()));
        spawn_maintenance(&shared, stop);
        Self { shared }
    }

    /// How many connections it may hold.
    pub fn size(&self) -> usize {
        self.shared.limits.size as usize
    }

    /// Where its connections go (for a connection of the proxy's own, outside the pool).
    pub fn target(&self) -> &BackendTarget {
        &self.shared.target
    }

    /// A connection for one transaction (or session), chosen for `want` (see `idle::choose`).
    /// Its `last_client` becomes `want.client` when it comes back.
    pub async fn checkout(&self, want: Affinity<'_>) -> Result<Checkout, BackendError> {
        let mut checkout = self.checkout_inner(want).await?;
        checkout.client = Some(want.client);
        Ok(checkout)
    }

    async fn checkout_inner(&self, want: Affinity<'_>) -> Result<Checkout, BackendError> {
        let started = tokio::time::Instant::now();
        let result = self
            .acquire(want, started + self.shared.limits.checkout_timeout)
            .await;
        metrics::histogram!("redveil_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        let (checkout, reuse) = result?;
        metrics::counter!("redveil_pool_checkouts_total", "affinity" => reuse.label()).increment(1);
        Ok(checkout)
    }

    /// The choice, retried past dead idle connections, then the wait and the connect.
    async fn acquire(
        &self,
        want: Affinity<'_>,
        deadline: tokio::time::Instant,
    ) -> Result<(Checkout, Reuse), BackendError> {
        loop {
            let slot = match self.shared.next(want) {
                Next::Take(mut checkout, reuse) => {
                    if checkout.looks_alive().await {
                        return Ok((checkout, reuse));
                    }
                    // E.g. the cluster restarted, or an administrator ended the session.
                    tracing::debug!("discarded a dead pooled connection");
                    checkout.broken = true;
                    drop(checkout);
                    continue;
                }
                Next::Open(slot) => slot,
                Next::Wait(rx) => match self.wait(rx, deadline).await? {
                    None => continue,
                    Some(Grant::Slot(slot)) => slot,
                    Some(Grant::Conn(mut checkout)) => {
                        if checkout.looks_alive().await {
                            let reuse = IdleInfo::of(&checkout, want.user, 0).reuse(want.client);
                            return Ok((checkout, reuse));
                        }
                        tracing::debug!("discarded a dead pooled connection");
                        // Our turn came: keep the place and open a replacement in it.
                        checkout.into_slot()
                    }
                },
            };
            return Ok((self.open(slot, deadline).await?, Reuse::New));
        }
    }

    /// Opens a connection in `slot`, waiting for it until `deadline`. The connect runs as a
    /// task of its own: one that outlasts the wait still completes and joins the pool, so a
    /// login slower than the checkout timeout is not abandoned and retried forever.
    async fn open(
        &self,
        slot: shared::Slot,
        deadline: tokio::time::Instant,
    ) -> Result<Checkout, BackendError> {
        let pool = self.shared.clone();
        let mut connect = tokio::spawn(async move { shared::open(&pool, slot).await });
        match tokio::time::timeout_at(deadline, &mut connect).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(failed)) => Err(BackendError::Io(std::io::Error::other(failed))),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> BackendError {
        BackendError::PoolTimeout(self.shared.limits.checkout_timeout.as_millis() as u64)
    }

    /// Waits for a grant until `deadline`; `None` if the pool dropped the request unanswered.
    async fn wait(
        &self,
        mut rx: tokio::sync::oneshot::Receiver<Grant>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Grant>, BackendError> {
        match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(grant) => Ok(grant.ok()),
            Err(_) => {
                // A grant sent as the deadline passed is still ours.
                rx.close();
                rx.try_recv().map(Some).map_err(|_| self.timed_out())
            }
        }
    }

    /// The login ParameterStatus template, connecting once if no connection was made yet.
    pub async fn template(&self) -> Result<Vec<(String, String)>, BackendError> {
        if let Some(t) = self.shared.template.get() {
            return Ok(t.clone());
        }
        // Claimed by no client: its `last_client` stays as it was.
        drop(
            self.checkout_inner(Affinity {
                client: 0,
                user: "",
            })
            .await?,
        );
        Ok(self.shared.template.get().cloned().unwrap_or_default())
    }
}

/// Keeps `min_idle` connections open and reaps idle ones past their timeouts, when any of
/// those is configured. It holds the pool weakly (except during a round) and ends with it.
fn spawn_maintenance(shared: &Arc<Shared>, stop: CancellationToken) {
    let limits = &shared.limits;
    if limits.min_idle == 0 && limits.idle_timeout.is_none() && limits.max_lifetime.is_none() {
        return;
    }
    // Pools built outside a runtime (unit tests) reap lazily at checkout only.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let shortest = [limits.idle_timeout, limits.max_lifetime]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(30), |d| d / 2);
    let tick = shortest.clamp(Duration::from_secs(1), Duration::from_secs(30));
    let wake = shared.wake.clone();
    let pool = Arc::downgrade(shared);
    runtime.spawn(async move {
        loop {
            let Some(topped_up) = maintain(&pool).await else {
                return;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
                // After a failed connect, retry on the tick only, not on every checkout.
                _ = wake.notified(), if topped_up => {}
            }
        }
    });
}

/// One maintenance round: `None` once the pool is gone, else whether topping up succeeded.
async fn maintain(pool: &Weak<Shared>) -> Option<bool> {
    let shared = pool.upgrade()?;
    shared.reap();
    while let Some(slot) = shared.reserve_for_min_idle() {
        match shared::open(&shared, slot).await {
            // Dropping the checkout idles the connection (or hands it to a waiter).
            Ok(checkout) => drop(checkout),
            Err(_) => return Some(false),
        }
    }
    Some(true)
}

/// Pools by database name, created on first use. Clones share the pools.
#[derive(Clone)]
pub struct Pools {
    base: BackendTarget,
    settings: crate::config::PoolConfig,
    pools: Arc<DashMap<String, BackendPool>>,
}

impl Pools {
    pub fn new(base: BackendTarget, settings: crate::config::PoolConfig) -> Self {
        Self {
            base,
            settings,
            pools: Arc::new(DashMap::new()),
        }
    }

    pub fn get(&self, database: &str) -> BackendPool {
        if let Some(pool) = self.pools.get(database) {
            return pool.clone();
        }
        self.pools
            .entry(database.to_string())
            .or_insert_with(|| {
                let mut target = self.base.clone();
                target.database = database.to_string();
                BackendPool::new(target, &self.settings)
            })
            .clone()
    }

    /// Where cancel requests for this cluster go.
    pub fn target(&self) -> &BackendTarget {
        &self.base
    }

    /// Closes the idle connections to `database`, which a DROP DATABASE (or a RENAME, or a
    /// CREATE DATABASE copying it) would otherwise find in use: on a direct connection the
    /// sessions that used it are gone. PostgreSQL waits a few seconds for closed sessions to
    /// end, so the statement that follows succeeds.
    pub fn close_idle(&self, database: &str) {
        if let Some(pool) = self.pools.get(database) {
            pool.shared.close_idle();
        }
    }
}
