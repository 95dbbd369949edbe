//! Starts the proxy in-process on port 0 in front of the test cluster.

use redveil::config::Config;
use redveil::server::{Reloader, Server, Stopper};
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct TestProxy {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    pub stopper: Stopper,
    pub reloader: Reloader,
    pub dir: tempfile::TempDir,
}

pub const PASSWORD_OF: fn(&str) -> String = |user| format!("{user}-pw");

/// The test proxy's configuration: the demo users (`admin`, `analyst`, `bi_service`; password
/// `<name>-pw`), fresh dev certificates in `dir`, and `extra` TOML appended to the base config.
/// Returns the TOML text and the CA certificate clients should trust.
pub fn config_text(dir: &std::path::Path, extra: &str) -> (String, PathBuf) {
    let demo = super::demo();
    let certs = redveil::devcert::generate(dir).expect("dev certs");
    let mut toml = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\ndialect = \"{}\"\n[auth]\nfailure_delay_ms = 50\nfailure_backoff_ms = 0\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        demo.host,
        demo.port,
        demo.database,
        demo.query_user,
        demo.query_password,
        super::dialect().name()
    );
    toml.push_str(extra);
    // The demo catalog's groups and permissions (see src/demo/catalog.rs).
    for (user, entitlements) in [
        (
            "admin",
            "groups = [\"hr\"]\npermissions = [\"IMPERSONATE_USER\"]",
        ),
        ("analyst", "attributes = { region = [\"EU\"] }"),
        ("bi_service", "permissions = [\"IMPERSONATE_USER\"]"),
    ] {
        let verifier =
            redveil::auth::ScramVerifier::generate_with(&PASSWORD_OF(user), user.as_bytes(), 4096);
        // The md5 verifier serves configs that pick md5 (e.g. `auth.redshift_driver_method`).
        let md5 = redveil::auth::md5_stored(user, &PASSWORD_OF(user));
        toml.push_str(&format!(
            "\n[[users]]\nname = \"{user}\"\npassword = \"{verifier}\"\nmd5 = \"{md5}\"\n{entitlements}\n"
        ));
    }
    (toml, certs.ca_cert)
}

/// A proxy in this process, configured as [`config_text`] says.
pub async fn start(extra: &str) -> TestProxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let (toml, ca) = config_text(dir.path(), extra);
    let config = Config::parse(&toml, std::path::Path::new("test.toml")).expect("test config");
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let stopper = server.stopper();
    let reloader = server.reloader();
    tokio::spawn(server.serve());
    TestProxy {
        addr,
        ca,
        stopper,
        reloader,
        dir,
    }
}

impl TestProxy {
    /// Redshift speaks UTF8 only: a login asking for another client encoding is refused
    /// (22023) rather than relayed.
    pub async fn assert_refuses_client_encoding(&self, encoding: &str) {
        let error = self
            .connect_with(&format!(
                "{} options='-c client_encoding={encoding}'",
                self.conn_string("analyst")
            ))
            .await
            .expect_err("a client encoding other than UTF8 on Redshift");
        assert_eq!(error.code().map(|c| c.code()), Some("22023"), "{error:?}");
        assert!(format!("{error:?}").contains("UTF8 only"), "{error:?}");
    }

    /// Puts the catalog of a config made with `extra` in force, as SIGHUP does.
    pub async fn reload(&self, extra: &str) {
        let (toml, _) = config_text(self.dir.path(), extra);
        let config = Config::parse(&toml, std::path::Path::new("test.toml")).expect("config");
        self.reloader.reload(config).await.expect("reload");
    }

    pub fn conn_string(&self, user: &str) -> String {
        format!(
            "host=localhost port={} dbname=demo user={user} password={}",
            self.addr.port(),
            PASSWORD_OF(user)
        )
    }

    /// A tokio-postgres client over TLS verifying the test CA.
    pub async fn connect(
        &self,
        user: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.connect_with(&self.conn_string(user)).await
    }

    pub async fn connect_with(
        &self,
        conn_string: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect_tls(&self.ca, conn_string).await
    }

    pub fn client_tls(&self) -> rustls::ClientConfig {
        client_tls(&self.ca)
    }

    /// A client whose NoticeResponses arrive on the returned channel.
    pub async fn connect_with_notices(
        &self,
        user: &str,
    ) -> (
        tokio_postgres::Client,
        tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::error::DbError>,
    ) {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.client_tls());
        let config: tokio_postgres::Config = format!("{} sslmode=require", self.conn_string(user))
            .parse()
            .expect("connection string");
        let (client, mut connection) = config.connect(tls).await.expect("connect");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                    let _ = tx.send(notice);
                }
            }
        });
        (client, rx)
    }
}

/// A tokio-postgres client over TLS trusting `ca`; the connection task runs on the current
/// runtime.
pub async fn connect_tls(
    ca: &std::path::Path,
    conn_string: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_tls(ca));
    let config: tokio_postgres::Config = format!("{conn_string} sslmode=require").parse()?;
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A rustls client configuration (ring) trusting only the test CA.
pub fn client_tls(ca: &std::path::Path) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}
