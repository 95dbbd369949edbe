//! How the proxy reads and writes SQL text in the client's encoding.
//!
//! The server converts a client's bytes from `client_encoding`; the proxy never converts, it
//! only needs to see the text's structure (quotes, identifiers, keywords), which is ASCII. In
//! every encoding PostgreSQL can use on the server side a byte below 0x80 is that ASCII
//! character and nothing else, so such text is read one char per byte (Latin-1, lossless) and
//! written back byte for byte. The client-only encodings (SJIS, BIG5, GBK, UHC, GB18030,
//! JOHAB) hide ASCII bytes, a quote or a backslash among them, inside multibyte characters:
//! there the proxy reads ASCII-only text and refuses the rest rather than guess.

use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// How the text of a client's messages is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextEncoding {
    /// UTF8 (or an encoding the proxy has not been told about): the bytes must be UTF-8.
    #[default]
    Utf8,
    /// A server-side encoding other than UTF8: one char per byte. The same char means
    /// different letters in LATIN1 and KOI8R, so the encoding (a digest of its name) stays
    /// with the text wherever statements are shared.
    Bytewise(u64),
    /// A client-only multibyte encoding: only ASCII text can be read safely.
    AsciiOnly,
}

impl TextEncoding {
    /// The mode for a `client_encoding` value, written as PostgreSQL accepts it (any case,
    /// punctuation ignored, aliases such as `latin1`, `ISO-8859-1`, `win1252`).
    pub fn of(client_encoding: &str) -> Self {
        let key: String = client_encoding
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "utf8" | "unicode" => Self::Utf8,
            "sjis" | "mskanji" | "shiftjis" | "win932" | "windows932" | "shiftjis2004" | "big5"
            | "win950" | "windows950" | "gbk" | "win936" | "windows936" | "uhc" | "win949"
            | "windows949" | "gb18030" | "johab" => Self::AsciiOnly,
            // FNV-1a: stable, and enough to tell some forty names apart.
            _ => Self::Bytewise(key.bytes().fold(0xcbf29ce484222325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            })),
        }
    }

    /// The text of `bytes` for the proxy to read.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Result<Cow<'a, str>, TextError> {
        match self {
            Self::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| TextError::InvalidUtf8(invalid_sequence(bytes, e))),
            _ if bytes.is_ascii() => Ok(Cow::Borrowed(
                std::str::from_utf8(bytes).expect("ASCII is UTF-8"),
            )),
            Self::Bytewise(_) => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
            Self::AsciiOnly => Err(TextError::NotAscii),
        }
    }

    /// Appends `text` (read by `decode`, possibly rewritten) as the client's encoding wants
    /// it. A char outside one byte can only come from the proxy (a registered name written in
    /// UTF-8 in the catalog); it goes as UTF-8, so the server finds no such name and fails.
    pub fn put(self, out: &mut BytesMut, text: &str) {
        if self == Self::Utf8 || text.is_ascii() {
            out.put_slice(text.as_bytes());
            return;
        }
        let mut buf = [0; 4];
        for c in text.chars() {
            match u8::try_from(c) {
                Ok(byte) => out.put_u8(byte),
                Err(_) => out.put_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
    }

    /// How many bytes `put` writes for `text`.
    pub fn encoded_len(self, text: &str) -> usize {
        if self == Self::Utf8 || text.is_ascii() {
            return text.len();
        }
        text.chars()
            .map(|c| {
                if u32::from(c) < 0x100 {
                    1
                } else {
                    c.len_utf8()
                }
            })
            .sum()
    }
}

/// Text the proxy cannot read in the client's encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// As PostgreSQL words it (SQLSTATE 22021).
    #[error("invalid byte sequence for encoding \"UTF8\": {0}")]
    InvalidUtf8(String),
    #[error("redveil reads statements in this client_encoding only when they are plain ASCII: its multibyte characters can hide a quote or a backslash; use UTF8")]
    NotAscii,
}

impl TextError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Self::InvalidUtf8(_) => "22021",
            Self::NotAscii => "0A000",
        }
    }
}

/// The offending bytes as PostgreSQL shows them: as many as the first one announces.
fn invalid_sequence(bytes: &[u8], e: std::str::Utf8Error) -> String {
    let rest = &bytes[e.valid_up_to()..];
    let announced = match rest[0] {
        b if b & 0xe0 == 0xc0 => 2,
        b if b & 0xf0 == 0xe0 => 3,
        b if b & 0xf8 == 0xf0 => 4,
        _ => 1,
    };
    rest.iter()
        .take(announced)
        .map(|b| format!("0x{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATIN1: TextEncoding = TextEncoding::Bytewise(0);

    #[test]
    fn encodings_are_named_as_postgresql_accepts_them() {
        assert_eq!(TextEncoding::of("UTF8"), TextEncoding::Utf8);
        assert_eq!(TextEncoding::of("utf-8"), TextEncoding::Utf8);
        assert_eq!(TextEncoding::of("Unicode"), TextEncoding::Utf8);
        assert_eq!(TextEncoding::of("LATIN1"), TextEncoding::of("latin-1"));
        assert_ne!(TextEncoding::of("LATIN1"), TextEncoding::of("KOI8R"));
        assert!(matches!(
            TextEncoding::of("iso-8859-5"),
            TextEncoding::Bytewise(_)
        ));
        assert!(matches!(
            TextEncoding::of("KOI8R"),
            TextEncoding::Bytewise(_)
        ));
        assert!(matches!(
            TextEncoding::of("EUC_JP"),
            TextEncoding::Bytewise(_)
        ));
        assert!(matches!(
            TextEncoding::of("SQL_ASCII"),
            TextEncoding::Bytewise(_)
        ));
        assert_eq!(TextEncoding::of("sjis"), TextEncoding::AsciiOnly);
        assert_eq!(TextEncoding::of("Shift_JIS_2004"), TextEncoding::AsciiOnly);
        assert_eq!(TextEncoding::of("WIN950"), TextEncoding::AsciiOnly);
        assert_eq!(TextEncoding::of("GB18030"), TextEncoding::AsciiOnly);
    }

    #[test]
    fn bytewise_text_goes_back_byte_for_byte() {
        let bytes = b"SELECT 'caf\xe9', \"\xc0\xff\" FROM t";
        let text = LATIN1.decode(bytes).unwrap();
        assert!(text.contains("'caf\u{e9}'"));
        let mut out = BytesMut::new();
        LATIN1.put(&mut out, &text);
        assert_eq!(&out[..], bytes);
        assert_eq!(LATIN1.encoded_len(&text), bytes.len());
    }

    #[test]
    fn invalid_utf8_is_named_like_the_server_names_it() {
        let err = TextEncoding::Utf8
            .decode(b"SELECT '\xe9t\xe9'")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid byte sequence for encoding \"UTF8\": 0xe9 0x74 0xe9"
        );
        assert_eq!(err.sqlstate(), "22021");
        let err = TextEncoding::Utf8.decode(b"x\xff").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid byte sequence for encoding \"UTF8\": 0xff"
        );
    }

    #[test]
    fn client_only_multibyte_encodings_are_read_only_as_ascii() {
        assert_eq!(
            TextEncoding::AsciiOnly.decode(b"SELECT 1").unwrap(),
            "SELECT 1"
        );
        // 0x95 0x5c is one SJIS character whose second byte is a backslash.
        assert_eq!(
            TextEncoding::AsciiOnly.decode(b"SELECT '\x95\x5c'"),
            Err(TextError::NotAscii)
        );
    }

    #[test]
    fn a_wide_char_the_proxy_wrote_goes_as_utf8() {
        let mut out = BytesMut::new();
        LATIN1.put(&mut out, "\u{e9}\u{3b1}");
        assert_eq!(&out[..], b"\xe9\xce\xb1");
        assert_eq!(LATIN1.encoded_len("\u{e9}\u{3b1}"), 3);
    }
}
