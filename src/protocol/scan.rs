//! Cuts a byte stream into messages without buffering large ones whole.
//!
//! Messages whose content the proxy reads arrive as [`Piece::Message`]. Large messages of
//! types it only relays (DataRow, CopyData, a Bind's parameters) are handed on as they
//! arrive: a [`Piece::Start`] with the header and the first bytes, then [`Piece::Chunk`]s, so a
//! 1 GB result or a 50 MB parameter never sits in memory whole.

use super::{tag, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};

/// One piece of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole message, header included (`raw[0]` is the type, the body is `raw[5..]`).
    Message { tag: u8, raw: Bytes },
    /// The header and first bytes of a message relayed in parts; `len` is its full size.
    Start { tag: u8, len: usize, raw: Bytes },
    /// More bytes of the message being relayed in parts.
    Chunk(Bytes),
    /// The header of a large message that must be read whole (a Query, a Parse): before any
    /// more of it is buffered the caller must `admit` it (it fits the memory budget) or
    /// `discard` it (it does not, and is dropped as it arrives).
    Large { tag: u8, len: usize },
}

/// Which direction a scanner reads, which decides what may be streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to proxy: Query and Parse are always whole (they are parsed); Bind streams once
    /// its names are known; CopyData and FunctionCall stream.
    FromClient,
    /// Backend to proxy: only the messages the proxy reads are whole.
    FromBackend,
}

/// Streams larger than this are relayed in parts.
const STREAM_ABOVE: usize = 64 * 1024;
/// A streamed Bind must show its portal and statement names within this many body bytes.
const BIND_HEAD: usize = 1024;

/// The framing state of one direction of a connection.
#[derive(Debug)]
pub struct Scanner {
    direction: Direction,
    max_len: usize,
    /// Bytes of a streamed (or discarded) message still to come.
    remaining: usize,
    /// The bytes still to come are dropped, not handed on.
    discarding: bool,
    /// The large message whose header is next was admitted.
    admitted: bool,
}

impl Scanner {
    pub fn new(direction: Direction, max_len: usize) -> Self {
        Self {
            direction,
            max_len,
            remaining: 0,
            discarding: false,
            admitted: false,
        }
    }

    /// True while a refused message's bytes are being dropped.
    pub fn discarding(&self) -> bool {
        self.discarding
    }

    /// Lets the large message announced by [`Piece::Large`] be buffered whole.
    pub fn admit(&mut self) {
        self.admitted = true;
    }

    /// Drops the large message announced by [`Piece::Large`] as its bytes arrive.
    pub fn discard(&mut self, buf: &mut BytesMut, len: usize) {
        self.admitted = false;
        self.discarding = true;
        self.remaining = len;
        self.drop_discarded(buf);
    }

    fn drop_discarded(&mut self, buf: &mut BytesMut) {
        let n = self.remaining.min(buf.len());
        buf.advance(n);
        self.remaining -= n;
        if self.remaining == 0 {
            self.discarding = false;
        }
    }

    /// True while a streamed message is only partly relayed (a discarded one is never
    /// relayed at all).
    pub fn mid_message(&self) -> bool {
        self.remaining > 0 && !self.discarding
    }

    /// The next piece from `buf`, or `None` when more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, ProtocolError> {
        if self.discarding {
            self.drop_discarded(buf);
            if self.discarding {
                return Ok(None);
            }
        }
        if self.remaining > 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            let n = self.remaining.min(buf.len());
            self.remaining -= n;
            return Ok(Some(Piece::Chunk(buf.split_to(n).freeze())));
        }
        if buf.len() < 5 {
            return Ok(None);
        }
        let message_tag = buf[0];
        let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if declared < 4 {
            return Err(ProtocolError::BadLength(declared.into()));
        }
        let body_len = declared as usize - 4;
        if self.direction == Direction::FromClient && body_len > self.max_len {
            return Err(ProtocolError::TooLarge {
                len: body_len,
                limit: self.max_len,
            });
        }
        let total = body_len + 5;
        let whole = self.direction == Direction::FromClient && !self.streamable(message_tag);
        if whole && total > STREAM_ABOVE && !self.admitted {
            return Ok(Some(Piece::Large {
                tag: message_tag,
                len: total,
            }));
        }
        if buf.len() >= total {
            self.admitted = false;
            return Ok(Some(Piece::Message {
                tag: message_tag,
                raw: buf.split_to(total).freeze(),
            }));
        }
        if body_len > STREAM_ABOVE && self.streamable(message_tag) {
            let head = self.head_needed(message_tag, body_len);
            if buf.len() >= 5 + head {
                let take = buf.len();
                self.remaining = total - take;
                return Ok(Some(Piece::Start {
                    tag: message_tag,
                    len: total,
                    raw: buf.split_to(take).freeze(),
                }));
            }
        }
        // An admitted message gets its whole buffer at once (growing by doubling would hold
        // up to twice its size); otherwise grow only in steps, so a bogus length cannot make
        // us allocate before the bytes exist.
        if self.admitted {
            buf.reserve(total - buf.len());
        } else {
            buf.reserve((total - buf.len()).min(STREAM_ABOVE * 2));
        }
        Ok(None)
    }

    fn streamable(&self, message_tag: u8) -> bool {
        match self.direction {
            Direction::FromClient => {
                matches!(message_tag, tag::BIND | tag::COPY_DATA | tag::FUNCTION_CALL)
            }
            Direction::FromBackend => !matches!(
                message_tag,
                tag::READY_FOR_QUERY
                    | tag::PARAMETER_DESCRIPTION
                    | tag::ROW_DESCRIPTION
                    | tag::ERROR_RESPONSE
                    | tag::COMMAND_COMPLETE
                    | tag::PARAMETER_STATUS
                    | tag::AUTHENTICATION
                    | tag::BACKEND_KEY_DATA
            ),
        }
    }

    fn head_needed(&self, message_tag: u8, body_len: usize) -> usize {
        if self.direction == Direction::FromClient && message_tag == tag::BIND {
            BIND_HEAD.min(body_len)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn message(t: u8, body_len: usize) -> BytesMut {
        let mut m = BytesMut::new();
        m.put_u8(t);
        m.put_i32(body_len as i32 + 4);
        m.put_bytes(7, body_len);
        m
    }

    #[test]
    fn small_messages_come_whole() {
        let mut s = Scanner::new(Direction::FromBackend, 1 << 20);
        let mut buf = message(b'Z', 1);
        buf.extend_from_slice(&message(b'C', 3));
        let first = s.next(&mut buf).unwrap().unwrap();
        assert!(matches!(first, Piece::Message { tag: b'Z', ref raw } if raw.len() == 6));
        let mut partial = buf.split_to(4);
        assert_eq!(s.next(&mut partial).unwrap(), None);
        partial.unsplit(buf);
        assert!(matches!(
            s.next(&mut partial).unwrap(),
            Some(Piece::Message { tag: b'C', .. })
        ));
        assert!(partial.is_empty());
    }

    #[test]
    fn large_data_rows_stream() {
        let mut s = Scanner::new(Direction::FromBackend, 1 << 20);
        let whole = message(b'D', 200_000);
        let mut buf = BytesMut::from(&whole[..100_000]);
        let Some(Piece::Start {
            tag: b'D',
            len,
            raw,
        }) = s.next(&mut buf).unwrap()
        else {
            panic!("expected a streamed start");
        };
        assert_eq!((len, raw.len()), (200_005, 100_000));
        assert!(s.mid_message());
        let mut rest = BytesMut::from(&whole[100_000..]);
        rest.extend_from_slice(&message(b'Z', 1));
        assert!(matches!(s.next(&mut rest).unwrap(), Some(Piece::Chunk(c)) if c.len() == 100_005));
        assert!(matches!(
            s.next(&mut rest).unwrap(),
            Some(Piece::Message { tag: b'Z', .. })
        ));
    }

    #[test]
    fn client_limits_and_bad_lengths() {
        let mut s = Scanner::new(Direction::FromClient, 1000);
        let mut buf = message(b'Q', 2000);
        assert!(matches!(
            s.next(&mut buf),
            Err(ProtocolError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"Q\0\0\0\x02"[..]);
        assert!(matches!(s.next(&mut buf), Err(ProtocolError::BadLength(2))));
        let mut buf = BytesMut::from(&b"Q\xff\xff\xff\xff"[..]);
        assert!(s.next(&mut buf).is_err());
    }

    #[test]
    fn queries_are_never_streamed() {
        let mut s = Scanner::new(Direction::FromClient, 1 << 30);
        let whole = message(b'Q', 300_000);
        let mut buf = BytesMut::from(&whole[..150_000]);
        assert!(matches!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Large { .. })
        ));
        s.admit();
        assert_eq!(s.next(&mut buf).unwrap(), None);
        buf.extend_from_slice(&whole[150_000..]);
        assert!(matches!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Message { tag: b'Q', .. })
        ));
    }

    #[test]
    fn a_large_query_waits_for_admission_or_is_discarded() {
        let mut s = Scanner::new(Direction::FromClient, 1 << 30);
        let mut buf = message(b'Q', 100_000);
        buf.extend_from_slice(&message(b'S', 0));
        assert_eq!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Large {
                tag: b'Q',
                len: 100_005
            })
        );
        // Asked again before a decision: the same answer, nothing consumed.
        assert!(matches!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Large { .. })
        ));
        s.admit();
        assert!(matches!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Message { tag: b'Q', ref raw }) if raw.len() == 100_005
        ));
        assert!(matches!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Message { tag: b'S', .. })
        ));
        // Discarded, in parts: nothing of it comes out, the message after it does.
        let whole = message(b'P', 200_000);
        let mut buf = BytesMut::from(&whole[..70_000]);
        let Some(Piece::Large { len, .. }) = s.next(&mut buf).unwrap() else {
            panic!("announced");
        };
        s.discard(&mut buf, len);
        assert!(buf.is_empty());
        let mut rest = BytesMut::from(&whole[70_000..]);
        rest.extend_from_slice(&message(b'S', 0));
        assert!(matches!(
            s.next(&mut rest).unwrap(),
            Some(Piece::Message { tag: b'S', .. })
        ));
    }
}
