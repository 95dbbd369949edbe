//! The names the proxy gives the statements it prepares on backend connections: derived from
//! the statement, so clients sending the same text share one backend statement (as PgBouncer
//! does), and under a prefix clients may not use. In session mode a statement that reads no
//! registered table keeps the client's name: the backend serves that client alone, and SQL
//! such as `EXECUTE name` finds it, as on a direct connection.

use crate::protocol::frontend::Parse;
use crate::rewrite::SessionCommand;
use crate::session::{RewrittenFor, ShapeCell, Statement};
use bytes::BytesMut;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The backend form of a client's statement; `shape` is the one the client knows (a new cell
/// for a new statement). `keep_client_name` (session mode) keeps the client's name for a
/// statement not rewritten, unless it is one of the proxy's.
pub(super) fn named_statement(
    parse: &Parse<'_>,
    command: Option<SessionCommand>,
    rewritten_for: Option<RewrittenFor>,
    shape: ShapeCell,
    keep_client_name: bool,
) -> Statement {
    let keep = keep_client_name
        && rewritten_for.is_none()
        && !parse.name.is_empty()
        && !parse
            .name
            .starts_with(crate::rewrite::BACKEND_STATEMENT_PREFIX);
    let backend_name = match keep {
        true => parse.name.to_string(),
        false => backend_statement_name(&parse.query, parse.param_types, parse.encoding),
    };
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
