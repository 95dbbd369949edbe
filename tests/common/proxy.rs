//! Starts the proxy in-process on port 0 in front of the test cluster.

use redveil::config::Config;
use redveil::server::{Server, Stopper};
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct TestProxy {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    pub stopper: Stopper,
    _dir: tempfile::TempDir,
}

pub const PASSWORD_OF: fn(&str) -> String = |user| format!("{user}-pw");

/// A proxy with the demo users (`admin`, `analyst`, `bi_service`; password `<name>-pw`),
/// configured by `extra` TOML appended to the base config.
pub async fn start(extra: &str) -> TestProxy {
    let demo = super::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = redveil::devcert::generate(dir.path()).expect("dev certs");
    let mut toml = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n[auth]\nfailure_delay_ms = 50\nfailure_backoff_ms = 0\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        demo.host,
        demo.port,
        demo.database,
        demo.query_user,
        demo.query_password
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
        toml.push_str(&format!(
            "\n[[users]]\nname = \"{user}\"\npassword = \"{verifier}\"\n{entitlements}\n"
        ));
    }
    let config = Config::parse(&toml, std::path::Path::new("test.toml")).expect("test config");
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let stopper = server.stopper();
    tokio::spawn(server.serve());
    TestProxy {
        addr,
        ca: certs.ca_cert,
        stopper,
        _dir: dir,
    }
}

impl TestProxy {
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
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.client_tls());
        let config: tokio_postgres::Config = format!("{conn_string} sslmode=require").parse()?;
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    pub fn client_tls(&self) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(&self.ca).expect("ca") {
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
}
