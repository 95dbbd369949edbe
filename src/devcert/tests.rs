//! The generated files load into rustls and the chain verifies for every server name.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn load(
    certs: &DevCerts,
) -> (
    CertificateDer<'static>,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let ca = CertificateDer::from_pem_file(&certs.ca_cert).expect("ca pem");
    let leaf = CertificateDer::from_pem_file(&certs.server_cert).expect("leaf pem");
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).expect("key pem");
    (ca, leaf, key)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("CA is a valid trust anchor");
    Arc::new(roots)
}

#[test]
fn chain_verifies_for_every_name_and_key_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = generate(&dir.path().join("certs")).expect("generate");
    let mode = std::fs::metadata(&certs.server_key)
        .expect("key metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let (ca, leaf, key) = load(&certs);
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.clone()], key)
        .expect("server config accepts the pair");

    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
        .build()
        .expect("verifier");
    for name in SERVER_NAMES {
        let server_name = ServerName::try_from(name).expect("server name");
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let other = ServerName::try_from("example.com").expect("server name");
    assert!(verifier
        .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
        .is_err());
}

#[test]
fn regenerating_replaces_files_and_a_fresh_ca_is_not_trusted_by_the_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = generate(dir.path()).expect("first");
    let (old_ca, _, _) = load(&first);
    let second = generate(dir.path()).expect("second");
    let (_, new_leaf, _) = load(&second);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(old_ca), provider())
        .build()
        .expect("verifier");
    let name = ServerName::try_from("localhost").expect("server name");
    assert!(verifier
        .verify_server_cert(&new_leaf, &[], &name, &[], UnixTime::now())
        .is_err());
}

#[tokio::test]
async fn tls_handshake_over_duplex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = generate(dir.path()).expect("generate");
    let (ca, leaf, key) = load(&certs);
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .expect("server config");
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots(ca))
        .with_no_client_auth();

    let (client_io, server_io) = tokio::io::duplex(16 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(server_io).await.expect("server handshake");
        tls.write_all(b"hello").await.expect("server write");
        tls.shutdown().await.expect("server shutdown");
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = connector
        .connect(name, client_io)
        .await
        .expect("client verifies localhost");
    let mut got = Vec::new();
    tls.read_to_end(&mut got).await.expect("client read");
    assert_eq!(got, b"hello");
    server.await.expect("server task");
}
