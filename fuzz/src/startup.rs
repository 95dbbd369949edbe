//! The start of a client connection: the untyped first packets (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage), the negotiation `frontend::start` runs over them, the
//! pure part of login (`frontend::startup_params`, connect-time impersonation, reserved
//! settings), and the authentication messages that follow, down to the SCRAM parser.
//!
//! `frontend::start` owns a socket, so the negotiation is restated here step for step over
//! the library's decoders; keep the two in step. Input: byte 0 picks the TLS mode (mod 3),
//! whether TLS is configured (bit 2) and the authentication method (bits 3–4); the rest is
//! what the client sends, a TLS handshake taken to succeed the moment `S` is answered.
//! Properties: no panic; every input ends in exactly one of an accepted startup, a cancel, or
//! a clean error, after at most one `S`, with no `S` when TLS is disabled, and never an
//! answer to an SSLRequest inside TLS; a first packet is never read past
//! `MAX_STARTUP_PACKET`; an accepted StartupMessage re-encodes to the same parameters.

use bytes::BytesMut;
use redveil::auth::{ScramServer, ScramVerifier, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use redveil::config::TlsMode;
use redveil::frontend::startup_params;
use redveil::intercept::{self, Target};
use redveil::protocol::backend as msg;
use redveil::protocol::frontend;
use redveil::protocol::scan::{Direction, Piece, Scanner};
use redveil::protocol::startup::{self, InitialPacket, StartupMessage, MAX_STARTUP_PACKET};
use redveil::protocol::{tag, ProtocolError};
use std::sync::OnceLock;

/// How a connection's start ended.
#[derive(Debug)]
enum Outcome {
    /// StartupMessage accepted; the bytes after it are the login messages.
    Startup {
        message: StartupMessage,
        tls: bool,
        rest: usize,
    },
    Cancel,
    /// The client ran out of bytes or broke the protocol: the connection is closed, with an
    /// ErrorResponse where `start` sends one.
    Error,
}

#[derive(Clone, Copy)]
enum Method {
    Scram,
    Md5,
    Password,
}

pub fn check(data: &[u8]) {
    let [mode, stream @ ..] = data else {
        return;
    };
    let tls_mode = match mode % 3 {
        0 => TlsMode::Require,
        1 => TlsMode::Prefer,
        _ => TlsMode::Disable,
    };
    let tls_configured = mode & 4 == 0;
    let method = match (mode >> 3) % 3 {
        0 => Method::Scram,
        1 => Method::Md5,
        _ => Method::Password,
    };
    let mut answers = Vec::new();
    let outcome = negotiate(stream, tls_mode, tls_configured, &mut answers);
    assert!(answers.iter().filter(|a| **a == b'S').count() <= 1);
    if tls_mode == TlsMode::Disable || !tls_configured {
        assert!(!answers.contains(&b'S'));
    }
    if let Outcome::Startup { message, tls, rest } = outcome {
        assert_eq!(message.major, 3);
        let encoded = StartupMessage::encode(&message.params);
        if encoded.len() <= MAX_STARTUP_PACKET {
            match startup::decode(&encoded[4..]) {
                Ok(InitialPacket::Startup(again)) => assert_eq!(again.params, message.params),
                other => panic!("a StartupMessage re-encoded as {other:?}"),
            }
        }
        if login(&message, tls, tls_mode).is_ok() {
            authenticate(method, tls, &stream[rest..]);
        }
    }
}

/// `frontend::start`'s loop: first packets until a StartupMessage, a cancel or an error.
fn negotiate(
    stream: &[u8],
    tls_mode: TlsMode,
    tls_configured: bool,
    answers: &mut Vec<u8>,
) -> Outcome {
    let mut at = 0;
    let mut tls = false;
    loop {
        let Some(header) = stream.get(at..at + 4) else {
            return Outcome::Error; // end of stream in a header
        };
        let len = match startup::packet_length(header.try_into().expect("4 bytes")) {
            Ok(len) => len,
            Err(_) => return Outcome::Error,
        };
        assert!((8..=MAX_STARTUP_PACKET).contains(&len));
        let Some(body) = stream.get(at + 4..at + len) else {
            return Outcome::Error; // end of stream in a first packet
        };
        at += len;
        match startup::decode(body) {
            Err(e) => {
                assert!(matches!(e.sqlstate(), "08P01" | "0A000"));
                return Outcome::Error;
            }
            Ok(InitialPacket::SslRequest) if !tls && tls_mode != TlsMode::Disable => {
                if !tls_configured {
                    return Outcome::Error; // TLS is not configured
                }
                answers.push(b'S');
                tls = true;
            }
            Ok(InitialPacket::SslRequest | InitialPacket::GssEncRequest) => {
                if tls {
                    return Outcome::Error; // SSLRequest inside TLS
                }
                answers.push(b'N');
            }
            Ok(InitialPacket::Cancel { .. }) => return Outcome::Cancel,
            Ok(InitialPacket::Startup(message)) => {
                return Outcome::Startup {
                    message,
                    tls,
                    rest: at,
                }
            }
        }
    }
}

/// The checks `frontend::login` makes before authenticating, and the startup answer it
/// builds after.
fn login(message: &StartupMessage, tls: bool, tls_mode: TlsMode) -> Result<(), &'static str> {
    if !tls && tls_mode == TlsMode::Require {
        return Err("TLS required");
    }
    message
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or("no user")?;
    let params = startup_params::split(message);
    let mut settings = params.settings.clone();
    let mut impersonate = None;
    settings.retain(
        |(name, value)| match intercept::startup_target(name, value) {
            Some(Target::User(target)) => {
                assert!(!target.is_empty() && target.trim() == target);
                impersonate = Some(target);
                false
            }
            Some(_) => false,
            None => true,
        },
    );
    for (name, _) in &settings {
        assert!(
            intercept::startup_target(name, "x").is_none(),
            "{name} impersonates yet stays a setting"
        );
    }
    if settings
        .iter()
        .any(|(n, v)| redveil::rewrite::is_refused_setting(n, v, true))
    {
        return Err("reserved setting");
    }
    let mut out = BytesMut::new();
    if !params.unsupported_protocol_options.is_empty() || message.minor > 0 {
        msg::negotiate_protocol_version(&mut out, params.unsupported_protocol_options.clone());
    }
    let template = [
        (
            "server_version".to_string(),
            "16.4 (Debian 16.4-1)".to_string(),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
    ];
    let redshift_protocol = params.client_protocol_version.is_some();
    for (name, value) in startup_params::reported(
        &template,
        &params.settings,
        params.redshift_driver,
        redshift_protocol,
        None,
    ) {
        msg::parameter_status(&mut out, &name, &value);
    }
    Ok(())
}

/// A known user's verifier, with one iteration so the exchange stays cheap.
fn verifier() -> &'static ScramVerifier {
    static VERIFIER: OnceLock<ScramVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| ScramVerifier::generate_with("secret", b"fuzz-salt-16byte", 1))
}

/// `login::authenticate` over the bytes after the StartupMessage.
fn authenticate(method: Method, tls: bool, stream: &[u8]) {
    let mut wire = Wire {
        scanner: Scanner::new(Direction::FromClient, 16 * 1024),
        buf: BytesMut::from(stream),
    };
    match method {
        Method::Scram => {
            let binding = tls.then(|| vec![7u8; 32]);
            let mut server = ScramServer::new("alice", Some(verifier()), binding);
            let Ok(body) = wire.password_message() else {
                return;
            };
            let Ok((mechanism, data)) = frontend::sasl_initial(&body) else {
                return;
            };
            let first = server.client_first(mechanism, data);
            if first.is_ok() {
                assert!(mechanism == SCRAM_SHA_256 || (tls && mechanism == SCRAM_SHA_256_PLUS));
                if let Ok(body) = wire.password_message() {
                    // The server nonce is random, so a fuzzer cannot complete the exchange.
                    assert!(server.client_final(&body).is_err());
                }
            }
        }
        Method::Md5 => {
            if let Ok(body) = wire.password_message() {
                if let Ok(response) = frontend::password(&body) {
                    let stored = redveil::auth::md5_stored("alice", "secret");
                    let _ = redveil::auth::md5_verify(&stored, [1, 2, 3, 4], response);
                }
            }
        }
        Method::Password => {
            if let Ok(body) = wire.password_message() {
                if let Ok(Ok(password)) = frontend::password(&body).map(std::str::from_utf8) {
                    let _ = verifier().verify_password(password);
                }
            }
        }
    }
}

/// `frontend::Wire` without the socket: whole messages of at most 16 kB, or an error.
struct Wire {
    scanner: Scanner,
    buf: BytesMut,
}

impl Wire {
    fn password_message(&mut self) -> Result<bytes::Bytes, ProtocolError> {
        match self.scanner.next(&mut self.buf)? {
            Some(Piece::Message { tag, raw }) if tag == tag::PASSWORD => Ok(raw.slice(5..)),
            Some(Piece::Message { tag, .. }) => Err(ProtocolError::Unexpected(tag as char)),
            Some(_) => Err(ProtocolError::Invalid("oversized login message")),
            None => Err(ProtocolError::Truncated),
        }
    }
}
