//! Backend-direction messages: the ones the proxy composes itself (encoded with pgwire's
//! message types) and the few backend messages whose content the proxy reads.

use super::{tag, BodyReader, ProtocolError};
use bytes::{BufMut, BytesMut};
use pgwire::messages::response::{
    CommandComplete, ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey,
};
use pgwire::messages::Message;

fn encode(out: &mut BytesMut, message: impl Message) {
    // Encoding into a BytesMut only fails on length overflow, impossible for the proxy's own
    // small messages; dropping the message would desynchronise the client, so treat it as a bug.
    if let Err(e) = message.encode(out) {
        tracing::error!(error = %e, "failed to encode a proxy message");
    }
}

/// Severity of a proxy-generated error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// ErrorResponse with severity, SQLSTATE and message, laid out as PostgreSQL does.
pub fn error(out: &mut BytesMut, severity: Severity, code: &str, message: &str) {
    let s = severity.as_str().to_string();
    encode(
        out,
        ErrorResponse::new(vec![
            (b'S', s.clone()),
            (b'V', s),
            (b'C', code.to_string()),
            (b'M', message.to_string()),
        ]),
    );
}

/// NoticeResponse with a message.
pub fn notice(out: &mut BytesMut, code: &str, message: &str) {
    encode(
        out,
        NoticeResponse::new(vec![
            (b'S', "NOTICE".into()),
            (b'V', "NOTICE".into()),
            (b'C', code.to_string()),
            (b'M', message.to_string()),
        ]),
    );
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    encode(out, ReadyForQuery::new(status));
}

pub fn command_complete(out: &mut BytesMut, command_tag: &str) {
    encode(out, CommandComplete::new(command_tag.to_string()));
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    encode(
        out,
        ParameterStatus::new(name.to_string(), value.to_string()),
    );
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    encode(out, BackendKeyData::new(pid, SecretKey::I32(secret)));
}

pub fn negotiate_protocol_version(out: &mut BytesMut, unsupported: Vec<String>) {
    encode(out, NegotiateProtocolVersion::new(0, unsupported));
}

pub fn auth_ok(out: &mut BytesMut) {
    encode(out, Authentication::Ok);
}

pub fn auth_cleartext(out: &mut BytesMut) {
    encode(out, Authentication::CleartextPassword);
}

pub fn auth_md5(out: &mut BytesMut, salt: [u8; 4]) {
    encode(out, Authentication::MD5Password(salt.to_vec()));
}

pub fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    encode(
        out,
        Authentication::SASL(mechanisms.iter().map(|m| m.to_string()).collect()),
    );
}

pub fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    encode(out, Authentication::SASLContinue(data.to_vec().into()));
}

pub fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    encode(out, Authentication::SASLFinal(data.to_vec().into()));
}

/// The fixed 5-byte messages the proxy synthesises in a client's response stream.
pub fn parse_complete(out: &mut BytesMut) {
    empty(out, tag::PARSE_COMPLETE);
}

pub fn close_complete(out: &mut BytesMut) {
    empty(out, tag::CLOSE_COMPLETE);
}

pub fn bind_complete(out: &mut BytesMut) {
    empty(out, tag::BIND_COMPLETE);
}

pub fn no_data(out: &mut BytesMut) {
    empty(out, tag::NO_DATA);
}

/// The OID of `text`, the type of every value the proxy answers with itself.
pub const TEXT_OID: u32 = 25;

pub fn parameter_description(out: &mut BytesMut, types: &[u32]) {
    out.put_u8(tag::PARAMETER_DESCRIPTION);
    out.put_i32(4 + 2 + 4 * types.len() as i32);
    out.put_i16(types.len() as i16);
    for t in types {
        out.put_u32(*t);
    }
}

/// A RowDescription of `text` columns in `format` (0 text, 1 binary: the same bytes for text).
pub fn row_description_text(out: &mut BytesMut, names: &[&str], format: i16) {
    let body: usize = names.iter().map(|n| n.len() + 1 + 18).sum();
    out.put_u8(tag::ROW_DESCRIPTION);
    out.put_i32(4 + 2 + body as i32);
    out.put_i16(names.len() as i16);
    for name in names {
        out.put_slice(name.as_bytes());
        out.put_u8(0);
        out.put_i32(0); // table OID
        out.put_i16(0); // column number
        out.put_u32(TEXT_OID);
        out.put_i16(-1); // variable width
        out.put_i32(-1); // no type modifier
        out.put_i16(format);
    }
}

pub fn data_row_text(out: &mut BytesMut, values: &[Option<&str>]) {
    let body: usize = values.iter().map(|v| 4 + v.map_or(0, str::len)).sum();
    out.put_u8(tag::DATA_ROW);
    out.put_i32(4 + 2 + body as i32);
    out.put_i16(values.len() as i16);
    for value in values {
        match value {
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v.as_bytes());
            }
            None => out.put_i32(-1),
        }
    }
}

fn empty(out: &mut BytesMut, message_tag: u8) {
    out.put_u8(message_tag);
    out.put_i32(4);
}

/// The fields of an ErrorResponse or NoticeResponse that the proxy cares about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl ErrorFields {
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = BodyReader::new(body);
        let mut fields = ErrorFields::default();
        loop {
            let code = r.u8()?;
            if code == 0 {
                return Ok(fields);
            }
            let value = String::from_utf8_lossy(r.cstr_bytes()?).into_owned();
            match code {
                b'V' => fields.severity = value,
                b'S' if fields.severity.is_empty() => fields.severity = value,
                b'C' => fields.code = value,
                b'M' => fields.message = value,
                _ => {}
            }
        }
    }

    /// FATAL and PANIC end the backend session.
    pub fn is_fatal(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }
}

/// Name and value of a ParameterStatus.
pub fn decode_parameter_status(body: &[u8]) -> Result<(String, String), ProtocolError> {
    let mut r = BodyReader::new(body);
    Ok((
        r.cstr("parameter name")?.to_string(),
        r.cstr("parameter value")?.to_string(),
    ))
}

/// The command tag of a CommandComplete.
pub fn decode_command_tag(body: &[u8]) -> Result<&str, ProtocolError> {
    BodyReader::new(body).cstr("command tag")
}

/// An Authentication request from the backend.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    Ok,
    Cleartext,
    Md5([u8; 4]),
    Sasl(Vec<&'a str>),
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    Other(i32),
}

pub fn decode_auth(body: &[u8]) -> Result<AuthRequest<'_>, ProtocolError> {
    let mut r = BodyReader::new(body);
    Ok(match r.i32()? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let salt = r.bytes(4)?;
            AuthRequest::Md5([salt[0], salt[1], salt[2], salt[3]])
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = r.cstr("SASL mechanism")?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
            }
            AuthRequest::Sasl(mechanisms)
        }
        11 => AuthRequest::SaslContinue(r.remaining()),
        12 => AuthRequest::SaslFinal(r.remaining()),
        other => AuthRequest::Other(other),
    })
}

/// BackendKeyData's process id and secret (protocol 3.0 layout).
pub fn decode_backend_key(body: &[u8]) -> Result<(i32, i32), ProtocolError> {
    let mut r = BodyReader::new(body);
    Ok((r.i32()?, r.i32()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_round_trip() {
        let mut out = BytesMut::new();
        error(
            &mut out,
            Severity::Fatal,
            "28P01",
            "password authentication failed",
        );
        assert_eq!(out[0], tag::ERROR_RESPONSE);
        let fields = ErrorFields::decode(&out[5..]).unwrap();
        assert_eq!(fields.code, "28P01");
        assert!(fields.is_fatal());
        assert!(ErrorFields::decode(b"Sx").is_err());
    }

    #[test]
    fn auth_requests_decode() {
        let mut out = BytesMut::new();
        auth_sasl(&mut out, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        assert_eq!(
            decode_auth(&out[5..]).unwrap(),
            AuthRequest::Sasl(vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        );
        let mut out = BytesMut::new();
        auth_md5(&mut out, [1, 2, 3, 4]);
        assert_eq!(
            decode_auth(&out[5..]).unwrap(),
            AuthRequest::Md5([1, 2, 3, 4])
        );
        assert!(decode_auth(b"\0\0\0\x05\x01").is_err());
    }
}
