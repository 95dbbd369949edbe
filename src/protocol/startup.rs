//! The untyped first packets of a connection: SSLRequest, GSSENCRequest, CancelRequest and
//! StartupMessage, which carry no message type byte.

use super::{BodyReader, ProtocolError};
use bytes::{BufMut, BytesMut};

/// PostgreSQL refuses startup packets above this size; so do we.
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A decoded first packet.
#[derive(Debug, PartialEq, Eq)]
pub enum InitialPacket {
    SslRequest,
    GssEncRequest,
    Cancel { pid: i32, secret: i32 },
    Startup(StartupMessage),
}

/// A StartupMessage: protocol version and the client's parameters in the order sent.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes a StartupMessage for protocol 3.0 with the given parameters.
    pub fn encode(params: &[(String, String)]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        buf.put_i32(196_608);
        for (k, v) in params {
            buf.put_slice(k.as_bytes());
            buf.put_u8(0);
            buf.put_slice(v.as_bytes());
            buf.put_u8(0);
        }
        buf.put_u8(0);
        let len = buf.len() as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf
    }
}

/// Length announced by a first packet's 4-byte header, validated.
pub fn packet_length(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = i32::from_be_bytes(header);
    if !(8..=MAX_STARTUP_PACKET as i32).contains(&len) {
        return Err(ProtocolError::BadLength(len.into()));
    }
    Ok(len as usize)
}

/// Decodes a first packet's body (everything after the length word).
pub fn decode(body: &[u8]) -> Result<InitialPacket, ProtocolError> {
    let mut r = BodyReader::new(body);
    let code = r.i32()?;
    match code {
        SSL_REQUEST => Ok(InitialPacket::SslRequest),
        GSSENC_REQUEST => Ok(InitialPacket::GssEncRequest),
        CANCEL_REQUEST => Ok(InitialPacket::Cancel {
            pid: r.i32()?,
            secret: r.i32()?,
        }),
        version => {
            let major = (version >> 16) as u16;
            let minor = (version & 0xffff) as u16;
            if major != 3 {
                return Err(ProtocolError::UnsupportedVersion { major, minor });
            }
            let mut params = Vec::new();
            loop {
                let key = r.cstr("startup parameter name")?;
                if key.is_empty() {
                    break;
                }
                let value = r.cstr("startup parameter value")?;
                params.push((key.to_string(), value.to_string()));
            }
            Ok(InitialPacket::Startup(StartupMessage {
                major,
                minor,
                params,
            }))
        }
    }
}

/// Encodes a CancelRequest for a backend's key.
pub fn encode_cancel(pid: i32, secret: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&secret.to_be_bytes());
    out
}

/// Encodes an SSLRequest (proxy to backend).
pub fn encode_ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8i32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_round_trip() {
        let params = vec![("user".to_string(), "alice".to_string())];
        let encoded = StartupMessage::encode(&params);
        let len = packet_length(encoded[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, encoded.len());
        match decode(&encoded[4..]).unwrap() {
            InitialPacket::Startup(s) => {
                assert_eq!(s.get("user"), Some("alice"));
                assert_eq!((s.major, s.minor), (3, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn special_requests() {
        assert_eq!(
            decode(&encode_ssl_request()[4..]).unwrap(),
            InitialPacket::SslRequest
        );
        assert_eq!(
            decode(&encode_cancel(7, 9)[4..]).unwrap(),
            InitialPacket::Cancel { pid: 7, secret: 9 }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(packet_length([0, 0, 0, 1]).is_err());
        assert!(packet_length([0x7f, 0, 0, 0]).is_err());
        assert!(decode(&[0, 2, 0, 0]).is_err());
        assert!(decode(&[0, 3, 0, 0, b'u', b's']).is_err());
        assert!(decode(&[0, 3]).is_err());
        assert!(decode(&[0, 3, 0, 0, b'u', 0, 0xff, 0]).is_err());
    }
}
