//! Development certificates: a throwaway CA and a server certificate it signs for localhost,
//! written as PEM files. Used by `redveil demo` and the tests; never for production.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Paths of the generated PEM files.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Generates a CA and a server certificate for localhost, 127.0.0.1 and ::1 into `dir`.
pub fn generate(dir: &Path) -> Result<DevCerts, DevCertError> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "redveil dev CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let ca_issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca_issuer)?;

    let certs = DevCerts {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    write(&certs.ca_cert, &ca.pem(), 0o644)?;
    write(&certs.server_cert, &cert.pem(), 0o644)?;
    write(&certs.server_key, &key.serialize_pem(), 0o600)?;
    Ok(certs)
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), DevCertError> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::io::Write;
    let wrap = |source| DevCertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(wrap)?;
    file.write_all(contents.as_bytes()).map_err(wrap)
}
