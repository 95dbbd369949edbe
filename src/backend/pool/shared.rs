//! The pool's state behind one std mutex, and the guards that give connections and slots
//! back. Nothing is dropped, sent or awaited while the lock is held: dropping a guard locks.

use super::idle::{choose, Choice, IdleInfo, Reuse};
use super::Affinity;
use crate::backend::{BackendConn, BackendError, BackendTarget};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::{CancellationToken, DropGuard};

/// `pool.*` settings, with 0 meaning "never" turned into `None`.
pub(super) struct Limits {
    pub size: u32,
    pub min_idle: u32,
    pub checkout_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    /// `pool.reuse = "rotate"`.
    pub rotate: bool,
}

impl Limits {
    fn too_old(&self, conn: &BackendConn, now: Instant) -> bool {
        self.max_lifetime
            .is_some_and(|limit| now.duration_since(conn.created) >= limit)
    }
}

pub(super) struct Shared {
    pub target: BackendTarget,
    pub limits: Limits,
    /// ParameterStatus values of the first successful login, the template for what clients
    /// are told at startup (in transaction mode no one backend connection owns the session).
    pub template: OnceLock<Vec<(String, String)>>,
    state: Mutex<State>,
    /// Keeps connects from hammering a cluster that just refused one.
    backoff: super::backoff::ConnectBackoff,
    /// Wakes the maintenance task when the idle count may have dropped below `min_idle`.
    pub wake: Arc<Notify>,
    /// Stops the maintenance task when the pool goes.
    _stop: DropGuard,
}

struct State {
    idle: Vec<Idle>,
    /// Connections logged in: idle or checked out.
    open: u32,
    /// Slots reserved for connections being opened.
    connecting: u32,
    /// Checkouts waiting, oldest first.
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// Counts returns, to order idle connections by when they came back.
    returns: u64,
}

struct Idle {
    conn: BackendConn,
    since: Instant,
    order: u64,
}

/// What a waiting checkout is handed: a connection, or a reserved slot to open one in.
// Moved a few times per checkout; boxing would add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Grant {
    Conn(Checkout),
    Slot(Slot),
}

/// What one look at the state decided.
#[allow(clippy::large_enum_variant)] // as `Grant`
pub(super) enum Next {
    Take(Checkout, Reuse),
    Open(Slot),
    Wait(oneshot::Receiver<Grant>),
}

impl Shared {
    pub fn new(target: BackendTarget, limits: Limits, stop: CancellationToken) -> Self {
        Shared {
            target,
            limits,
            template: OnceLock::new(),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                connecting: 0,
                waiters: VecDeque::new(),
                returns: 0,
            }),
            backoff: Default::default(),
            wake: Arc::new(Notify::new()),
            _stop: stop.drop_guard(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state's updates cannot panic half-way, so a poisoned lock holds a sound state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reaps expired idle connections, then takes an idle one, reserves a slot, or queues.
    pub fn next(self: &Arc<Self>, want: Affinity<'_>) -> Next {
        let now = Instant::now();
        let mut state = self.lock();
        let expired = state.reap(&self.limits, now);
        let idle: Vec<IdleInfo> = state
            .idle
            .iter()
            .map(|i| IdleInfo::of(&i.conn, want.user, i.order))
            .collect();
        let room = state.open + state.connecting < self.limits.size;
        let next = match choose(&idle, want.client, room, self.limits.rotate) {
            Choice::Take(i, reuse) => {
                let conn = state.idle.swap_remove(i).conn;
                Next::Take(Checkout::new(self.clone(), conn), reuse)
            }
            Choice::Open => {
                state.connecting += 1;
                Next::Open(Slot::new(self.clone()))
            }
            Choice::Wait => {
                let (tx, rx) = oneshot::channel();
                state.waiters.retain(|w| !w.is_closed());
                state.waiters.push_back(tx);
                Next::Wait(rx)
            }
        };
        drop(state);
        drop(expired);
        if matches!(next, Next::Take(..)) {
            self.nudge();
        }
        next
    }

    /// Reserves a slot for a connection that tops the idle count up to `min_idle`.
    pub fn reserve_for_min_idle(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        let short = (state.idle.len() as u32) + state.connecting < self.limits.min_idle;
        if !short || state.open + state.connecting >= self.limits.size {
            return None;
        }
        state.connecting += 1;
        Some(Slot::new(self.clone()))
    }

    /// Closes idle connections past their timeouts (the maintenance task's round).
    pub fn reap(&self) {
        let expired = self.lock().reap(&self.limits, Instant::now());
        drop(expired);
    }

    /// Closes every idle connection (each leaves a free place).
    pub fn close_idle(&self) {
        let closed: Vec<BackendConn> = {
            let mut state = self.lock();
            let closed: Vec<BackendConn> = state.idle.drain(..).map(|idle| idle.conn).collect();
            state.open -= closed.len() as u32;
            closed
        };
        drop(closed);
    }

    /// A checked-out connection came back.
    fn give_back(self: &Arc<Self>, conn: BackendConn) {
        if conn.broken || self.limits.too_old(&conn, Instant::now()) {
            self.close(conn);
        } else {
            self.hand_off(Grant::Conn(Checkout::new(self.clone(), conn)));
        }
    }

    /// Closes a connection; its place goes to the first waiter as a slot.
    fn close(self: &Arc<Self>, conn: BackendConn) {
        drop(conn);
        {
            let mut state = self.lock();
            state.open -= 1;
            state.connecting += 1;
        }
        self.hand_off(Grant::Slot(Slot::new(self.clone())));
        self.nudge();
    }

    /// Gives `grant` to the longest-waiting checkout still waiting, else keeps it. The send
    /// happens outside the lock: a grant sent back (the waiter gave up) is tried on the next.
    fn hand_off(self: &Arc<Self>, mut grant: Grant) {
        loop {
            let waiter = {
                let mut state = self.lock();
                match state.waiters.pop_front() {
                    Some(waiter) => waiter,
                    None => return state.keep(grant),
                }
            };
            match waiter.send(grant) {
                Ok(()) => return,
                Err(back) => grant = back,
            }
        }
    }

    /// Wakes the maintenance task if it keeps a minimum of idle connections.
    fn nudge(&self) {
        if self.limits.min_idle > 0 {
            self.wake.notify_one();
        }
    }
}

impl State {
    /// Removes idle connections past `max_lifetime`, and past `idle_timeout` while more than
    /// `min_idle` are idle (closing them only to open others would churn). Returned so they
    /// are closed after the lock is released. Nobody waits while anything is idle, so the
    /// room this frees needs no hand-off.
    fn reap(&mut self, limits: &Limits, now: Instant) -> Vec<BackendConn> {
        let mut expired = Vec::new();
        let mut i = 0;
        while i < self.idle.len() {
            let entry = &self.idle[i];
            let idle_too_long = limits
                .idle_timeout
                .is_some_and(|limit| now.duration_since(entry.since) >= limit)
                && self.idle.len() > limits.min_idle as usize;
            if idle_too_long || limits.too_old(&entry.conn, now) {
                expired.push(self.idle.swap_remove(i).conn);
                self.open -= 1;
            } else {
                i += 1;
            }
        }
        expired
    }

    /// Keeps a grant nobody waits for: the connection idles, the slot frees. The disarmed
    /// guard's drop does nothing, so it may drop under the lock.
    fn keep(&mut self, grant: Grant) {
        match grant {
            Grant::Conn(mut checkout) => {
                if let Some(conn) = checkout.conn.take() {
                    self.returns += 1;
                    self.idle.push(Idle {
                        conn,
                        since: Instant::now(),
                        order: self.returns,
                    });
                }
            }
            Grant::Slot(mut slot) => {
                slot.armed = false;
                self.connecting -= 1;
            }
        }
    }
}

/// A reserved place for a connection being opened; dropped unused (the connect failed or
/// was cancelled), it passes to the first waiter or frees.
pub(super) struct Slot {
    pool: Arc<Shared>,
    armed: bool,
}

impl Slot {
    fn new(pool: Arc<Shared>) -> Self {
        Slot { pool, armed: true }
    }

    /// The slot's connection is open.
    pub fn fill(mut self, conn: BackendConn) -> Checkout {
        {
            let mut state = self.pool.lock();
            state.connecting -= 1;
            state.open += 1;
        }
        self.armed = false;
        Checkout::new(self.pool.clone(), conn)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let pool = self.pool.clone();
            pool.hand_off(Grant::Slot(Slot::new(pool.clone())));
        }
    }
}

/// A checked-out connection. Dropping it returns the connection to the pool (to the first
/// waiter, else the idle list), or closes it if it is broken or past `max_lifetime_s`.
pub struct Checkout {
    conn: Option<BackendConn>,
    pool: Arc<Shared>,
    /// Recorded as the connection's `last_client` when it comes back.
    pub(super) client: Option<u64>,
}

impl Checkout {
    fn new(pool: Arc<Shared>, conn: BackendConn) -> Self {
        Checkout {
            conn: Some(conn),
            pool,
            client: None,
        }
    }

    /// Closes a connection found dead and keeps its place, to open a replacement in.
    pub(super) fn into_slot(mut self) -> Slot {
        drop(self.conn.take());
        {
            let mut state = self.pool.lock();
            state.open -= 1;
            state.connecting += 1;
        }
        self.pool.nudge();
        Slot::new(self.pool.clone())
    }
}

impl std::ops::Deref for Checkout {
    type Target = BackendConn;

    fn deref(&self) -> &BackendConn {
        self.conn
            .as_ref()
            .expect("a checkout holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut BackendConn {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until dropped")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if let Some(client) = self.client {
                conn.last_client = Some(client);
            }
            self.pool.give_back(conn);
        }
    }
}

/// Opens a connection in `slot`; a failure frees the slot (to the first waiter).
pub(super) async fn open(pool: &Shared, slot: Slot) -> Result<Checkout, BackendError> {
    if let Some(refusal) = pool.backoff.refusal(Instant::now()) {
        return Err(refusal);
    }
    match BackendConn::connect(&pool.target).await {
        Ok(conn) => {
            pool.backoff.succeeded();
            let _ = pool.template.set(conn.params.clone());
            metrics::counter!("redveil_backend_connections_opened_total").increment(1);
            Ok(slot.fill(conn))
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot open a backend connection");
            pool.backoff.failed(&error, Instant::now());
            Err(error)
        }
    }
}
