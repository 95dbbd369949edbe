//! The client-facing edge: SSLRequest/TLS, startup, authentication, cancel keys, and the
//! ParameterStatus set a client sees. Decides nothing about policy.

pub mod cancel;
pub mod login;
#[doc(hidden)] // Public for the fuzz targets (fuzz/).
pub mod startup_params;

use crate::config::{AuthMethod, TlsMode};
use crate::net::Stream;
use crate::protocol::backend::{self as msg, Severity};
use crate::protocol::scan::{Direction, Piece, Scanner};
use crate::protocol::startup::{self, InitialPacket, StartupMessage};
use crate::protocol::ProtocolError;
use crate::proxy::{ClientConnection, RelaySettings};
use crate::server::Shared;
use crate::session::Session;
use bytes::{Bytes, BytesMut};
use login::LoginError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client connection during startup: the stream and its buffers.
pub struct Wire {
    pub stream: Stream,
    pub buf: BytesMut,
    pub out: BytesMut,
    scanner: Scanner,
}

impl Wire {
    async fn flush(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    async fn read_message(&mut self) -> Result<(u8, Bytes), LoginError> {
        loop {
            match self.scanner.next(&mut self.buf)? {
                Some(Piece::Message { tag, raw }) => return Ok((tag, raw)),
                Some(_) => return Err(ProtocolError::Invalid("oversized login message").into()),
                None => {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(LoginError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    async fn fatal(&mut self, code: &str, message: &str) {
        self.out.clear();
        msg::error(&mut self.out, Severity::Fatal, code, message);
        let _ = self.flush().await;
    }
}

/// Reads one untyped first packet (length-prefixed) from a plain or TLS stream.
async fn read_initial(stream: &mut Stream) -> Result<InitialPacket, LoginError> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = startup::packet_length(header)?;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok(startup::decode(&body)?)
}

/// Serves one client from accept to close.
pub async fn serve_client(socket: TcpStream, peer: SocketAddr, shared: Arc<Shared>, id: u64) {
    let _ = socket.set_nodelay(true);
    let limit = Duration::from_millis(shared.config.limits.startup_timeout_ms);
    let started = tokio::time::timeout(limit, start(socket, peer, &shared, id)).await;
    let (
        wire,
        LoggedIn {
            session,
            dialect,
            cancel,
            backend,
        },
    ) = match started {
        Ok(Ok(Some(ready))) => ready,
        Ok(Ok(None)) => return,
        Ok(Err((mut wire, e))) => {
            if !matches!(e, LoginError::Io(_)) {
                tracing::info!(conn = id, %peer, error = %e, "login refused");
                metrics::counter!("redveil_login_failures_total").increment(1);
                wire.fatal(e.sqlstate(), &e.to_string()).await;
            }
            wire.stream.close().await;
            return;
        }
        Err(_) => {
            tracing::info!(conn = id, %peer, "startup timed out");
            return;
        }
    };
    metrics::gauge!("redveil_clients").increment(1.0);
    let pool = shared.pools.get(&session.database);
    let limits = &shared.config.limits;
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let settings = RelaySettings {
        mode: shared.config.pool.mode,
        one_client_per_connection: shared.config.pool.reuse == crate::config::PoolReuse::Never,
        cache_rewritten_plans: shared.config.pool.cache_rewritten_plans,
        audit: shared.audit.clone(),
        policy: shared.policy.clone(),
        rewrites: shared.rewrites.clone(),
        control: shared.control.clone(),
        backend_role: shared.config.backend.user.clone(),
        dialect,
        max_message: limits.max_client_message_bytes,
        memory: shared.memory.clone(),
        pools: shared.pools.clone(),
        idle_client_timeout: secs(limits.idle_client_timeout_s),
        client_write_timeout: secs(limits.client_write_timeout_s),
        idle_in_transaction_timeout: secs(limits.idle_in_transaction_timeout_s),
    };
    let mut connection = ClientConnection::new(
        id,
        wire.stream,
        wire.buf,
        session,
        pool,
        cancel.slot.clone(),
        settings,
    );
    if let Some(backend) = backend {
        connection.adopt_backend(backend);
    }
    connection
        .run(shared.shutdown.clone(), shared.hard_stop.clone())
        .await;
    drop(cancel);
    metrics::gauge!("redveil_clients").decrement(1.0);
    tracing::debug!(conn = id, "client disconnected");
}

type Started = Option<(Wire, LoggedIn)>;

/// Startup up to ReadyForQuery. `Ok(None)` for connections that end there (cancel requests).
async fn start(
    socket: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    id: u64,
) -> Result<Started, (Wire, LoginError)> {
    let mut stream = Stream::Plain(socket);
    let tls_mode = shared.config.tls.mode;
    let wire_err = |stream: Stream, e: LoginError| {
        (
            Wire {
                stream,
                buf: BytesMut::new(),
                out: BytesMut::new(),
                scanner: Scanner::new(Direction::FromClient, 16 * 1024),
            },
            e,
        )
    };
    let startup = loop {
        let packet = match read_initial(&mut stream).await {
            Ok(p) => p,
            Err(e) => return Err(wire_err(stream, e)),
        };
        match packet {
            InitialPacket::SslRequest if !stream.is_tls() && tls_mode != TlsMode::Disable => {
                let Some(tls) = shared.tls.as_ref() else {
                    return Err(wire_err(
                        stream,
                        LoginError::Refused("TLS is not configured".into()),
                    ));
                };
                let Stream::Plain(tcp) = stream else {
                    unreachable!("checked not TLS")
                };
                let mut tcp = tcp;
                if let Err(e) = tcp.write_all(b"S").await {
                    return Err(wire_err(Stream::Plain(tcp), e.into()));
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
                match acceptor.accept(tcp).await {
                    Ok(tls) => stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))),
                    Err(e) => {
                        tracing::info!(conn = id, %peer, error = %e, "TLS handshake failed");
                        return Ok(None);
                    }
                }
            }
            InitialPacket::SslRequest | InitialPacket::GssEncRequest => {
                if stream.is_tls() {
                    return Err(wire_err(
                        stream,
                        ProtocolError::Invalid("SSLRequest inside TLS").into(),
                    ));
                }
                if let Err(e) = stream.write_all(b"N").await {
                    return Err(wire_err(stream, e.into()));
                }
            }
            InitialPacket::Cancel { pid, secret } => {
                shared.cancels.cancel((pid, secret)).await;
                stream.close().await;
                return Ok(None);
            }
            InitialPacket::Startup(startup) => break startup,
        }
    };
    let mut wire = Wire {
        stream,
        buf: BytesMut::new(),
        out: BytesMut::new(),
        scanner: Scanner::new(Direction::FromClient, 16 * 1024),
    };
    match login(&mut wire, startup, peer, shared, id).await {
        Ok(ready) => Ok(Some((wire, ready))),
        Err(e) => Err((wire, e)),
    }
}

async fn login(
    wire: &mut Wire,
    startup: StartupMessage,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    id: u64,
) -> Result<LoggedIn, LoginError> {
    // Users come from the catalog in force, so a reload adds and removes them.
    let policy = shared.policy.current();
    let config = &policy.config;
    if !wire.stream.is_tls() && config.tls.mode == TlsMode::Require {
        return Err(LoginError::Refused(
            "redveil requires TLS: connect with sslmode=require (or stricter)".into(),
        ));
    }
    let user_name = startup
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            LoginError::Refused("no PostgreSQL user name specified in startup packet".into())
        })?
        .to_string();
    let database = startup
        .get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&config.backend.database)
        .to_string();
    let params = startup_params::split(&startup);
    let method = if params.redshift_driver {
        config.auth.redshift_driver_method
    } else {
        config.auth.method
    };
    let user = config.user(&user_name);
    let end_point = shared.tls.as_ref().map(|t| t.end_point.as_slice());
    let result = login::authenticate(wire, method, &config.auth, &user_name, user, end_point).await;
    if let Err(e) = result {
        if matches!(e, LoginError::Failed(_)) || method == AuthMethod::Password {
            tokio::time::sleep(shared.failures.fail(peer.ip(), &config.auth)).await;
        }
        return Err(e);
    }
    shared.failures.succeed(peer.ip());
    // `-c immuta.immuta_user=name` impersonates from the first statement (Trino's session
    // user), under the same rules as the SQL forms; every other reserved setting is refused.
    let mut settings = params.settings.clone();
    let mut impersonate = None;
    settings.retain(
        |(name, value)| match crate::intercept::startup_target(name, value) {
            Some(crate::intercept::Target::User(target)) => {
                impersonate = Some(target);
                false
            }
            Some(_) => false,
            None => true,
        },
    );
    let guarded = !policy.registry(&database, &user_name).is_empty();
    if let Some((name, _)) = settings
        .iter()
        .find(|(n, v)| crate::rewrite::is_refused_setting(n, v, guarded))
    {
        return Err(LoginError::Reserved(name.clone()));
    }
    if let Some(target) = &impersonate {
        let allowed = crate::intercept::authorize(&policy.config, &user_name, None, Some(target));
        let client_address = peer.to_string();
        shared
            .audit
            .impersonation(&crate::audit::ImpersonationRecord {
                event: "impersonation_start",
                login_user: &user_name,
                target_user: target,
                client_address: &client_address,
                connection: 0,
                outcome: if allowed.is_ok() {
                    "allowed"
                } else {
                    "refused"
                },
                sqlstate: allowed.as_ref().err().map(|r| r.code),
            });
        if let Err(refusal) = allowed {
            return Err(LoginError::Impersonation {
                code: refusal.code,
                message: refusal.message,
            });
        }
    }
    msg::auth_ok(&mut wire.out);
    let pool = shared.pools.get(&database);
    let template = pool.template().await.map_err(cluster_unreachable)?;
    let dialect = match shared.engine.get(pool.target()).await {
        Ok(dialect) => dialect,
        Err(crate::backend::EngineError::Mismatch(e)) => {
            tracing::error!("{e}");
            return Err(LoginError::Refused(e.to_string()));
        }
        Err(crate::backend::EngineError::Probe(e)) => return Err(probe_refused(e)),
    };
    if !params.unsupported_protocol_options.is_empty() || startup.minor > 0 {
        msg::negotiate_protocol_version(&mut wire.out, params.unsupported_protocol_options.clone());
    }
    let mut taken = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        if dialect
            .takes_startup_setting(&name, &value)
            .map_err(|message| LoginError::Cluster {
                code: "22023".into(),
                message,
            })?
        {
            taken.push((name, value));
        }
    }
    let settings = taken;
    let shown = match settings.is_empty() {
        true => Vec::new(),
        false => shared
            .settings_probe
            .shown(&pool, &database, &settings, dialect)
            .await
            .map_err(probe_refused)?,
    };
    let mut text_encoding = Default::default();
    let mut standard_conforming_strings = None;
    for (name, value) in startup_params::reported(
        &template,
        &shown,
        params.redshift_driver,
        params.client_protocol_version.is_some(),
        config.backend.server_version.as_deref(),
    ) {
        if name == "client_encoding" {
            text_encoding = crate::protocol::encoding::TextEncoding::of(&value);
        }
        if name == "standard_conforming_strings" {
            standard_conforming_strings = Some(value.clone());
        }
        msg::parameter_status(&mut wire.out, &name, &value);
    }
    let mut session = Session::new(user_name.clone(), database.clone(), settings);
    session.peer = peer.to_string();
    session.text_encoding = text_encoding;
    session.lexing = dialect.lexing(standard_conforming_strings.as_deref());
    if let Some(target) = impersonate {
        session.impersonation.set(Some(target));
        session.impersonation.commit();
    }
    // In session mode the client's backend connection is its own from now on: it is taken
    // here, so the key the client is told carries that connection's process id.
    let backend = match shared.config.pool.mode {
        crate::config::PoolMode::Session => Some(
            crate::proxy::checkout_serving(&pool, id, session.effective_user(), dialect)
                .await
                .map_err(cluster_unreachable)?,
        ),
        crate::config::PoolMode::Transaction => None,
    };
    let cancel = shared.cancels.register(backend.as_ref().map(|b| b.key.0));
    if let Some(backend) = &backend {
        cancel.slot.set(backend.peer, backend.key).await;
    }
    msg::backend_key_data(&mut wire.out, cancel.key.0, cancel.key.1);
    msg::ready_for_query(&mut wire.out, b'I');
    wire.flush().await?;
    tracing::info!(%peer, user = %user_name, %database, "client logged in");
    metrics::counter!("redveil_logins_total").increment(1);
    Ok(LoggedIn {
        dialect,
        session,
        cancel,
        backend,
    })
}

/// A client past ReadyForQuery.
struct LoggedIn {
    session: Session,
    /// The engine behind the proxy, known once a login succeeded.
    dialect: crate::dialect::Dialect,
    cancel: cancel::CancelGuard,
    /// Its backend connection, in session mode.
    backend: Option<crate::backend::Checkout>,
}

/// A login that needed the cluster and could not have it.
fn probe_refused(error: crate::backend::ProbeError) -> LoginError {
    match error {
        crate::backend::ProbeError::Refused { code, message } => {
            LoginError::Cluster { code, message }
        }
        crate::backend::ProbeError::Backend(e) => cluster_unreachable(e),
    }
}

fn cluster_unreachable(error: crate::backend::BackendError) -> LoginError {
    match error {
        crate::backend::BackendError::Unavailable { code, message } => LoginError::Cluster {
            code: code.to_string(),
            message,
        },
        other => LoginError::Refused(format!("cannot reach the cluster: {other}")),
    }
}
