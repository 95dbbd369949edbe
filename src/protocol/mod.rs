//! The PostgreSQL v3 wire protocol, without I/O: framing of raw byte streams, the few client
//! messages the proxy must look inside, and the messages the proxy answers with itself.
//!
//! Invariant: nothing here panics on untrusted bytes. Every decoder is bounds-checked and
//! returns [`ProtocolError`], which ends only the offending client's connection.

pub mod backend;
pub mod encoding;
pub mod frontend;
mod reader;
pub mod scan;
pub mod startup;

pub use reader::BodyReader;

/// A client or backend broke the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message truncated")]
    Truncated,
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("invalid UTF-8 in {0}")]
    BadUtf8(&'static str),
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("unexpected message type {0:?}")]
    Unexpected(char),
    #[error("{0}")]
    Invalid(&'static str),
    /// SQL text the proxy cannot read in the client's encoding: a statement error, not a
    /// broken connection.
    #[error(transparent)]
    Text(#[from] encoding::TextError),
}

impl ProtocolError {
    /// SQLSTATE sent to the client: protocol violation, as PostgreSQL reports a malformed or
    /// oversized message ("invalid message length"), except for a protocol version it lacks.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ProtocolError::UnsupportedVersion { .. } => "0A000",
            ProtocolError::Text(e) => e.sqlstate(),
            _ => "08P01",
        }
    }
}

/// Message type bytes, named as in the PostgreSQL documentation.
pub mod tag {
    // Frontend.
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const COPY_FAIL: u8 = b'f';
    pub const PASSWORD: u8 = b'p';
    // Both directions.
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    // Backend.
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NOTIFICATION: u8 = b'A';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const NO_DATA: u8 = b'n';
    pub const DATA_ROW: u8 = b'D';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const EMPTY_QUERY: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}
