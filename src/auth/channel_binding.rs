//! `tls-server-end-point` channel binding data (RFC 5929 §4.1): a hash of the server's DER
//! certificate, using the hash of the certificate's signature algorithm, with MD5 and SHA-1
//! replaced by SHA-256.
//!
//! Invariants: never panics on any input; the DER walk reads only the outer Certificate
//! SEQUENCE and its signatureAlgorithm, nothing else of the certificate is trusted or parsed.

use ring::digest::{self, Algorithm, SHA256, SHA384, SHA512};

// OID contents (DER, without tag and length).
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_WITH_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const ID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;

/// Channel binding data for SCRAM-SHA-256-PLUS over a TLS connection presenting `cert_der`.
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    digest::digest(hash_for(cert_der), cert_der)
        .as_ref()
        .to_vec()
}

fn hash_for(cert_der: &[u8]) -> &'static Algorithm {
    let Some((oid, params)) = signature_algorithm(cert_der) else {
        // Unparseable certificates get the same default as unknown algorithms (below); rustls
        // would not have loaded such a certificate anyway.
        return &SHA256;
    };
    match oid {
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => &SHA384,
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => &SHA512,
        RSASSA_PSS => pss_hash(params),
        // Ed25519 has no separate hash; RFC 5929 predates it and clients (pgx, Go's TLS users,
        // rust-postgres) settled on SHA-256.
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 | ED25519 => &SHA256,
        // MD5/SHA-1 based signatures map to SHA-256 by the RFC. For algorithms we do not know,
        // SHA-256 is also what most clients compute by default; if a client picks otherwise the
        // binding check fails, which refuses the login rather than weakening it.
        _ => &SHA256,
    }
}

/// RSASSA-PSS carries its hash in the parameters (RFC 4055): SEQUENCE { [0] EXPLICIT
/// AlgorithmIdentifier hashAlgorithm DEFAULT sha1, ... }.
fn pss_hash(params: &[u8]) -> &'static Algorithm {
    let hash_oid = (|| {
        let (inner, _) = expect(params, SEQUENCE)?;
        let (explicit, _) = expect(inner, CONTEXT_0)?;
        let (alg, _) = expect(explicit, SEQUENCE)?;
        let (oid, _) = expect(alg, OID)?;
        Some(oid)
    })();
    match hash_oid {
        Some(ID_SHA384) => &SHA384,
        Some(ID_SHA512) => &SHA512,
        // SHA-256 itself, the SHA-1 default, and anything else.
        _ => &SHA256,
    }
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, .. };
/// returns the algorithm OID and the bytes after it (the parameters).
fn signature_algorithm(cert_der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (cert, _) = expect(cert_der, SEQUENCE)?;
    let (_tbs, rest) = expect(cert, SEQUENCE)?;
    let (alg, _) = expect(rest, SEQUENCE)?;
    expect(alg, OID)
}

/// Reads one TLV with the given tag; returns its value and the bytes after it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&actual, rest) = input.split_first()?;
    if actual != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        // Long form: 1–4 length bytes (a certificate over 4 GiB is not one). 0x80 would be BER's
        // indefinite length, which DER forbids.
        let count = usize::from(first & 0x7f);
        if !(1..=4).contains(&count) {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    rest.split_at_checked(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};

    fn rcgen_cert(alg: &'static SignatureAlgorithm) -> Vec<u8> {
        let key = KeyPair::generate_for(alg).unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rcgen_certificates_use_their_signature_hash() {
        for (alg, hash) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, &SHA256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, &SHA384),
            (&rcgen::PKCS_ED25519, &SHA256),
        ] {
            let der = rcgen_cert(alg);
            let want = digest::digest(hash, &der);
            assert_eq!(tls_server_end_point(&der), want.as_ref(), "{alg:?}");
        }
    }

    // Fixtures made with OpenSSL 3 (`openssl req -x509 ... -outform DER`); expected values are
    // `openssl dgst` output, computed outside this code.
    #[test]
    fn openssl_fixtures() {
        let cases: [(&[u8], &str); 3] = [
            (
                include_bytes!("testdata/ecdsa_sha1.der"),
                "3b258b43978f9f785674d4830280c6997c599d7d3e2d2e4ded9c2f6c21e43231",
            ),
            (
                include_bytes!("testdata/rsa_pss_sha384.der"),
                "038ab8be0a2a61b1226924aff33af24809428150ab14dc6c\
                 221b46939229fbecedfb315ddfa04fd1531331a0bf34bdeb",
            ),
            (
                include_bytes!("testdata/rsa_sha512.der"),
                "102da736cf21dd5815b2f8646fef71b9595a18fac6402a7e3653fab60fedb847\
                 8f8325a1a8ccb42398c95209ff481d34f84ce80f7ae25a944c4444460ce37773",
            ),
        ];
        for (der, want) in cases {
            assert_eq!(hex(&tls_server_end_point(der)), want);
        }
    }

    #[test]
    fn garbage_never_panics_and_defaults_to_sha256() {
        let der = include_bytes!("testdata/rsa_sha512.der");
        for end in 0..der.len() {
            let out = tls_server_end_point(&der[..end]);
            assert_eq!(out.len(), 32, "truncated at {end}");
        }
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(tls_server_end_point(input).len(), 32);
        }
    }

    #[test]
    fn der_length_forms() {
        assert_eq!(
            expect(&[0x30, 0x01, 0xaa, 0xbb], SEQUENCE),
            Some((&[0xaa][..], &[0xbb][..]))
        );
        assert_eq!(
            expect(&[0x30, 0x81, 0x01, 0xaa], SEQUENCE),
            Some((&[0xaa][..], &[][..]))
        );
        assert_eq!(
            expect(&[0x30, 0x82, 0x00, 0x01, 0xaa], SEQUENCE),
            Some((&[0xaa][..], &[][..]))
        );
        assert_eq!(expect(&[0x31, 0x01, 0xaa], SEQUENCE), None);
        assert_eq!(expect(&[0x30, 0x02, 0xaa], SEQUENCE), None);
    }
}
