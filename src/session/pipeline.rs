//! The responses a backend connection still owes, in order. Extended-protocol clients pipeline
//! many messages before a Sync; because the proxy renames, injects and answers some of them
//! itself, it must know which backend reply belongs to which client message to relay, drop or
//! synthesise replies in exactly the order the client expects.

use super::ShapeCell;
use crate::rewrite::SessionCommand;
use bytes::Bytes;
use std::collections::VecDeque;

/// One reply (or group of replies) the backend owes.
#[derive(Debug)]
pub enum Expect {
    /// ParseComplete; `backend_name` is recorded as prepared on success.
    ParseComplete {
        forward: bool,
        backend_name: Option<String>,
    },
    BindComplete,
    /// CloseComplete; `backend_name` for a Close of one of the proxy's statements.
    CloseComplete {
        forward: bool,
        backend_name: Option<String>,
    },
    /// ParameterDescription (statements) then RowDescription or NoData.
    Describe,
    /// The replies to the proxy's own Describe of a statement it just prepared, dropped:
    /// they fill in the shape of that preparation (see `session::shape`). `params` holds the
    /// ParameterDescription until the RowDescription or NoData completes it.
    Shape {
        cell: ShapeCell,
        params: Option<Bytes>,
    },
    /// Rows then CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute {
        command: Option<SessionCommand>,
    },
    /// ReadyForQuery after a Sync.
    Sync,
    /// A simple query's results up to ReadyForQuery; `forward` is false for queries the proxy
    /// injected itself.
    Query {
        forward: bool,
        commands: VecDeque<SessionCommand>,
        /// Statements of the string whose replies the proxy replaces with its own.
        substitutions: VecDeque<Substitution>,
    },
    /// FunctionCallResponse then ReadyForQuery.
    FunctionCall,
    /// A reply the proxy produces itself once everything before it has been relayed.
    Synthetic(Bytes),
    /// The proxy's answer to an impersonation statement or SHOW. `ready`: a simple query, so
    /// a ReadyForQuery follows, with the transaction status as it is once everything before
    /// it has been relayed (when it was queued, statements pipelined ahead of it, a BEGIN
    /// say, may not have been answered yet). `impersonation`: releasing it settles the oldest
    /// queued change (`Impersonation::settle`): after a simple query outside a transaction it
    /// commits then; otherwise the transaction's end decides, as for any statement.
    Answer {
        reply: Bytes,
        ready: bool,
        impersonation: bool,
    },
    /// The replies to an identity pin (see proxy/pins.rs), dropped. `synced`: it carries its
    /// own Sync, so it ends at its ReadyForQuery and its errors are dropped too (it fails only
    /// inside an already failed transaction, where the client's statement fails the same
    /// way). Otherwise it was sent inside the client's batch and ends when both its Closes
    /// are answered (`closes_left`); an error there is the batch's.
    Pin {
        synced: bool,
        closes_left: u8,
    },
    /// The ErrorResponse to a statement the proxy refused: the backend was sent a syntax error
    /// in its place, so its transaction state follows PostgreSQL's exactly, and the proxy's
    /// own ErrorResponse is relayed instead of the backend's.
    Refused(Bytes),
}

/// A statement of a simple query answered by the proxy: the backend's replies to statement
/// `index` (0-based) are dropped and `reply` is relayed in their place.
#[derive(Debug)]
pub struct Substitution {
    pub index: usize,
    pub reply: Bytes,
    /// It changes the identity: the change is queued until then (see
    /// `Impersonation::settle`), and never happens if an error ends the string before it.
    pub impersonation: bool,
}

impl Expect {
    /// Whether replies belonging to this expectation reach the client.
    pub fn forwards(&self) -> bool {
        match self {
            Expect::ParseComplete { forward, .. }
            | Expect::CloseComplete { forward, .. }
            | Expect::Query { forward, .. } => *forward,
            Expect::Pin { .. } | Expect::Shape { .. } => false,
            _ => true,
        }
    }
}

/// What `skip_to_sync` dropped.
#[derive(Debug, Default, PartialEq)]
pub struct Skipped {
    /// The proxy's statement names whose Parse or Close never happened: each may now exist
    /// in a version the proxy does not know.
    pub unprepared: Vec<String>,
    /// Impersonation changes never made (the oldest queued ones; see `Impersonation::queue`).
    pub impersonations: usize,
    /// An identity pin was among them: the backend never ran it.
    pub pin: bool,
}

/// The queue of expectations for the backend connection a client holds.
#[derive(Debug, Default)]
pub struct Pipeline {
    queue: VecDeque<Expect>,
}

impl Pipeline {
    pub fn push(&mut self, expect: Expect) {
        self.queue.push_back(expect);
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn front(&self) -> Option<&Expect> {
        self.queue.front()
    }

    pub fn front_mut(&mut self) -> Option<&mut Expect> {
        self.queue.front_mut()
    }

    pub fn pop(&mut self) -> Option<Expect> {
        self.queue.pop_front()
    }

    /// Moves the synthetic replies now at the head into `out`; `tx_status` is the session's
    /// status now. Returns, for each impersonation change among them, whether it was answered
    /// outside a transaction block (so commits now), in order.
    pub fn emit_synthetic(&mut self, out: &mut bytes::BytesMut, tx_status: u8) -> Vec<bool> {
        let mut settled = Vec::new();
        while matches!(
            self.queue.front(),
            Some(Expect::Synthetic(_) | Expect::Answer { .. })
        ) {
            match self.queue.pop_front() {
                Some(Expect::Synthetic(bytes)) => out.extend_from_slice(&bytes),
                Some(Expect::Answer {
                    reply,
                    ready,
                    impersonation,
                }) => {
                    out.extend_from_slice(&reply);
                    if ready {
                        crate::protocol::backend::ready_for_query(out, tx_status);
                    }
                    if impersonation {
                        settled.push(ready && tx_status == super::IDLE);
                    }
                }
                _ => {}
            }
        }
        settled
    }

    /// After an error in the extended protocol the backend skips everything up to the next
    /// Sync; drop those expectations, and the proxy's own answers among them (PostgreSQL
    /// would not have run those statements either).
    pub fn skip_to_sync(&mut self) -> Skipped {
        let mut skipped = Skipped::default();
        while let Some(front) = self.queue.front() {
            if matches!(
                front,
                Expect::Sync
                    | Expect::Query { .. }
                    | Expect::FunctionCall
                    | Expect::Pin { synced: true, .. }
            ) {
                break;
            }
            match self.queue.pop_front() {
                // A pin sent inside the batch is skipped as well.
                Some(Expect::Pin { .. }) => skipped.pin = true,
                Some(
                    Expect::ParseComplete {
                        backend_name: Some(name),
                        ..
                    }
                    | Expect::CloseComplete {
                        backend_name: Some(name),
                        ..
                    },
                ) => skipped.unprepared.push(name),
                Some(Expect::Answer {
                    impersonation: true,
                    ..
                }) => skipped.impersonations += 1,
                _ => {}
            }
        }
        skipped
    }

    /// Removes the Syncs queued directly behind the front expectation (the backend entered
    /// COPY IN for it and ignores them).
    pub fn drop_syncs_behind_front(&mut self) {
        while matches!(self.queue.get(1), Some(Expect::Sync)) {
            self.queue.remove(1);
        }
    }

    /// Whether the replies that fill in `cell` are still to come.
    pub fn awaits_shape(&self, cell: &ShapeCell) -> bool {
        self.queue
            .iter()
            .any(|e| matches!(e, Expect::Shape { cell: c, .. } if c.is(cell)))
    }

    /// Forgets everything (the backend connection is gone).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_to_sync_reports_what_never_happened() {
        let mut p = Pipeline::default();
        p.push(Expect::BindComplete);
        p.push(Expect::ParseComplete {
            forward: false,
            backend_name: Some("rv1".into()),
        });
        p.push(Expect::Shape {
            cell: ShapeCell::default(),
            params: None,
        });
        p.push(Expect::CloseComplete {
            forward: false,
            backend_name: Some("rv0".into()),
        });
        p.push(Expect::Synthetic(Bytes::from_static(b"1\0\0\0\x04")));
        p.push(Expect::Answer {
            reply: Bytes::new(),
            ready: false,
            impersonation: true,
        });
        p.push(Expect::Pin {
            synced: false,
            closes_left: 2,
        });
        p.push(Expect::Sync);
        p.push(Expect::Execute { command: None });
        assert_eq!(
            p.skip_to_sync(),
            Skipped {
                unprepared: vec!["rv1".into(), "rv0".into()],
                impersonations: 1,
                pin: true,
            }
        );
        assert!(matches!(p.pop(), Some(Expect::Sync)));
        assert!(matches!(p.pop(), Some(Expect::Execute { .. })));
    }

    #[test]
    fn a_shape_is_awaited_while_its_describe_is_unanswered() {
        let mut p = Pipeline::default();
        let cell = ShapeCell::default();
        assert!(!p.awaits_shape(&cell));
        p.push(Expect::BindComplete);
        p.push(Expect::Shape {
            cell: cell.clone(),
            params: None,
        });
        assert!(p.awaits_shape(&cell));
        assert!(
            !p.awaits_shape(&ShapeCell::default()),
            "another preparation"
        );
        p.skip_to_sync();
        assert!(!p.awaits_shape(&cell), "skipped after an error");
    }

    #[test]
    fn copy_in_drops_only_the_syncs_directly_behind_the_copy() {
        let mut p = Pipeline::default();
        p.push(Expect::Execute { command: None });
        p.push(Expect::Sync);
        p.push(Expect::Sync);
        p.push(Expect::BindComplete);
        p.push(Expect::Sync);
        p.drop_syncs_behind_front();
        assert!(matches!(p.pop(), Some(Expect::Execute { .. })));
        assert!(matches!(p.pop(), Some(Expect::BindComplete)));
        assert!(matches!(p.pop(), Some(Expect::Sync)));
        assert!(p.is_empty());
    }

    #[test]
    fn synthetic_replies_wait_their_turn() {
        let mut p = Pipeline::default();
        p.push(Expect::BindComplete);
        p.push(Expect::Synthetic(Bytes::from_static(b"x")));
        p.push(Expect::Answer {
            reply: Bytes::from_static(b"y"),
            ready: true,
            impersonation: true,
        });
        let mut out = bytes::BytesMut::new();
        assert!(p.emit_synthetic(&mut out, crate::session::IDLE).is_empty());
        assert!(out.is_empty());
        p.pop();
        // Answered after the BEGIN ahead of it: the status it reports, and whether the
        // impersonation commits at once, are the ones in force by then.
        assert_eq!(p.emit_synthetic(&mut out, b'T'), [false]);
        assert_eq!(&out[..], b"xyZ\0\0\0\x05T");
        assert!(p.is_empty());
    }
}
