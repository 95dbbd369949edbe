//! The names the proxy gives the statements it prepares on backend connections: derived from
//! the statement, so clients sending the same text share one backend statement (as PgBouncer
//! does), and under a prefix clients may not use.

use crate::protocol::frontend::Parse;
use crate::rewrite::SessionCommand;
use crate::session::{RewrittenFor, ShapeCell, Statement};
use bytes::BytesMut;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The proxy-named form of a client's statement; `shape` is the one the client knows (a new
/// cell for a new statement).
pub(super) fn named_statement(
    parse: &Parse<'_>,
    command: Option<SessionCommand>,
    rewritten_for: Option<RewrittenFor>,
    shape: ShapeCell,
) -> Statement {
    let backend_name = backend_statement_name(&parse.query, parse.param_types, parse.encoding);
    let mut renamed = BytesMut::new();
    parse.encode_as(&mut renamed, &backend_name);
    Statement {
        backend_name,
        parse: renamed.freeze(),
        command,
        rewritten_for,
        shape,
    }
}

/// The backend name of a statement; `param_types` is the Parse message's raw parameter-type
/// section (count, then OIDs), `encoding` how the client's bytes were read.
pub fn backend_statement_name(
    query: &str,
    param_types: &[u8],
    encoding: crate::protocol::encoding::TextEncoding,
) -> String {
    let mut h = DefaultHasher::new();
    query.hash(&mut h);
    param_types.hash(&mut h);
    encoding.hash(&mut h);
    let first = h.finish();
    query.len().hash(&mut h);
    format!(
        "{}{:016x}{:016x}",
        crate::rewrite::BACKEND_STATEMENT_PREFIX,
        first,
        h.finish()
    )
}
