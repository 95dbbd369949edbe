//! Shared backend statements after DDL, and session state that must follow a client from one
//! backend connection to the next (issue 18, items 1 and 3).
//!
//! The proxy prepares a client's statement on whichever backend connection serves it, under a
//! name shared by every client sending the same text. A column whose type changes under a
//! prepared statement must give the client PostgreSQL's own error (0A000, "cached plan must
//! not change result type") or the right value, never rows decoded under the description the
//! client was given before; and a statement prepared after the change must see the new type.
//!
//! "Another backend connection" is forced with a pool of two: a client of the same user holds
//! the connection in an open transaction (see [`hold`]).

mod common;

use bytes::BytesMut;
use common::proxy::{self, TestProxy};
use common::raw::{self, RawConn};
use redveil::protocol::tag;
use tokio_postgres::Client;

const STALE: &str = "0A000";

/// A fresh schema `schema` with `t (id int, x real)` holding `(1, 2.0)`, readable by the query
/// role; returns a superuser connection to change it with.
async fn scratch(schema: &str) -> Client {
    let su = common::cluster().connect_superuser("demo").await.unwrap();
    su.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE;
         CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int, x real);
         INSERT INTO {schema}.t VALUES (1, 2.0);
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT ON {schema}.t TO {role};",
        role = common::demo().query_user
    ))
    .await
    .unwrap();
    su
}

async fn pid(c: &Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// A client of `analyst` in an open transaction on the backend connection `pid`, so no one
/// else gets it. With a pool of two, a first try may land on the other connection: that client
/// commits once the wanted one is held.
async fn hold(p: &TestProxy, pid: i32) -> Client {
    let mut others = Vec::new();
    for _ in 0..3 {
        let c = p.connect("analyst").await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        if self::pid(&c).await == pid {
            for other in others {
                let other: Client = other;
                other.batch_execute("COMMIT").await.unwrap();
            }
            return c;
        }
        others.push(c);
    }
    panic!("backend {pid} could not be held");
}

fn code(result: &Result<tokio_postgres::Row, tokio_postgres::Error>) -> Option<String> {
    result
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(|c| c.code().to_string())
}

/// A statement executed on the other backend connection after its column changed type gets
/// 0A000; so does one executed where another client prepared the same text after the change;
/// a statement prepared after the change (a new client, or the same client preparing again)
/// reads the new type, on either connection.
#[tokio::test]
async fn transaction_mode_never_decodes_rows_under_a_stale_description() {
    let su = scratch("stale_tx").await;
    let p = proxy::start("[pool]\nsize = 2\n").await;
    let sql = "SELECT x FROM stale_tx.t WHERE id = $1";
    let a = p.connect("analyst").await.unwrap();
    let stmt = a.prepare(sql).await.unwrap();
    let x: f32 = a.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2.0);
    let first = pid(&a).await;
    // A raw client's statement, prepared before the change too (closed and prepared again
    // under the same name below, as asyncpg does after 0A000).
    let mut r = RawConn::proxy(&p, "analyst", &[]).await;
    assert_eq!(
        run_named(&mut r, "q", sql, true).await,
        Ok((700, "2".into()))
    );

    su.batch_execute("ALTER TABLE stale_tx.t ALTER COLUMN x TYPE int")
        .await
        .unwrap();

    // A runs on the other connection, where its statement is prepared for the first time,
    // against the new column type.
    let holder = hold(&p, first).await;
    let got = a.query_one(&stmt, &[&1i32]).await;
    assert_eq!(
        code(&got),
        Some(STALE.into()),
        "stale statement on a new connection: {:?}",
        got.map(|row| row.get::<_, f32>(0))
    );
    let second = pid(&a).await;
    assert_ne!(first, second);

    // B prepares the same text after the change: the new type.
    let b = p.connect("analyst").await.unwrap();
    let stmt_b = b.prepare(sql).await.unwrap();
    let x: i32 = b.query_one(&stmt_b, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2);
    assert_eq!(pid(&b).await, second);
    // A again on that connection, where B's preparation now holds the statement's name.
    let got = a.query_one(&stmt, &[&1i32]).await;
    assert_eq!(
        code(&got),
        Some(STALE.into()),
        "stale statement where another client prepared it anew: {:?}",
        got.map(|row| row.get::<_, f32>(0))
    );

    // Now the first connection, where the statement was prepared before the change.
    holder.batch_execute("COMMIT").await.unwrap();
    let holder = hold(&p, second).await;
    let b2 = p.connect("analyst").await.unwrap();
    let stmt_b2 = b2.prepare(sql).await.unwrap();
    let x: i32 = b2.query_one(&stmt_b2, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2);
    assert_eq!(pid(&b2).await, first);
    let got = a.query_one(&stmt, &[&1i32]).await;
    assert_eq!(code(&got), Some(STALE.into()));
    // What drivers do after 0A000: prepare again. The fresh statement reads the new type.
    let again = a.prepare(sql).await.unwrap();
    let x: i32 = a.query_one(&again, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2);
    holder.batch_execute("COMMIT").await.unwrap();

    close_and_parse_again(&mut r, sql).await;
}

/// In session mode the backend connection is the client's: PostgreSQL itself reports 0A000,
/// and preparing the statement again (under a new name, or closing it and preparing it under
/// the same name) reads the new type.
#[tokio::test]
async fn session_mode_relays_postgres_error_and_prepares_afresh() {
    let su = scratch("stale_session").await;
    let p = proxy::start("[pool]\nmode = \"session\"\nsize = 2\n").await;
    let sql = "SELECT x FROM stale_session.t WHERE id = $1";
    let a = p.connect("analyst").await.unwrap();
    let stmt = a.prepare(sql).await.unwrap();
    let x: f32 = a.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2.0);
    let mut r = RawConn::proxy(&p, "analyst", &[]).await;
    assert_eq!(
        run_named(&mut r, "q", sql, true).await,
        Ok((700, "2".into()))
    );

    su.batch_execute("ALTER TABLE stale_session.t ALTER COLUMN x TYPE int")
        .await
        .unwrap();

    let got = a.query_one(&stmt, &[&1i32]).await;
    assert_eq!(code(&got), Some(STALE.into()));
    let again = a.prepare(sql).await.unwrap();
    let x: i32 = a.query_one(&again, &[&1i32]).await.unwrap().get(0);
    assert_eq!(x, 2);
    close_and_parse_again(&mut r, sql).await;
}

/// Without a schema change, a statement moved to another connection keeps working.
#[tokio::test]
async fn statements_moved_to_another_connection_keep_their_values() {
    let _su = scratch("stale_moved").await;
    let p = proxy::start("[pool]\nsize = 2\n").await;
    let a = p.connect("analyst").await.unwrap();
    let stmt = a
        .prepare("SELECT x FROM stale_moved.t WHERE id = $1")
        .await
        .unwrap();
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let x: f32 = a.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
        assert_eq!(x, 2.0);
        let here = pid(&a).await;
        pids.insert(here);
        let holder = hold(&p, here).await;
        let x: f32 = a.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
        assert_eq!(x, 2.0);
        pids.insert(pid(&a).await);
        holder.batch_execute("COMMIT").await.unwrap();
    }
    assert_eq!(pids.len(), 2, "both connections served the statement");
}

/// A statement whose table is gone fails on another connection as PostgreSQL fails it (42P01
/// at the Bind), and that connection stays in service: the failed preparation was the
/// client's statement, not the proxy's state.
#[tokio::test]
async fn a_statement_whose_table_is_gone_fails_like_postgres() {
    let su = scratch("stale_gone").await;
    let p = proxy::start("[pool]\nsize = 2\n").await;
    let a = p.connect("analyst").await.unwrap();
    let stmt = a
        .prepare("SELECT x FROM stale_gone.t WHERE id = $1")
        .await
        .unwrap();
    let first = pid(&a).await;
    let holder = hold(&p, first).await;
    let second = pid(&a).await;
    assert_ne!(first, second);
    su.batch_execute("DROP TABLE stale_gone.t").await.unwrap();
    let got = a.query_one(&stmt, &[&1i32]).await;
    assert_eq!(code(&got), Some("42P01".into()));
    assert_eq!(pid(&a).await, second, "the connection was kept");
    holder.batch_execute("COMMIT").await.unwrap();
}

/// After the change, statement `q` fails with 0A000 (it was prepared before); closed and
/// prepared again under the same name, it reads the new type.
async fn close_and_parse_again(r: &mut RawConn, sql: &str) {
    let stale = {
        let mut out = BytesMut::new();
        raw::bind(&mut out, "", "q", &[Some(b"1")], &[]);
        raw::execute(&mut out, "", 0);
        raw::sync(&mut out);
        r.send(&out).await;
        r.until_ready().await
    };
    assert_eq!(raw::error_codes(&stale), [STALE]);
    let mut out = BytesMut::new();
    redveil::protocol::frontend::close_statement(&mut out, "q");
    raw::sync(&mut out);
    r.send(&out).await;
    r.until_ready().await;
    assert_eq!(run_named(r, "q", sql, true).await, Ok((23, "2".into())));
}

/// Parses `sql` as `name` (when `parse`), describes it, binds `1` and executes: the type OID
/// of its one column and the value, or the error codes.
async fn run_named(
    r: &mut RawConn,
    name: &str,
    sql: &str,
    parse: bool,
) -> Result<(u32, String), Vec<String>> {
    let mut out = BytesMut::new();
    if parse {
        raw::parse(&mut out, name, sql);
    }
    raw::describe(&mut out, b'S', name);
    raw::bind(&mut out, "", name, &[Some(b"1")], &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    r.send(&out).await;
    let replies = r.until_ready().await;
    let errors = raw::error_codes(&replies);
    if !errors.is_empty() {
        return Err(errors);
    }
    let description = replies
        .iter()
        .find(|m| m.tag == tag::ROW_DESCRIPTION)
        .expect("RowDescription");
    // One field: count, name, table OID, column, then the type OID.
    let body = description.body();
    let name_end = 2 + body[2..].iter().position(|&b| b == 0).unwrap() + 1;
    let at = name_end + 6;
    let oid = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
    let row = replies
        .iter()
        .find(|m| m.tag == tag::DATA_ROW)
        .expect("DataRow");
    let value = String::from_utf8_lossy(&row.body()[6..]).into_owned();
    Ok((oid, value))
}

/// `SET x TO DEFAULT` is a reset of `x`; `SET LOCAL` ends with its transaction; session
/// characteristics are session settings: all as seen from another backend connection.
#[tokio::test]
async fn session_state_set_to_default_and_characteristics_follow_the_client() {
    let p = proxy::start("[pool]\nsize = 2\n").await;
    let fresh = p.connect("analyst").await.unwrap();
    let default_work_mem = show_setting(&fresh, "work_mem").await;
    drop(fresh);
    let a = p.connect("analyst").await.unwrap();

    // Simple protocol, both spellings.
    for sql in [
        "SET work_mem = '7MB'; SET work_mem TO DEFAULT",
        "SET work_mem = '7MB'; SET work_mem = DEFAULT",
    ] {
        a.batch_execute(sql).await.unwrap();
        assert_eq!(
            elsewhere(&p, &a, "work_mem").await,
            default_work_mem,
            "{sql}"
        );
    }
    // Extended protocol.
    a.batch_execute("SET work_mem = '7MB'").await.unwrap();
    a.execute("SET work_mem TO DEFAULT", &[]).await.unwrap();
    assert_eq!(elsewhere(&p, &a, "work_mem").await, default_work_mem);
    // SET LOCAL lasts until the end of its transaction.
    a.batch_execute("BEGIN; SET LOCAL work_mem = '9MB'; COMMIT")
        .await
        .unwrap();
    assert_eq!(elsewhere(&p, &a, "work_mem").await, default_work_mem);

    a.batch_execute(
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY",
    )
    .await
    .unwrap();
    assert_eq!(
        elsewhere(&p, &a, "transaction_isolation").await,
        "serializable"
    );
    assert_eq!(elsewhere(&p, &a, "transaction_read_only").await, "on");
    a.batch_execute(
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE ISOLATION LEVEL REPEATABLE READ",
    )
    .await
    .unwrap();
    assert_eq!(
        elsewhere(&p, &a, "transaction_isolation").await,
        "repeatable read"
    );
    assert_eq!(elsewhere(&p, &a, "transaction_read_only").await, "off");
}

async fn show_setting(c: &Client, name: &str) -> String {
    let rows = c.simple_query(&format!("SHOW {name}")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a value")
}

/// `SHOW name` as `a` sees it on another backend connection than its last one.
async fn elsewhere(p: &TestProxy, a: &Client, name: &str) -> String {
    let here = pid(a).await;
    let holder = hold(p, here).await;
    let value = show_setting(a, name).await;
    assert_ne!(pid(a).await, here);
    holder.batch_execute("COMMIT").await.unwrap();
    value
}
