//! Bringing a backend connection's session state to what a client expects, and cleaning it
//! when a client leaves.

use super::BackendConn;
use crate::protocol::{frontend, tag};
use crate::session::SessionState;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

/// SQL that turns a pooled connection's session into `state`: back to the login defaults,
/// then the client's settings and prepared statements.
pub fn replay_sql(state: &SessionState, drop_sql_prepared: bool) -> String {
    let mut sql = String::from("RESET ALL;");
    if drop_sql_prepared {
        sql.push_str("DEALLOCATE ALL;");
    }
    for (name, value) in state.settings() {
        sql.push_str("SET ");
        sql.push_str(&quote_setting_name(name));
        sql.push_str(" = ");
        sql.push_str(value);
        sql.push(';');
    }
    for prepare in state.prepared() {
        sql.push_str(prepare);
        sql.push(';');
    }
    sql
}

/// Drops what a previous client may have left in the session (see
/// `BackendConn::session_objects_of`). Not DISCARD ALL: settings, pin and prepared statements
/// are tracked and replayed by the proxy.
pub const DROP_SESSION_OBJECTS_SQL: &str = "CLOSE ALL; UNLISTEN *; DISCARD TEMP";

/// Whether a statement may leave objects in the session that outlive its transaction. An
/// over-approximation on the text: a false hit costs one cleanup when another client next
/// takes the connection.
pub fn may_leave_session_objects(sql: &str) -> bool {
    // One pass, as it runs on every statement.
    let bytes = sql.as_bytes();
    (0..bytes.len()).any(|i| {
        let word: &[u8] = match bytes[i].to_ascii_lowercase() {
            b't' => b"temp",
            b'h' => b"hold",
            b'l' => b"listen",
            _ => return false,
        };
        bytes
            .get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    })
}

/// Setting names are identifiers, possibly dotted (custom settings): quote each part.
fn quote_setting_name(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Runs a statement whose reply is discarded; marks the connection broken if it fails.
async fn run_quietly(conn: &mut BackendConn, sql: &str) {
    let mut out = BytesMut::new();
    frontend::query(&mut out, sql);
    if conn.stream.write_all(&out).await.is_err() {
        conn.broken = true;
        return;
    }
    let deadline = std::time::Duration::from_secs(5);
    let result = tokio::time::timeout(deadline, async {
        loop {
            let (message_tag, raw) = conn.read_message().await?;
            match message_tag {
                tag::ERROR_RESPONSE => conn.broken = true,
                tag::READY_FOR_QUERY => return Ok::<u8, super::BackendError>(raw[5]),
                _ => {}
            }
        }
    })
    .await;
    match result {
        Ok(Ok(b'I')) => {}
        _ => conn.broken = true,
    }
}

/// Session pooling: a leaving client's session state (settings, prepared statements, temp
/// tables, LISTEN, advisory locks) must not reach the next client.
pub async fn reset_session(conn: &mut BackendConn) {
    run_quietly(conn, "DISCARD ALL").await;
    conn.pinned = None;
    conn.session_objects_of = None;
    conn.prepared.clear();
    conn.settings = 0;
    conn.has_sql_prepared = false;
}

/// A client left inside a transaction: end it so the connection is idle again.
pub async fn rollback(conn: &mut BackendConn) {
    run_quietly(conn, "ROLLBACK").await;
    // It may have undone a pin made inside the transaction.
    conn.pinned = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::SessionCommand;

    #[test]
    fn session_objects_are_spotted_in_any_case() {
        assert!(may_leave_session_objects(
            "create TEMPORARY table t (x int)"
        ));
        assert!(may_leave_session_objects(
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1"
        ));
        assert!(may_leave_session_objects("Listen ch"));
        assert!(!may_leave_session_objects(
            "SELECT count(*) FROM hr.employees"
        ));
    }

    #[test]
    fn replay_resets_then_applies() {
        let mut state =
            SessionState::from_startup(vec![("application_name".into(), "psql".into())]);
        state.apply(SessionCommand::Set {
            name: "my.x".into(),
            value: "'1'".into(),
        });
        state.apply(SessionCommand::Prepare {
            name: "q".into(),
            sql: "PREPARE q AS select 1".into(),
        });
        assert_eq!(
            replay_sql(&state, true),
            "RESET ALL;DEALLOCATE ALL;SET \"application_name\" = 'psql';SET \"my\".\"x\" = '1';PREPARE q AS select 1;"
        );
    }
}
