//! Amazon's Redshift drivers at login, at the protocol level (the real redshift_connector runs
//! the whole client session in `tests/clients.rs`): the startup parameters only they send mark
//! them, they are offered `auth.redshift_driver_method` (their SCRAM is broken) while every
//! other client keeps SCRAM, a cleartext password is never asked for without TLS, and the
//! ParameterStatus set they see parses with their version and protocol checks.

mod common;

use bytes::BytesMut;
use common::proxy::{self, TestProxy, PASSWORD_OF};
use common::raw::{self, Msg, RawConn};
use redveil::config::Config;
use redveil::net::Stream;
use redveil::protocol::backend::{decode_auth, AuthRequest};
use redveil::protocol::startup::StartupMessage;
use redveil::protocol::{frontend, tag};
use redveil::server::Server;

/// What redshift_connector 2.2 sends besides user and database.
const REDSHIFT_CONNECTOR: &[(&str, &str)] = &[
    ("application_name", "redshift_connector"),
    ("client_protocol_version", "2"),
    ("driver_version", "Redshift Python Driver 2.2.0"),
    ("os_version", "Linux-6.1"),
    ("driver_discovery_version", "1"),
];

/// Sends a startup message and returns the connection with the first message of the reply.
async fn start_login(stream: Stream, user: &str, params: &[(&str, &str)]) -> (RawConn, Msg) {
    let mut conn = RawConn::unstarted(stream);
    let mut all = vec![
        ("user".to_string(), user.to_string()),
        ("database".to_string(), "demo".to_string()),
    ];
    all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    conn.send(&StartupMessage::encode(&all)).await;
    let first = conn.recv().await.expect("read").expect("reply to startup");
    (conn, first)
}

fn auth_request(m: &Msg) -> AuthRequest<'_> {
    assert_eq!(
        m.tag,
        tag::AUTHENTICATION,
        "not an authentication request: {m:?}"
    );
    decode_auth(m.body()).expect("authentication request")
}

/// Reads the rest of the login; returns the ParameterStatus pairs.
async fn finish_login(conn: &mut RawConn) -> Vec<(String, String)> {
    let mut statuses = Vec::new();
    for m in conn.until_ready().await {
        match m.tag {
            tag::ERROR_RESPONSE => panic!("login failed: {:?}", m.fields()),
            tag::PARAMETER_STATUS => {
                let mut parts = m.body().split(|&b| b == 0);
                let name = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                let value = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                statuses.push((name, value));
            }
            _ => {}
        }
    }
    statuses
}

fn status<'a>(statuses: &'a [(String, String)], name: &str) -> Option<&'a str> {
    statuses
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts what a plain PostgreSQL client is offered: SCRAM, never a weaker method.
async fn other_clients_keep_scram(p: &TestProxy) {
    let (_, first) = start_login(raw::tls_to_proxy(p).await, "analyst", &[]).await;
    match auth_request(&first) {
        AuthRequest::Sasl(mechanisms) => assert!(
            mechanisms.contains(&"SCRAM-SHA-256"),
            "mechanisms offered: {mechanisms:?}"
        ),
        other => panic!("a plain client was offered {other:?}"),
    }
}

#[tokio::test]
async fn redshift_drivers_get_cleartext_over_tls_and_everyone_else_scram() {
    let p = proxy::start("").await;
    let (mut conn, first) =
        start_login(raw::tls_to_proxy(&p).await, "analyst", REDSHIFT_CONNECTOR).await;
    assert_eq!(auth_request(&first), AuthRequest::Cleartext);
    let mut out = BytesMut::new();
    frontend::encode_password(&mut out, PASSWORD_OF("analyst").as_bytes());
    conn.send(&out).await;
    let statuses = finish_login(&mut conn).await;

    // Level 0: the drivers parse the plain PostgreSQL RowDescription.
    assert_eq!(status(&statuses, "server_protocol_version"), Some("0"));
    // `packaging` (redshift_connector) rejects Debian-style suffixes; major.minor parses.
    let version = status(&statuses, "server_version").expect("server_version");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 2 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "server_version {version:?} is not major.minor"
    );
    assert_eq!(status(&statuses, "client_encoding"), Some("UTF8"));
    assert_eq!(
        status(&statuses, "application_name"),
        Some("redshift_connector")
    );

    // The driver parameters stayed in the proxy: the backend never heard of them.
    let replies = conn.simple("SHOW driver_version").await;
    assert_eq!(raw::error_codes(&replies), ["42704"], "{replies:?}");
    let replies = conn.simple("SELECT 1").await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");

    other_clients_keep_scram(&p).await;
}

#[tokio::test]
async fn md5_for_redshift_drivers_when_configured() {
    // Appended to the harness config's `[auth]` table.
    let p = proxy::start("redshift_driver_method = \"md5\"\n").await;
    let (mut conn, first) =
        start_login(raw::tls_to_proxy(&p).await, "admin", REDSHIFT_CONNECTOR).await;
    let AuthRequest::Md5(salt) = auth_request(&first) else {
        panic!("expected md5, got {first:?}");
    };
    let mut out = BytesMut::new();
    let response = redveil::auth::md5_login_response("admin", &PASSWORD_OF("admin"), salt);
    frontend::encode_password(&mut out, response.as_bytes());
    conn.send(&out).await;
    let statuses = finish_login(&mut conn).await;
    assert_eq!(status(&statuses, "server_protocol_version"), Some("0"));

    // A wrong md5 answer fails like any wrong password.
    let (mut conn, first) =
        start_login(raw::tls_to_proxy(&p).await, "admin", REDSHIFT_CONNECTOR).await;
    let AuthRequest::Md5(salt) = auth_request(&first) else {
        panic!("expected md5, got {first:?}");
    };
    let mut out = BytesMut::new();
    let response = redveil::auth::md5_login_response("admin", "wrong", salt);
    frontend::encode_password(&mut out, response.as_bytes());
    conn.send(&out).await;
    let replies = conn.until_closed().await;
    assert_eq!(raw::error_codes(&replies), ["28P01"], "{replies:?}");

    other_clients_keep_scram(&p).await;
}

#[tokio::test]
async fn no_cleartext_password_for_redshift_drivers_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _ca) = proxy::config_text(dir.path(), "");
    let toml = toml.replacen("[tls]\n", "[tls]\nmode = \"prefer\"\n", 1);
    let config = Config::parse(&toml, std::path::Path::new("test.toml")).expect("config");
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve());

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut conn, first) = start_login(Stream::Plain(tcp), "analyst", REDSHIFT_CONNECTOR).await;
    // Refused before any password is asked for.
    assert_eq!(first.tag, tag::ERROR_RESPONSE, "{first:?}");
    assert_eq!(first.fields().code, "28000");
    assert!(conn.until_closed().await.is_empty());
}
