//! The bb8 pool of raw backend connections, one per database a client asks for.

use super::{BackendConn, BackendError, BackendTarget};
use dashmap::DashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// bb8 manager for raw backend connections.
pub struct Manager {
    target: BackendTarget,
    /// ParameterStatus values of the first successful login, the template for what clients
    /// are told at startup (in transaction mode no one backend connection owns the session).
    template: Arc<OnceLock<Vec<(String, String)>>>,
}

impl bb8::ManageConnection for Manager {
    type Connection = BackendConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<BackendConn, BackendError> {
        let conn = BackendConn::connect(&self.target).await?;
        let _ = self.template.set(conn.params.clone());
        metrics::counter!("redveil_backend_connections_opened_total").increment(1);
        Ok(conn)
    }

    async fn is_valid(&self, conn: &mut BackendConn) -> Result<(), BackendError> {
        if conn.looks_alive().await {
            Ok(())
        } else {
            Err(BackendError::Closed)
        }
    }

    fn has_broken(&self, conn: &mut BackendConn) -> bool {
        conn.broken
    }
}

/// Where bb8 reports the errors of its background connects (it never hands them to a waiting
/// `get`): logged, and connect failures published so waiting clients fail at once.
#[derive(Debug, Clone)]
struct ConnectErrors(Arc<tokio::sync::watch::Sender<Option<Arc<String>>>>);

impl bb8::ErrorSink<BackendError> for ConnectErrors {
    fn sink(&self, error: BackendError) {
        match error {
            // A pooled connection found dead at checkout (e.g. after a cluster restart); bb8
            // replaces it.
            BackendError::Closed => tracing::debug!("discarded a dead pooled connection"),
            error => {
                tracing::warn!(error = %error, "cannot open a backend connection");
                self.0.send_replace(Some(Arc::new(error.to_string())));
            }
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<BackendError>> {
        Box::new(self.clone())
    }
}

/// A pool for one database.
#[derive(Clone)]
pub struct BackendPool {
    pool: bb8::Pool<Manager>,
    template: Arc<OnceLock<Vec<(String, String)>>>,
    checkout_timeout: Duration,
    connect_errors: ConnectErrors,
}

/// A checked-out connection; dropping it returns it to the pool (or discards it if broken).
pub type Checkout = bb8::PooledConnection<'static, Manager>;

impl BackendPool {
    pub fn new(target: BackendTarget, settings: &crate::config::PoolConfig) -> Self {
        let template = Arc::new(OnceLock::new());
        let manager = Manager {
            target,
            template: template.clone(),
        };
        let nonzero = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let checkout_timeout = Duration::from_millis(settings.checkout_timeout_ms);
        let connect_errors = ConnectErrors(Arc::new(tokio::sync::watch::channel(None).0));
        let pool = bb8::Pool::builder()
            .max_size(settings.size)
            .min_idle(Some(settings.min_idle).filter(|&n| n > 0))
            .idle_timeout(nonzero(settings.idle_timeout_s))
            .max_lifetime(nonzero(settings.max_lifetime_s))
            .connection_timeout(checkout_timeout)
            .test_on_check_out(true)
            // A cluster that is down should fail statements now, not after the checkout
            // timeout: connect errors reach the waiting client at once (see `checkout`).
            .retry_connection(false)
            .error_sink(Box::new(connect_errors.clone()))
            .build_unchecked(manager);
        Self {
            pool,
            template,
            checkout_timeout,
            connect_errors,
        }
    }

    /// A connection for one transaction (or session).
    pub async fn checkout(&self) -> Result<Checkout, BackendError> {
        let started = std::time::Instant::now();
        let mut connect_failed = self.connect_errors.0.subscribe();
        connect_failed.mark_unchanged();
        let result = tokio::select! {
            biased;
            got = self.pool.get_owned() => got.map_err(|e| match e {
                bb8::RunError::User(e) => e,
                bb8::RunError::TimedOut => {
                    BackendError::PoolTimeout(self.checkout_timeout.as_millis() as u64)
                }
            }),
            // bb8 keeps a waiter waiting when its connect fails; fail now instead.
            Ok(()) = connect_failed.changed() => {
                let error = connect_failed.borrow().clone().unwrap_or_default();
                Err(BackendError::Unreachable(error.to_string()))
            }
        };
        metrics::histogram!("redveil_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    /// The login ParameterStatus template, connecting once if no connection was made yet.
    pub async fn template(&self) -> Result<Vec<(String, String)>, BackendError> {
        if let Some(t) = self.template.get() {
            return Ok(t.clone());
        }
        drop(self.checkout().await?);
        Ok(self.template.get().cloned().unwrap_or_default())
    }

    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }
}

/// Pools by database name, created on first use.
pub struct Pools {
    base: BackendTarget,
    settings: crate::config::PoolConfig,
    pools: DashMap<String, BackendPool>,
}

impl Pools {
    pub fn new(base: BackendTarget, settings: crate::config::PoolConfig) -> Self {
        Self {
            base,
            settings,
            pools: DashMap::new(),
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
}
