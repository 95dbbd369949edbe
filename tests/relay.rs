//! The proxy core against a real PostgreSQL: TLS, authentication, simple and extended
//! queries, prepared statements across pooled connections, errors and cancels.

mod common;

use common::proxy;

#[tokio::test]
async fn simple_and_extended_queries_through_tls() {
    let p = proxy::start("").await;
    let client = p.connect("analyst").await.expect("connect");
    let rows = client
        .simple_query("SELECT count(*) FROM hr.employees")
        .await
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("10000"));
    let row = client
        .query_one(
            "SELECT name, salary::text FROM hr.employees WHERE id = $1",
            &[&42i32],
        )
        .await
        .unwrap();
    let name: String = row.get(0);
    assert!(!name.is_empty());
}

#[tokio::test]
async fn prepared_statements_survive_transaction_pooling_with_one_connection() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let a = p.connect("analyst").await.unwrap();
    let b = p.connect("admin").await.unwrap();
    let sa = a.prepare("SELECT $1::int + 1").await.unwrap();
    let sb = b.prepare("SELECT $1::int * 2").await.unwrap();
    for i in 0..50i32 {
        let ra: i32 = a.query_one(&sa, &[&i]).await.unwrap().get(0);
        let rb: i32 = b.query_one(&sb, &[&i]).await.unwrap().get(0);
        assert_eq!((ra, rb), (i + 1, i * 2));
    }
}

#[tokio::test]
async fn sql_prepare_and_session_settings_follow_the_client() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    let a = p.connect("analyst").await.unwrap();
    let b = p.connect("admin").await.unwrap();
    a.batch_execute("PREPARE q(int) AS SELECT $1 * 10; SET application_name = 'client-a'")
        .await
        .unwrap();
    b.batch_execute("SET application_name = 'client-b'")
        .await
        .unwrap();
    let got = a.simple_query("EXECUTE q(4)").await.unwrap();
    let values: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["40"]);
    let name_a: String = a
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    let name_b: String = b
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((name_a.as_str(), name_b.as_str()), ("client-a", "client-b"));
    assert!(
        b.simple_query("EXECUTE q(1)").await.is_err(),
        "b must not see a's prepared statement"
    );
}

#[tokio::test]
async fn errors_keep_their_sqlstate_and_the_session_recovers() {
    let p = proxy::start("").await;
    let c = p.connect("analyst").await.unwrap();
    let err = c.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    let err = c
        .simple_query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let p = proxy::start("").await;
    let wrong = p
        .connect_with(&format!(
            "host=localhost port={} dbname=demo user=analyst password=nope",
            p.addr.port()
        ))
        .await
        .unwrap_err();
    let unknown = p
        .connect_with(&format!(
            "host=localhost port={} dbname=demo user=mallory password=nope",
            p.addr.port()
        ))
        .await
        .unwrap_err();
    let (w, u) = (wrong.as_db_error().unwrap(), unknown.as_db_error().unwrap());
    assert_eq!(w.code().code(), "28P01");
    assert_eq!(u.code().code(), "28P01");
    assert_eq!(
        w.message().replace("analyst", "X"),
        u.message().replace("mallory", "X")
    );
}

#[tokio::test]
async fn cleartext_is_refused_when_tls_is_required() {
    let p = proxy::start("").await;
    let config: tokio_postgres::Config = p.conn_string("analyst").parse().unwrap();
    let Err(err) = config.connect(tokio_postgres::NoTls).await else {
        panic!("cleartext login must fail");
    };
    assert_eq!(err.as_db_error().unwrap().code().code(), "28000");
}

#[tokio::test]
async fn cancel_reaches_only_the_cancelled_clients_statement() {
    let p = proxy::start("").await;
    let a = p.connect("analyst").await.unwrap();
    let b = p.connect("admin").await.unwrap();
    let token = a.cancel_token();
    let slow = tokio::spawn(async move { a.simple_query("SELECT pg_sleep(30)").await });
    let other = tokio::spawn(async move { b.simple_query("SELECT pg_sleep(1), 'done'").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(p.client_tls());
    token.cancel_query(tls).await.expect("cancel request sent");
    let err = slow.await.unwrap().unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    assert!(
        other.await.unwrap().is_ok(),
        "the other client's statement must not be cancelled"
    );
}

#[tokio::test]
async fn psql_connects_with_require_and_verify_full() {
    let p = proxy::start("").await;
    let verify_full = format!("sslmode=verify-full sslrootcert={}", p.ca.display());
    for ssl in ["sslmode=require", verify_full.as_str()] {
        // tokio's process API, so the proxy sharing this runtime keeps running while psql waits.
        let out = tokio::process::Command::new("psql")
            .arg(format!(
                "host=localhost port={} dbname=demo user=analyst {ssl}",
                p.addr.port()
            ))
            .args([
                "-At",
                "-c",
                "SELECT count(DISTINCT region) FROM hr.employees",
            ])
            .env("PGPASSWORD", proxy::PASSWORD_OF("analyst"))
            .output()
            .await
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{ssl}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3", "{ssl}");
    }
}

/// With no data source registered the proxy is a plain pooler: fast-path function calls are
/// relayed (with policy in force they are refused; see tests/bypass.rs).
#[tokio::test]
async fn function_calls_are_relayed_without_policy() {
    use bytes::BufMut;
    use redveil::protocol::{frontend, tag};
    let p = proxy::start("").await;
    let oid: u32 = {
        let c = p.connect("analyst").await.unwrap();
        c.query_one(
            "SELECT 'pg_catalog.int4pl(integer, integer)'::regprocedure::oid",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    };
    let mut conn = common::raw::RawConn::proxy(&p, "analyst", &[]).await;
    let mut body = bytes::BytesMut::new();
    body.put_u32(oid);
    body.put_i16(0);
    body.put_i16(2);
    for arg in [&b"2"[..], b"40"] {
        body.put_i32(arg.len() as i32);
        body.put_slice(arg);
    }
    body.put_i16(0);
    let mut out = bytes::BytesMut::new();
    frontend::put_message(&mut out, tag::FUNCTION_CALL, &body);
    conn.send(&out).await;
    let replies = conn.until_ready().await;
    let tags: String = replies.iter().map(|m| m.tag as char).collect();
    if let Some(e) = replies.iter().find(|m| m.tag == tag::ERROR_RESPONSE) {
        panic!("{:?}", e.fields());
    }
    assert_eq!(tags, "VZ", "FunctionCallResponse, ReadyForQuery");
    assert!(replies[0].body().ends_with(b"42"));
}

/// A TLS connection the proxy ends (after a cancel request, a refused login, or the end of a
/// session) ends with close_notify, as PostgreSQL's do. libpq ≥ 17's cancel API (psycopg 3's
/// `cancel_safe`, psql 17) sends the cancel request over TLS and reports an abrupt EOF as a
/// failed cancel ("SSL error: unexpected eof while reading"). Found by the psycopg 3 client.
#[tokio::test]
async fn tls_connections_the_proxy_ends_close_cleanly() {
    use common::raw::{self, RawConn};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn closed_cleanly(stream: &mut redveil::net::Stream) {
        let mut rest = Vec::new();
        // rustls reports a close without close_notify as an UnexpectedEof error.
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("the proxy closes the connection");
        read.expect("a TLS close_notify, not an abrupt EOF");
    }

    let p = proxy::start("").await;
    let mut cancel = raw::tls_to_proxy(&p).await;
    cancel
        .write_all(&redveil::protocol::startup::encode_cancel(1, 2))
        .await
        .unwrap();
    cancel.flush().await.unwrap();
    closed_cleanly(&mut cancel).await;

    // A login refused before authentication: no user name.
    let mut refused = RawConn::unstarted(raw::tls_to_proxy(&p).await);
    refused
        .send(&redveil::protocol::startup::StartupMessage::encode(&[(
            "database".to_string(),
            "demo".to_string(),
        )]))
        .await;
    closed_cleanly(&mut refused.stream).await;

    // A session the proxy ends: the client's message breaks the protocol.
    let mut session = RawConn::proxy(&p, "analyst", &[]).await;
    session.send(b"Q\x00\x00\x00\x02").await;
    closed_cleanly(&mut session.stream).await;
}
