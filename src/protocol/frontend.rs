//! Client messages the proxy looks inside (Query, Parse, Bind's header, Describe, Close, the
//! authentication responses), and their re-encodings when the proxy renames a statement.

use super::encoding::TextEncoding;
use super::{tag, BodyReader, ProtocolError};
use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// Appends a complete message (type byte, length, body) to `out`.
pub fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(5 + body.len());
    out.put_u8(tag);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(body);
}

/// The SQL text of a simple Query, read in the client's encoding.
pub fn query_text(body: &[u8], encoding: TextEncoding) -> Result<Cow<'_, str>, ProtocolError> {
    Ok(encoding.decode(BodyReader::new(body).cstr_bytes()?)?)
}

/// Encodes a simple Query message of the proxy's own (ASCII, or UTF-8 on a UTF-8 session).
pub fn query(out: &mut BytesMut, sql: &str) {
    query_in(out, sql, TextEncoding::Utf8);
}

/// Encodes a simple Query message of text read from the client in `encoding`.
pub fn query_in(out: &mut BytesMut, sql: &str, encoding: TextEncoding) {
    out.put_u8(tag::QUERY);
    out.put_i32((encoding.encoded_len(sql) + 5) as i32);
    encoding.put(out, sql);
    out.put_u8(0);
}

/// A Parse message.
#[derive(Debug, PartialEq, Eq)]
pub struct Parse<'a> {
    pub name: &'a str,
    pub query: Cow<'a, str>,
    /// The parameter-type section (count + OIDs), kept raw.
    pub param_types: &'a [u8],
    /// How `query` was read from the client's bytes, and is written back.
    pub encoding: TextEncoding,
}

impl<'a> Parse<'a> {
    pub fn decode(body: &'a [u8], encoding: TextEncoding) -> Result<Self, ProtocolError> {
        let mut r = BodyReader::new(body);
        let name = r.cstr("statement name")?;
        let query = encoding.decode(r.cstr_bytes()?)?;
        let param_types = r.remaining();
        let count = BodyReader::new(param_types).i16()?;
        if count < 0 || param_types.len() != 2 + 4 * count as usize {
            return Err(ProtocolError::Invalid("malformed parameter types in Parse"));
        }
        Ok(Self {
            name,
            query,
            param_types,
            encoding,
        })
    }

    /// Encodes this Parse under another statement name.
    pub fn encode_as(&self, out: &mut BytesMut, name: &str) {
        let query_len = self.encoding.encoded_len(&self.query);
        let len = 4 + name.len() + 1 + query_len + 1 + self.param_types.len();
        out.reserve(len + 1);
        out.put_u8(tag::PARSE);
        out.put_i32(len as i32);
        out.put_slice(name.as_bytes());
        out.put_u8(0);
        self.encoding.put(out, &self.query);
        out.put_u8(0);
        out.put_slice(self.param_types);
    }
}

/// The start of a Bind message: enough to rename its statement without touching parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct BindHead<'a> {
    pub portal: &'a [u8],
    pub statement: &'a str,
    /// Offset in the body where the parameter section starts.
    pub rest_offset: usize,
}

impl<'a> BindHead<'a> {
    /// Decodes from a body prefix; `Truncated` means more bytes are needed.
    pub fn decode(prefix: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = BodyReader::new(prefix);
        let portal = r.cstr_bytes()?;
        let statement = r.cstr("statement name")?;
        Ok(Self {
            portal,
            statement,
            rest_offset: r.position(),
        })
    }

    /// Writes the header of a Bind for `statement`, whose body continues with `rest_len`
    /// bytes the caller writes (or streams) afterwards.
    pub fn encode_head_as(&self, out: &mut BytesMut, statement: &str, rest_len: usize) {
        let len = 4 + self.portal.len() + 1 + statement.len() + 1 + rest_len;
        out.put_u8(tag::BIND);
        out.put_i32(len as i32);
        out.put_slice(self.portal);
        out.put_u8(0);
        out.put_slice(statement.as_bytes());
        out.put_u8(0);
    }
}

/// The parameter values of a Bind (after its head) and the result format it asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct BindValues<'a> {
    /// Each parameter's bytes (`None` for NULL) and whether it is in binary format.
    pub params: Vec<(Option<&'a [u8]>, bool)>,
    /// The format of every result column, when the client gave a single one (0 or 1).
    pub result_format: i16,
}

impl<'a> BindValues<'a> {
    /// Decodes the part of a Bind body after [`BindHead::rest_offset`].
    pub fn decode(rest: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = BodyReader::new(rest);
        // Counts are only claims: reserve no more than the bytes left can hold, so a short
        // Bind declaring 32767 parameters cannot make us allocate 800 kB (found by fuzzing).
        let format_count = r.i16()?.max(0) as usize;
        let mut formats = Vec::with_capacity(format_count.min(r.remaining().len() / 2));
        for _ in 0..format_count {
            formats.push(r.i16()? == 1);
        }
        let count = r.i16()?.max(0) as usize;
        let mut params = Vec::with_capacity(count.min(r.remaining().len() / 4));
        for i in 0..count {
            let len = r.i32()?;
            let value = if len < 0 {
                None
            } else {
                Some(r.bytes(len as usize)?)
            };
            let binary = match formats.as_slice() {
                [] => false,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(false),
            };
            params.push((value, binary));
        }
        let result_formats = r.i16()?.max(0) as usize;
        let mut result_format = 0;
        for _ in 0..result_formats {
            result_format = r.i16()?;
        }
        Ok(Self {
            params,
            result_format,
        })
    }
}

/// Describe or Close: a kind byte (`S` statement, `P` portal) and a name.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: u8,
    pub name: &'a str,
}

impl<'a> Target<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = BodyReader::new(body);
        let kind = r.u8()?;
        if kind != b'S' && kind != b'P' {
            return Err(ProtocolError::Invalid(
                "Describe/Close kind must be 'S' or 'P'",
            ));
        }
        let name = r.cstr("name")?;
        Ok(Self { kind, name })
    }

    pub fn is_statement(&self) -> bool {
        self.kind == b'S'
    }

    pub fn encode_as(&self, out: &mut BytesMut, message_tag: u8, name: &str) {
        out.put_u8(message_tag);
        out.put_i32((4 + 1 + name.len() + 1) as i32);
        out.put_u8(self.kind);
        out.put_slice(name.as_bytes());
        out.put_u8(0);
    }
}

/// Encodes a Close of a prepared statement.
pub fn close_statement(out: &mut BytesMut, name: &str) {
    Target { kind: b'S', name }.encode_as(out, tag::CLOSE, name);
}

/// Encodes a Close of a portal.
pub fn close_portal(out: &mut BytesMut, name: &str) {
    Target { kind: b'P', name }.encode_as(out, tag::CLOSE, name);
}

/// Encodes Parse, Bind and Execute of `sql` with text parameters, as statement and portal
/// `name`: what the proxy sends when a value must not appear in statement text.
pub fn parse_bind_execute(out: &mut BytesMut, name: &str, sql: &str, params: &[&str]) {
    let parse = Parse {
        name,
        query: Cow::Borrowed(sql),
        param_types: &[0, 0],
        encoding: TextEncoding::Utf8,
    };
    parse.encode_as(out, name);
    let mut body = BytesMut::new();
    for part in [name, name] {
        body.put_slice(part.as_bytes());
        body.put_u8(0);
    }
    body.put_i16(0); // every parameter in text format
    body.put_i16(params.len() as i16);
    for value in params {
        body.put_i32(value.len() as i32);
        body.put_slice(value.as_bytes());
    }
    body.put_i16(0); // results in text format
    put_message(out, tag::BIND, &body);
    let mut body = BytesMut::new();
    body.put_slice(name.as_bytes());
    body.put_u8(0);
    body.put_i32(0);
    put_message(out, tag::EXECUTE, &body);
}

/// Encodes a Sync.
pub fn sync(out: &mut BytesMut) {
    put_message(out, tag::SYNC, &[]);
}

/// Encodes a Flush: the backend sends what it holds for earlier messages, nothing else.
pub fn flush(out: &mut BytesMut) {
    put_message(out, tag::FLUSH, &[]);
}

/// Encodes a Describe of a prepared statement.
pub fn describe_statement(out: &mut BytesMut, name: &str) {
    Target { kind: b'S', name }.encode_as(out, tag::DESCRIBE, name);
}

/// A SASLInitialResponse: mechanism and initial client data.
pub fn sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), ProtocolError> {
    let mut r = BodyReader::new(body);
    let mechanism = r.cstr("SASL mechanism")?;
    let len = r.i32()?;
    let data = if len < 0 {
        &[][..]
    } else {
        r.bytes(len as usize)?
    };
    Ok((mechanism, data))
}

/// A cleartext or md5 PasswordMessage: the NUL-terminated response.
pub fn password(body: &[u8]) -> Result<&[u8], ProtocolError> {
    BodyReader::new(body).cstr_bytes()
}

/// Encodes a SASLInitialResponse (proxy to backend).
pub fn encode_sasl_initial(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let mut body = BytesMut::with_capacity(mechanism.len() + 5 + data.len());
    body.put_slice(mechanism.as_bytes());
    body.put_u8(0);
    body.put_i32(data.len() as i32);
    body.put_slice(data);
    put_message(out, tag::PASSWORD, &body);
}

/// Encodes a PasswordMessage carrying a NUL-terminated string (cleartext or md5).
pub fn encode_password(out: &mut BytesMut, password: &[u8]) {
    let mut body = password.to_vec();
    body.push(0);
    put_message(out, tag::PASSWORD, &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &BytesMut) -> &[u8] {
        &bytes[5..]
    }

    #[test]
    fn parse_rename_round_trip() {
        let raw = b"s1\0select $1\0\x00\x01\x00\x00\x00\x17";
        let parse = Parse::decode(raw, TextEncoding::Utf8).unwrap();
        assert_eq!((parse.name, &*parse.query), ("s1", "select $1"));
        let mut out = BytesMut::new();
        parse.encode_as(&mut out, "rv_abc");
        let again = Parse::decode(body(&out), TextEncoding::Utf8).unwrap();
        assert_eq!(
            (again.name, again.param_types),
            ("rv_abc", parse.param_types)
        );
        assert_eq!(
            out.len() - 1,
            i32::from_be_bytes(out[1..5].try_into().unwrap()) as usize
        );
    }

    #[test]
    fn malformed_parse_is_rejected() {
        assert!(
            Parse::decode(b"s1\0select\0\x00\x02\x00\x00\x00\x17", TextEncoding::Utf8).is_err()
        );
        assert!(Parse::decode(b"s1\0select\0\xff\xff", TextEncoding::Utf8).is_err());
        assert!(Parse::decode(b"s1", TextEncoding::Utf8).is_err());
    }

    #[test]
    fn bind_head_rename_keeps_the_rest() {
        let raw = b"\0s1\0\x00\x00\x00\x00\x00\x00";
        let head = BindHead::decode(raw).unwrap();
        assert_eq!(head.statement, "s1");
        let rest = &raw[head.rest_offset..];
        let mut out = BytesMut::new();
        head.encode_head_as(&mut out, "rv_x", rest.len());
        out.put_slice(rest);
        let again = BindHead::decode(body(&out)).unwrap();
        assert_eq!(again.statement, "rv_x");
        assert_eq!(&body(&out)[again.rest_offset..], rest);
    }

    /// Counts beyond what the body holds are an error, and reserve nothing for the missing
    /// values (the allocation itself is checked by fuzz/regressions/decoder).
    #[test]
    fn bind_counts_beyond_the_body() {
        let values = BindValues::decode(
            b"\x00\x01\x00\x01\x00\x02\x00\x00\x00\x01x\xff\xff\xff\xff\x00\x00",
        )
        .unwrap();
        assert_eq!(values.params, [(Some(&b"x"[..]), true), (None, true)]);
        assert!(values.params.capacity() <= 2);
        let claims = b"\x00\x00\x7f\xff\x00\x00\x00\x02hi";
        assert_eq!(BindValues::decode(claims), Err(ProtocolError::Truncated));
    }

    #[test]
    fn targets_and_auth_messages() {
        assert_eq!(Target::decode(b"Sfoo\0").unwrap().name, "foo");
        assert!(Target::decode(b"Xfoo\0").is_err());
        assert!(Target::decode(b"").is_err());
        assert_eq!(
            sasl_initial(b"M\0\x00\x00\x00\x02hi").unwrap(),
            ("M", &b"hi"[..])
        );
        assert!(sasl_initial(b"M\0\x00\x00\x00\x09hi").is_err());
        assert_eq!(sasl_initial(b"M\0\xff\xff\xff\xff").unwrap().1, b"");
    }
}
