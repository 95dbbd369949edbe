//! The message framing (`protocol::scan`) and the decoders of the messages the proxy reads,
//! in both directions.
//!
//! Input: byte 0 picks the direction (bit 0) and the client message limit (bits 1–2);
//! byte 1 the size of the reads the stream arrives in (0: all at once); the rest is the
//! stream. Properties: no panic; no single allocation larger than a small multiple of the
//! input plus the scanner's read-ahead, whatever the lengths and counts on the wire say;
//! whole messages are framed exactly as declared and within the limit; streamed messages add
//! up to their declared length; a decoded message re-encodes to the same bytes (Parse, Bind's
//! head) or decodes back to the same value (Describe, Close).

use bytes::BytesMut;
use redveil::protocol::backend::{self, ErrorFields};
use redveil::protocol::encoding::TextEncoding;
use redveil::protocol::frontend::{self, BindHead, BindValues, Parse, Target};
use redveil::protocol::scan::{Direction, Piece, Scanner};
use redveil::protocol::{startup, tag};

const LIMITS: [usize; 4] = [16 * 1024, 64, 1 << 20, 200_000];
/// The scanner reserves at most this much beyond what it holds (twice its streaming step).
const READ_AHEAD: usize = 2 * 64 * 1024;

pub fn check(data: &[u8]) {
    let [mode, read_size, stream @ ..] = data else {
        return;
    };
    let direction = if mode & 1 == 0 {
        Direction::FromClient
    } else {
        Direction::FromBackend
    };
    let limit = LIMITS[usize::from(mode >> 1) % LIMITS.len()];
    let read_size = if *read_size == 0 {
        stream.len().max(1)
    } else {
        usize::from(*read_size)
    };
    crate::alloc::reset();
    // The proxy admits a large whole message only within its memory budget; here the budget
    // is the input itself, so an admitted message's buffer is bounded as below.
    let mut relay = Relay::new(direction, limit, data.len());
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(read_size) {
        buf.extend_from_slice(chunk);
        if !relay.drain(&mut buf) {
            break;
        }
    }
    // Vec and BytesMut may double what they hold when they grow.
    let bound = 2 * (data.len() + READ_AHEAD) + 4096;
    let largest = crate::alloc::largest();
    assert!(
        largest <= bound,
        "allocated {largest} bytes at once for {} input bytes",
        data.len()
    );
}

/// One direction of a connection: the scanner and what is owed of a streamed message.
struct Relay {
    scanner: Scanner,
    direction: Direction,
    limit: usize,
    streaming: usize,
    budget: usize,
}

impl Relay {
    fn new(direction: Direction, limit: usize, budget: usize) -> Self {
        Self {
            scanner: Scanner::new(direction, limit),
            direction,
            limit,
            streaming: 0,
            budget,
        }
    }

    /// Takes every piece `buf` holds; false once the stream is refused.
    fn drain(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            let before = buf.len();
            // A refused message's bytes are dropped as they come, with no piece.
            let was_discarding = self.scanner.discarding();
            match self.scanner.next(buf) {
                Err(_) => return false,
                Ok(None) => {
                    if !was_discarding {
                        assert_eq!(buf.len(), before, "no piece, yet bytes were taken");
                    }
                    return true;
                }
                Ok(Some(Piece::Large { tag, len })) => {
                    assert_eq!(self.streaming, 0, "a message announced inside another");
                    assert_eq!(self.direction, Direction::FromClient);
                    assert_eq!(buf[0], tag);
                    assert!(len - 5 <= self.limit);
                    if len <= self.budget {
                        self.scanner.admit();
                    } else {
                        self.scanner.discard(buf, len);
                    }
                }
                Ok(Some(piece)) => self.piece(piece),
            }
            assert_eq!(self.scanner.mid_message(), self.streaming > 0);
        }
    }

    fn piece(&mut self, piece: Piece) {
        match piece {
            Piece::Large { .. } => unreachable!("decided in drain"),
            Piece::Chunk(bytes) => {
                assert!(!bytes.is_empty() && bytes.len() <= self.streaming);
                self.streaming -= bytes.len();
            }
            Piece::Start { tag, len, raw } => {
                assert_eq!(self.streaming, 0, "a message started inside another");
                assert_eq!(raw[0], tag);
                assert_eq!(declared(&raw) + 1, len);
                assert!(raw.len() < len, "a whole message was streamed");
                if self.direction == Direction::FromClient {
                    assert!(len - 5 <= self.limit);
                }
                self.streaming = len - raw.len();
            }
            Piece::Message { tag, raw } => {
                assert_eq!(self.streaming, 0, "a message started inside another");
                assert_eq!(raw[0], tag);
                assert_eq!(declared(&raw) + 1, raw.len());
                if self.direction == Direction::FromClient {
                    assert!(raw.len() - 5 <= self.limit);
                    client_message(tag, &raw);
                } else {
                    backend_message(tag, &raw[5..]);
                }
            }
        }
    }
}

fn declared(raw: &[u8]) -> usize {
    i32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize
}

/// Decodes what the proxy decodes of a client message, and encodes it back.
fn client_message(message_tag: u8, raw: &[u8]) {
    let body = &raw[5..];
    match message_tag {
        tag::QUERY => {
            if let Ok(sql) = frontend::query_text(body, TextEncoding::Utf8) {
                let mut out = BytesMut::new();
                frontend::query(&mut out, &sql);
                assert_eq!(frontend::query_text(&out[5..], TextEncoding::Utf8), Ok(sql));
            }
            // Read one char per byte (a LATIN1 client), written back byte for byte.
            let latin1 = TextEncoding::of("LATIN1");
            if let Ok(sql) = frontend::query_text(body, latin1) {
                let mut out = BytesMut::new();
                frontend::query_in(&mut out, &sql, latin1);
                // The text ends at the first NUL, whatever the body holds after it.
                let text_len = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                assert_eq!(&out[5..out.len() - 1], &body[..text_len]);
                assert_eq!(frontend::query_text(&out[5..], latin1), Ok(sql));
            }
        }
        tag::PARSE => {
            if let Ok(parse) = Parse::decode(body, TextEncoding::Utf8) {
                let mut out = BytesMut::new();
                parse.encode_as(&mut out, parse.name);
                assert_eq!(&out[..], raw, "Parse re-encodes differently");
            }
        }
        tag::BIND => {
            if let Ok(head) = BindHead::decode(body) {
                let rest = &body[head.rest_offset..];
                let mut out = BytesMut::new();
                head.encode_head_as(&mut out, head.statement, rest.len());
                out.extend_from_slice(rest);
                assert_eq!(&out[..], raw, "Bind re-encodes differently");
                if let Ok(values) = BindValues::decode(rest) {
                    let inside = rest.as_ptr_range();
                    for value in values.params.iter().filter_map(|(v, _)| *v) {
                        let range = value.as_ptr_range();
                        assert!(inside.start <= range.start && range.end <= inside.end);
                    }
                }
            }
        }
        tag::DESCRIBE | tag::CLOSE => {
            if let Ok(target) = Target::decode(body) {
                let mut out = BytesMut::new();
                target.encode_as(&mut out, message_tag, target.name);
                assert_eq!(Target::decode(&out[5..]), Ok(target));
            }
        }
        tag::PASSWORD => {
            if let Ok((mechanism, data)) = frontend::sasl_initial(body) {
                let mut out = BytesMut::new();
                frontend::encode_sasl_initial(&mut out, mechanism, data);
                assert_eq!(frontend::sasl_initial(&out[5..]), Ok((mechanism, data)));
            }
            if let Ok(password) = frontend::password(body) {
                let mut out = BytesMut::new();
                frontend::encode_password(&mut out, password);
                assert_eq!(frontend::password(&out[5..]), Ok(password));
            }
        }
        _ => {}
    }
}

/// Decodes what the proxy decodes of a backend message.
fn backend_message(message_tag: u8, body: &[u8]) {
    match message_tag {
        tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE => {
            if let Ok(fields) = ErrorFields::decode(body) {
                let _ = fields.is_fatal();
            }
        }
        tag::PARAMETER_STATUS => {
            if let Ok((name, value)) = backend::decode_parameter_status(body) {
                let mut out = BytesMut::new();
                backend::parameter_status(&mut out, &name, &value);
                assert_eq!(
                    backend::decode_parameter_status(&out[5..]),
                    Ok((name, value))
                );
            }
        }
        tag::COMMAND_COMPLETE => {
            let _ = backend::decode_command_tag(body);
        }
        tag::AUTHENTICATION => {
            let _ = backend::decode_auth(body);
        }
        tag::BACKEND_KEY_DATA => {
            if let Ok((pid, secret)) = backend::decode_backend_key(body) {
                let cancel = startup::encode_cancel(pid, secret);
                assert_eq!(
                    startup::decode(&cancel[4..]),
                    Ok(startup::InitialPacket::Cancel { pid, secret })
                );
            }
        }
        _ => {}
    }
}
