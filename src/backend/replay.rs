//! Bringing a backend connection's session state to what a client expects, and cleaning it
//! when a client leaves.

use super::BackendConn;
use crate::dialect::Dialect;
use crate::protocol::{frontend, tag};
use crate::session::SessionState;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

/// SQL that turns a pooled connection's session into `state`.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    /// Cleans what another client left when `other_client` (else just back to the login
    /// defaults) and sets the client's encoding: ASCII, read the same in any encoding.
    pub reset: String,
    /// The client's other settings and its prepared statements, in its encoding. The server
    /// converts a whole message with the encoding in force when it arrives, so text that is
    /// not ASCII must come in a message after `reset`.
    pub session: String,
}

impl Replay {
    pub fn joined(&self) -> String {
        format!("{}{}", self.reset, self.session)
    }
}

/// `None` when the engine cannot clean what the connection may hold (see
/// `Dialect::clean_sql`): it is then closed and another one serves the client.
pub fn replay_sql(
    state: &SessionState,
    drop_sql_prepared: bool,
    other_client: bool,
    dialect: Dialect,
) -> Option<Replay> {
    let mut reset = String::from(match other_client {
        true => dialect.clean_sql()?,
        false => dialect.reset_sql(),
    });
    if drop_sql_prepared {
        reset.push_str(dialect.deallocate_all()?);
    }
    let mut session = String::new();
    for (name, value) in state.settings() {
        let sql = match name.eq_ignore_ascii_case("client_encoding") {
            true => &mut reset,
            false => &mut session,
        };
        // A startup value or one set by set_config is raw, as the server takes it there (a
        // `search_path` of `hr,public` is two schemas); a value from SET is SQL.
        match state.raw_value(name) {
            Some(raw) => {
                sql.push_str(&dialect.set_config_sql(name, raw));
                sql.push(';');
            }
            None => {
                sql.push_str("SET ");
                sql.push_str(&dialect.setting_name(name)?);
                sql.push_str(" = ");
                end_statement(sql, value);
            }
        }
    }
    for prepare in state.prepared() {
        end_statement(&mut session, prepare);
    }
    Some(Replay { reset, session })
}

/// Appends a statement's `text` as the client wrote it and ends it; a line comment at its end
/// (`SET x = 1 -- why`) must not swallow the `;` and what follows.
fn end_statement(sql: &mut String, text: &str) {
    sql.push_str(text);
    if text.contains("--") {
        sql.push('\n');
    }
    sql.push(';');
}

/// Runs simple queries, pipelined, whose replies are discarded; marks the connection broken
/// if any fails, the last leaves a transaction open, or they take longer than a deadline.
async fn run_quietly(conn: &mut BackendConn, queries: &[&str]) {
    let mut out = BytesMut::new();
    for sql in queries {
        frontend::query(&mut out, sql);
    }
    if conn.stream.write_all(&out).await.is_err() {
        conn.broken = true;
        return;
    }
    let deadline = std::time::Duration::from_secs(5);
    let result = tokio::time::timeout(deadline, async {
        let mut status = b'I';
        for _ in queries {
            loop {
                let (message_tag, raw) = conn.read_message().await?;
                match message_tag {
                    tag::ERROR_RESPONSE => conn.broken = true,
                    tag::READY_FOR_QUERY => {
                        status = raw[5];
                        break;
                    }
                    _ => {}
                }
            }
        }
        Ok::<u8, super::BackendError>(status)
    })
    .await;
    match result {
        Ok(Ok(b'I')) => {}
        _ => conn.broken = true,
    }
}

/// Everything a session may hold (settings and the identity pin, prepared statements, temp
/// objects, cursors, LISTEN, advisory locks, sequence state) back to a fresh login's,
/// confirmed before anything else is sent: the connection then serves any identity. RESET ALL
/// first, so no setting the last client left (a `statement_timeout` of 1 ms, say) can make
/// DISCARD ALL fail; DISCARD ALL cannot share a string with it (no transaction block). On
/// failure, or on an engine that cannot discard a session, the connection is `broken`, never
/// reused.
pub async fn reset_session(conn: &mut BackendConn, dialect: Dialect) {
    match dialect.discard_all() {
        Some(queries) => run_quietly(conn, &queries).await,
        None => conn.broken = true,
    }
    conn.pinned = None;
    conn.prepared.clear();
    conn.settings = 0;
    conn.has_sql_prepared = false;
    conn.identities.clear();
    conn.last_client = None;
    conn.engine_ready = false;
}

/// A client left inside a transaction: end it so the connection is idle again.
pub async fn rollback(conn: &mut BackendConn) {
    run_quietly(conn, &["ROLLBACK"]).await;
    // It may have undone a pin made inside the transaction.
    conn.pinned = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::SessionCommand;

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
            replay_sql(&state, true, false, Dialect::Postgres).unwrap().joined(),
            "SET SESSION AUTHORIZATION DEFAULT;RESET ALL;RESET ROLE;DEALLOCATE ALL;SELECT pg_catalog.set_config('application_name', 'psql', false);SET \"my\".\"x\" = '1';PREPARE q AS select 1;"
        );
    }

    #[test]
    fn replay_of_characteristics_and_commented_values() {
        let mut state = SessionState::default();
        for sql in [
            "SET work_mem = '8MB' -- more",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET statement_timeout = 5",
            "SET statement_timeout TO DEFAULT",
        ] {
            state.apply(crate::rewrite::classify(sql).expect(sql));
        }
        assert_eq!(
            replay_sql(&state, false, true, Dialect::Postgres).unwrap().joined(),
            "SET SESSION AUTHORIZATION DEFAULT;RESET ALL;RESET ROLE;CLOSE ALL;UNLISTEN *;DISCARD TEMP;DISCARD SEQUENCES;SELECT pg_catalog.pg_advisory_unlock_all();SET \"default_transaction_isolation\" = 'serializable';SET \"work_mem\" = '8MB' -- more\n;"
        );
    }

    #[test]
    fn redshift_replays_what_it_can_and_closes_the_rest() {
        let mut state = SessionState::default();
        state.apply(crate::rewrite::classify("SET my.x = '1'").expect("a SET"));
        assert_eq!(
            replay_sql(&state, false, false, Dialect::Redshift).map(|r| r.joined()),
            Some("RESET ALL;SET enable_result_cache_for_session TO off;SET my.x = '1';".into())
        );
        // Another client's leftovers, or SQL-prepared statements of unknown names: closed.
        assert_eq!(replay_sql(&state, false, true, Dialect::Redshift), None);
        assert_eq!(replay_sql(&state, true, false, Dialect::Redshift), None);
        state.apply(crate::rewrite::classify("SET \"a b\".c = '1'").expect("a SET"));
        assert_eq!(replay_sql(&state, false, false, Dialect::Redshift), None);
    }

    #[test]
    fn the_client_encoding_is_set_before_any_text_in_it() {
        let mut state = SessionState::default();
        for sql in ["SET application_name = 'caf\u{e9}'", "SET NAMES 'LATIN1'"] {
            state.apply(crate::rewrite::classify(sql).expect(sql));
        }
        let replay = replay_sql(&state, false, false, Dialect::Postgres).unwrap();
        assert_eq!(
            replay.reset,
            format!(
                "{}SET \"client_encoding\" = 'LATIN1';",
                Dialect::Postgres.reset_sql()
            )
        );
        assert_eq!(replay.session, "SET \"application_name\" = 'caf\u{e9}';");
    }
}
