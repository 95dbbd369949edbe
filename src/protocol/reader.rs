//! A bounds-checked cursor over one message body.

use super::ProtocolError;

/// Reads fields out of a message body; every read checks the remaining length.
pub struct BodyReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BodyReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        let b = *self.buf.get(self.pos).ok_or(ProtocolError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        let bytes = self.bytes(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        let bytes = self.bytes(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self.pos.checked_add(n).ok_or(ProtocolError::Truncated)?;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtocolError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    /// A NUL-terminated string as raw bytes (without the NUL).
    pub fn cstr_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let rest = self.remaining();
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ProtocolError::Truncated)?;
        self.pos += nul + 1;
        Ok(&rest[..nul])
    }

    /// A NUL-terminated UTF-8 string; `what` names the field in errors.
    pub fn cstr(&mut self, what: &'static str) -> Result<&'a str, ProtocolError> {
        std::str::from_utf8(self.cstr_bytes()?).map_err(|_| ProtocolError::BadUtf8(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut r = BodyReader::new(b"ab\0\x00\x01");
        assert_eq!(r.cstr("name").unwrap(), "ab");
        assert_eq!(r.i16().unwrap(), 1);
        assert_eq!(r.u8(), Err(ProtocolError::Truncated));
        assert_eq!(
            BodyReader::new(b"abc").cstr("x"),
            Err(ProtocolError::Truncated)
        );
        assert_eq!(
            BodyReader::new(b"\xff\0").cstr("x"),
            Err(ProtocolError::BadUtf8("x"))
        );
        assert_eq!(
            BodyReader::new(b"\0\0").i32(),
            Err(ProtocolError::Truncated)
        );
    }
}
