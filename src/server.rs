//! Wires the proxy together: shared state, the accept loop with its connection limit, and
//! phased shutdown (stop accepting, let transactions finish, then end sessions with 57P01).

use crate::audit::AuditLog;
use crate::backend::{BackendTarget, Pools};
use crate::config::{BackendTlsMode, Config, TlsMode};
use crate::frontend::cancel::CancelRegistry;
use crate::frontend::login::FailureTracker;
use crate::policy::{Catalog, LivePolicy, PolicyHandle, SyncReport, TokenSync, Tokens};
use crate::rewrite::RewriteCache;
use crate::tls::{self, ServerTls};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// State every connection task shares; read-only apart from the concurrent maps inside.
pub struct Shared {
    pub config: Arc<Config>,
    /// The engine behind the proxy (see `backend.dialect`).
    pub engine: crate::backend::EngineCell,
    pub tls: Option<ServerTls>,
    pub pools: Pools,
    pub cancels: Arc<CancelRegistry>,
    pub failures: FailureTracker,
    pub audit: AuditLog,
    /// The catalog in force (replaced by a reload).
    pub policy: Arc<PolicyHandle>,
    pub rewrites: Arc<RewriteCache>,
    /// The system role's pools, for impersonation tokens.
    pub control: Arc<crate::policy::control::ControlPools>,
    /// For client messages held whole (see `proxy::budget`).
    pub memory: Arc<crate::proxy::budget::MemoryBudget>,
    /// The cluster's answers on clients' startup settings.
    pub settings_probe: crate::backend::SettingsProbe,
    /// Stop accepting; sessions close once their transaction ends.
    pub shutdown: CancellationToken,
    /// End every session now.
    pub hard_stop: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Dialect(#[from] crate::dialect::DialectMismatch),
    #[error("cannot tell which engine the cluster is: {0}")]
    Engine(#[from] crate::backend::EngineError),
    #[error("policy sync at start: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("cannot open the audit log {}: {source}", path.display())]
    Audit {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Distinct statement texts whose rewrite is remembered, across all clients.
const REWRITE_CACHE_ENTRIES: usize = 8192;

/// A bound, not yet serving proxy.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Loads certificates, syncs the policy catalog (when it has data sources) and binds the
    /// listener (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let tls = match (config.tls.mode, &config.tls.cert, &config.tls.key) {
            (TlsMode::Disable, _, _) => None,
            (_, Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        let backend_tls = match config.backend.tls {
            BackendTlsMode::Disable => None,
            BackendTlsMode::Require => Some(tls::backend_config(None)?),
            BackendTlsMode::VerifyFull => {
                Some(tls::backend_config(config.backend.ca_cert.as_deref())?)
            }
        };
        let target = BackendTarget {
            host: config.backend.host.clone(),
            port: config.backend.port,
            database: config.backend.database.clone(),
            user: config.backend.user.clone(),
            password: config.backend_password(),
            tls: backend_tls,
            tls_required: config.backend.tls != BackendTlsMode::Disable,
            connect_timeout: Duration::from_secs(config.backend.connect_timeout_s.max(1)),
            prepared_capacity: config.pool.prepared_statements_per_connection,
        };
        // A dialect the cluster contradicts stops start-up; a cluster that cannot be reached
        // now is asked again at the next client login.
        let engine = crate::backend::EngineCell::new(config.backend.dialect);
        let dialect = match engine.get(&target).await {
            Ok(dialect) => Some(dialect),
            Err(crate::backend::EngineError::Mismatch(e)) => return Err(e.into()),
            Err(crate::backend::EngineError::Probe(error)) => {
                tracing::warn!(%error, "cannot ask the cluster which engine it is yet; asking again at the first client login");
                None
            }
        };
        // Config::load validated it already; a config built another way is checked here.
        let catalog = Catalog::from_config(&config)
            .map_err(|p| ServerError::Policy(crate::policy::PolicyError::Catalog(p)))?;
        // The views must match the catalog before the first client can reach them.
        let tokens = TokenSync {
            current: Arc::new(Tokens::issue(
                &catalog,
                &crate::policy::tokens::random_hex(),
            )),
            previous: None,
        };
        if !config.data_sources.is_empty() {
            // The views are written for the engine: without it, no sync.
            let dialect = match dialect {
                Some(dialect) => dialect,
                None => engine.get(&target).await?,
            };
            for report in crate::policy::sync_configured(&config, &tokens, dialect).await? {
                tracing::info!("{report}");
            }
        }
        let addr = config.listen.address;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let audit = match &config.audit.path {
            Some(path) => AuditLog::open(path, config.audit.buffer)
                .await
                .map_err(|source| ServerError::Audit {
                    path: path.clone(),
                    source,
                })?,
            None => AuditLog::default(),
        };
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            engine,
            audit,
            pools: Pools::new(target, config.pool.clone()),
            config: config.clone(),
            tls,
            cancels: Arc::new(CancelRegistry::default()),
            failures: FailureTracker::default(),
            settings_probe: Default::default(),
            memory: crate::proxy::budget::MemoryBudget::new(config.limits.max_buffered_bytes),
            control: Arc::new(crate::policy::control::ControlPools::new(config.clone())),
            policy: Arc::new(PolicyHandle::new(LivePolicy::new(
                config,
                catalog,
                tokens.current,
            ))),
            rewrites: Arc::new(RewriteCache::new(REWRITE_CACHE_ENTRIES)),
            shutdown: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
        });
        Ok(Server { listener, shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen.address)
    }

    /// A handle that stops this server: `graceful` drains, otherwise sessions end at once.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// Accepts clients until stopped, then drains.
    pub async fn serve(self) {
        let Server { listener, shared } = self;
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(shared.config.listen.max_connections));
        let ids = AtomicU64::new(1);
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "redveil listening");
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shared.shutdown.cancelled() => break,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shared.shutdown.cancelled() => break,
            };
            match accepted {
                Ok((socket, peer)) => {
                    metrics::counter!("redveil_connections_total").increment(1);
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    // Every log line of the connection carries its id (and the client address).
                    let span = tracing::info_span!("conn", id, %peer);
                    tracker.spawn(
                        async move {
                            crate::frontend::serve_client(socket, peer, shared, id).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        tracker.close();
        let grace = Duration::from_secs(shared.config.limits.shutdown_timeout_s);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::info!("shutdown timeout reached; terminating remaining sessions");
            shared.hard_stop.cancel();
            tracker.wait().await;
        }
        tracing::info!("redveil stopped");
    }
}

/// Stops a running server.
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    /// Stop accepting; open transactions may finish within `limits.shutdown_timeout_s`.
    pub fn graceful(&self) {
        self.0.shutdown.cancel();
    }

    /// Stop accepting and end every session now.
    pub fn immediate(&self) {
        self.0.shutdown.cancel();
        self.0.hard_stop.cancel();
    }
}

/// Applies a changed catalog to a running proxy.
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// The catalog version in force (what sessions read at their next statement).
    pub fn current(&self) -> Arc<LivePolicy> {
        self.0.policy.current()
    }

    /// Syncs `config`'s catalog into the cluster, then puts it in force: every session uses it
    /// from its next statement. Only the catalog (users, data sources, views, impersonation)
    /// changes; listener, TLS, backend and pool settings need a restart.
    pub async fn reload(&self, config: Config) -> Result<Vec<SyncReport>, ServerError> {
        let catalog = Catalog::from_config(&config)
            .map_err(|p| ServerError::Policy(crate::policy::PolicyError::Catalog(p)))?;
        let running = self.0.policy.current().tokens.clone();
        let tokens = TokenSync {
            current: Arc::new(Tokens::issue(&catalog, running.issuer())),
            previous: Some(running),
        };
        let reports = if config.data_sources.is_empty() {
            Vec::new()
        } else {
            let dialect = self.0.engine.get(self.0.pools.target()).await?;
            match crate::policy::sync_configured(&config, &tokens, dialect).await {
                Ok(reports) => reports,
                Err(error) => {
                    self.restore_running_catalog(&config, &error).await;
                    return Err(error.into());
                }
            }
        };
        self.0
            .policy
            .replace(LivePolicy::new(Arc::new(config), catalog, tokens.current));
        // Entries for the old catalog can never hit again.
        self.0.rewrites.clear();
        Ok(reports)
    }

    /// Sync commits one database at a time, in order, so a failure in one leaves those before
    /// it on the new catalog while the proxy keeps the running one: class views and profile
    /// rows the running catalog's pins do not describe. Syncing the running catalog into
    /// them again puts them back (it changes only what differs).
    async fn restore_running_catalog(&self, failed: &Config, error: &crate::policy::PolicyError) {
        let current = self.0.policy.current();
        let running = current.config.clone();
        // The running version's tokens are what sessions pin until they are replaced.
        let tokens = TokenSync {
            current: current.tokens.clone(),
            previous: None,
        };
        let Ok(catalog) = Catalog::from_config(failed) else {
            return;
        };
        let names: Vec<String> = crate::policy::databases(&catalog, &failed.backend.database)
            .into_iter()
            .filter(|name| error.database().is_none_or(|failed| name.as_str() < failed))
            .collect();
        let dialect = match self.0.engine.get(self.0.pools.target()).await {
            Ok(dialect) => dialect,
            Err(error) => {
                tracing::error!(
                    "reload failed, and the running catalog cannot be synced back: {error}"
                );
                return;
            }
        };
        for database in names {
            match crate::policy::sync_configured_into(&running, vec![database.clone()], &tokens, dialect).await {
                Ok(reports) => {
                    for report in reports.iter().filter(|r| !r.is_unchanged()) {
                        tracing::warn!(
                            "reload failed; the running catalog was synced back: {report}"
                        );
                    }
                }
                Err(error) => tracing::error!(
                    database,
                    "reload failed, and syncing the running catalog back failed too; the database may hold part of the new catalog: {error}"
                ),
            }
        }
    }
}
