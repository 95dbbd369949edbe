//! Policy-test helpers: catalogs as proxy.toml text, sync over the control path, and
//! query-role connections with a user's identity token pinned, as the proxy would pin it.
//!
//! Every sync replaces the whole catalog in the demo database, so tests that sync hold
//! [`lock`] for their whole run: they are serialized within a test binary (each binary has
//! its own cluster).

use redveil::config::Config;
use redveil::policy::{self, Catalog, SyncOptions, SyncReport, TokenSync, Tokens};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, MutexGuard, OnceCell};
use tokio_postgres::Client;

/// A valid SCRAM verifier for catalog users that never log in.
pub const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$9sYCQSgH4ZfW8lOc4ywrs9qmSCZYUp4WL96GVI8ceqs=:iNkdqSSlq2n2GcUMofq2ppGOGfvv9WzKTzxQdlySByo=";

static LOCK: Mutex<()> = Mutex::const_new(());
/// The tokens of the last sync made here (this test binary is their issuer).
static TOKENS: std::sync::Mutex<Option<Arc<Tokens>>> = std::sync::Mutex::new(None);
static REVOKED: OnceCell<()> = OnceCell::const_new();

/// Serializes syncing tests; also takes the query role's raw-table access away once.
pub async fn lock() -> MutexGuard<'static, ()> {
    let guard = LOCK.lock().await;
    REVOKED
        .get_or_init(|| async {
            redveil::demo::dataset::revoke_raw_access(super::cluster())
                .await
                .unwrap_or_else(|e| panic!("revoking raw access: {}", super::report(&e)));
        })
        .await;
    guard
}

/// proxy.toml text for the demo cluster with `catalog` (users, data sources…) appended.
pub fn config_text(catalog: &str) -> String {
    let demo = super::demo();
    format!(
        "[tls]\nmode = \"disable\"\n[backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n\
         [control]\nuser = \"{}\"\npassword = \"{}\"\n{catalog}",
        demo.host,
        demo.port,
        demo.database,
        demo.query_user,
        demo.query_password,
        demo.system_user,
        demo.system_password
    )
}

/// Parses a configuration made by [`config_text`].
pub fn config(catalog: &str) -> Config {
    Config::parse(&config_text(catalog), Path::new("test.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"))
}

/// The demo catalog: users with their groups and attributes, `hr.employees` and policies.
pub fn demo_catalog() -> String {
    let mut toml = String::new();
    for user in redveil::demo::catalog::USERS {
        let profile = match user {
            "admin" => "groups = [\"hr\"]\npermissions = [\"IMPERSONATE_USER\"]\n",
            "analyst" => "attributes = { region = [\"EU\"] }\n",
            _ => "permissions = [\"IMPERSONATE_USER\"]\n",
        };
        toml.push_str(&format!(
            "\n[[users]]\nname = \"{user}\"\npassword = \"{VERIFIER}\"\n{profile}"
        ));
    }
    toml.push_str(redveil::demo::catalog::DATA_SOURCES_TOML);
    toml
}

/// A system-role client on the demo database.
pub async fn system() -> Client {
    super::connect(&super::demo().system_conn_string(super::cluster()))
        .await
        .expect("system role connects")
}

/// Syncs `config`'s catalog into the demo database.
pub async fn try_sync(config: &Config) -> Result<SyncReport, policy::SyncError> {
    let catalog = Catalog::from_config(config).expect("valid catalog");
    let mut client = system().await;
    let tokens = Arc::new(Tokens::issue(&catalog, "tests"));
    let previous = TOKENS.lock().unwrap().clone();
    let report = policy::sync(
        &mut client,
        &catalog,
        &SyncOptions {
            database: config.backend.database.clone(),
            default_database: config.backend.database.clone(),
            query_role: config.backend.user.clone(),
            dialect: super::dialect(),
            // As the proxy does: sessions pinned under the last tokens keep working.
            tokens: TokenSync {
                current: tokens.clone(),
                previous,
            },
        },
    )
    .await?;
    *TOKENS.lock().unwrap() = Some(tokens);
    Ok(report)
}

/// The tokens of the last sync made by these helpers.
pub fn tokens() -> Arc<Tokens> {
    TOKENS.lock().unwrap().clone().expect("synced")
}

/// `user`'s token from the last sync made by these helpers (a random one, valid for nobody,
/// for a user the catalog does not know).
pub fn token_of(user: &str) -> String {
    let tokens = TOKENS.lock().unwrap();
    tokens
        .as_ref()
        .and_then(|t| t.of(user).map(str::to_string))
        .unwrap_or_else(redveil::policy::tokens::random_hex)
}

/// Syncs and panics with the whole error chain on failure.
pub async fn sync(config: &Config) -> SyncReport {
    try_sync(config)
        .await
        .unwrap_or_else(|e| panic!("sync: {}", super::report(&e)))
}

/// A query-role connection pinned as `user` (not pinned when `None`).
pub async fn query_as(user: Option<&str>) -> Client {
    let client = super::connect(&super::demo().query_conn_string(super::cluster()))
        .await
        .expect("query role connects");
    if let Some(user) = user {
        set_user(&client, user).await;
    }
    client
}

/// What the proxy does before a statement of another user: pin that user's token.
pub async fn set_user(client: &Client, user: &str) {
    client
        .execute(
            "SELECT set_config('immuta.token', $1, false)",
            &[&token_of(user)],
        )
        .await
        .expect("set_config");
}

/// The data source's salt, read as the system role.
pub async fn salt_of(data_source: &str) -> String {
    system()
        .await
        .query_one(
            "SELECT salt FROM immuta_system.data_sources WHERE data_source = $1",
            &[&data_source],
        )
        .await
        .expect("salt")
        .get(0)
}

/// Hex SHA-256, as the views compute it.
pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
