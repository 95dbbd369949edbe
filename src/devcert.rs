//! Development TLS material: a throwaway CA and a server certificate it signs for
//! `localhost`, `127.0.0.1` and `::1`, written as PEM files.
//!
//! For the demo and the tests only. The CA's private key is never written anywhere, so
//! nothing else can ever be signed by it; the server key file is created with mode 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// File names inside the output directory.
const CA_CERT_FILE: &str = "ca.crt";
const SERVER_CERT_FILE: &str = "server.crt";
const SERVER_KEY_FILE: &str = "server.key";

/// Paths of the generated PEM files.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// The CA certificate: the trust root clients use (`sslrootcert`).
    pub ca_cert: PathBuf,
    /// The server's leaf certificate, signed by the CA.
    pub server_cert: PathBuf,
    /// The server's private key (PKCS#8), mode 0600.
    pub server_key: PathBuf,
}

/// Why generating the certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// Key generation or signing failed.
    #[error("generating the development certificates")]
    Generate(#[from] rcgen::Error),
    /// Writing a file failed.
    #[error("writing {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Generates a fresh CA and server certificate into `dir` (created if missing),
/// replacing any previous files of the same names.
pub fn generate(dir: &Path) -> Result<DevCerts, DevCertError> {
    std::fs::create_dir_all(dir).map_err(|source| DevCertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "redveil development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    // IP strings become IP-address SANs, the rest DNS names.
    let mut server_params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut server_params);
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let certs = DevCerts {
        ca_cert: dir.join(CA_CERT_FILE),
        server_cert: dir.join(SERVER_CERT_FILE),
        server_key: dir.join(SERVER_KEY_FILE),
    };
    write_file(&certs.ca_cert, &ca_cert.pem(), 0o644)?;
    write_file(&certs.server_cert, &server_cert.pem(), 0o644)?;
    write_file(&certs.server_key, &server_key.serialize_pem(), 0o600)?;
    Ok(certs)
}

/// Fixed, generous validity: dev certificates must not expire under a running demo.
fn set_validity(params: &mut CertificateParams) {
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2049, 12, 31);
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), DevCertError> {
    let io = |source| DevCertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    // `mode` only applies to new files; an existing key file must be tightened too.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests;
