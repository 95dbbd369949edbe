//! The query path's pool: a client gets back the connection it used last, a full pool answers
//! 53300 and hands a returned connection to the waiter, a backend killed under the pool is
//! replaced at the next checkout, and `min_idle`, `idle_timeout_s` and `max_lifetime_s` hold.
//!
//! The tests count the pool's backends in `pg_stat_activity` of the binary's cluster, so they
//! run one at a time.

mod common;

use common::{cluster, proxy};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::{Client, SimpleQueryMessage};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Generous: the machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(20);

fn first_value(rows: &[SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

/// The backend process serving the client's statement.
async fn pid(client: &Client) -> i32 {
    let rows = client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .expect("pg_backend_pid");
    first_value(&rows)
        .expect("a pid")
        .parse()
        .expect("an integer")
}

/// A superuser connection straight to the cluster, to watch and kill the pool's backends.
async fn superuser() -> Client {
    cluster()
        .connect_superuser("demo")
        .await
        .expect("superuser")
}

/// Backends of the proxy's query login started since `since` (the cluster's clock).
async fn pool_backends(su: &Client, since: std::time::SystemTime) -> i64 {
    su.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE usename = $1 AND backend_start >= $2",
        &[&common::demo().query_user, &since],
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

async fn exists(su: &Client, pid: i32) -> bool {
    su.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
        &[&pid],
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

/// Polls `check` until it holds, failing after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn now(su: &Client) -> std::time::SystemTime {
    su.query_one("SELECT now()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_client_gets_back_the_connection_it_used_last() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let p = proxy::start("[pool]\nsize = 4\n").await;
    let ann = p.connect("analyst").await.unwrap();
    let bob = p.connect("admin").await.unwrap();
    // Both in a transaction at once: two connections.
    ann.batch_execute("BEGIN").await.unwrap();
    bob.batch_execute("BEGIN").await.unwrap();
    let (ann_pid, bob_pid) = (pid(&ann).await, pid(&bob).await);
    assert_ne!(ann_pid, bob_pid);
    ann.batch_execute("COMMIT").await.unwrap();
    bob.batch_execute("COMMIT").await.unwrap();
    // Bob's connection came back last, and stays idle while ann runs twice in a row: neither
    // most-recently (LIFO) nor least-recently (FIFO) returned gives this sequence.
    for _ in 0..2 {
        assert_eq!(pid(&ann).await, ann_pid, "ann's own connection");
    }
    for _ in 0..2 {
        assert_eq!(pid(&bob).await, bob_pid, "bob's own connection");
    }
    ann.batch_execute("BEGIN").await.unwrap();
    assert_eq!(pid(&ann).await, ann_pid);
    ann.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn a_full_pool_answers_53300_then_hands_over_to_the_waiter() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let p = proxy::start("[pool]\nsize = 1\ncheckout_timeout_ms = 300\n").await;
    let holder = p.connect("analyst").await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let held = pid(&holder).await;
    let waiter = p.connect("admin").await.unwrap();
    let err = waiter.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");
    holder.batch_execute("COMMIT").await.unwrap();
    // Redshift cannot clean a connection another client used: the waiter gets a new one.
    let waiter_pid = pid(&waiter).await;
    if common::dialect() == redveil::dialect::Dialect::Postgres {
        assert_eq!(waiter_pid, held, "the waiter's connection survives");
    }

    // A waiter queued behind a transaction is served when it ends, long before its timeout.
    let p = proxy::start("[pool]\nsize = 1\ncheckout_timeout_ms = 60000\n").await;
    let holder = p.connect("analyst").await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let held = pid(&holder).await;
    let waiter = p.connect("admin").await.unwrap();
    let waiting = tokio::spawn(async move { pid(&waiter).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let served = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("the waiter is handed the connection")
        .unwrap();
    if common::dialect() == redveil::dialect::Dialect::Postgres {
        assert_eq!(served, held);
    }
}

#[tokio::test]
async fn a_killed_backend_is_replaced_at_the_next_checkout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let p = proxy::start("[pool]\nsize = 2\n").await;
    let client = p.connect("analyst").await.unwrap();
    let before = pid(&client).await;
    let su = superuser().await;
    let killed: bool = su
        .query_one("SELECT pg_terminate_backend($1)", &[&before])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    eventually("the backend exits", || async { !exists(&su, before).await }).await;
    // The idle connection is found dead at checkout and the statement runs on a new one.
    let after = pid(&client).await;
    assert_ne!(after, before);
    assert_eq!(pid(&client).await, after);
}

#[tokio::test]
async fn min_idle_is_kept_and_idle_and_old_connections_are_reaped() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let su = superuser().await;

    // min_idle: topped up at start, and again when checkouts take the idle ones.
    let since = now(&su).await;
    let p = proxy::start("[pool]\nsize = 4\nmin_idle = 2\n").await;
    let ann = p.connect("analyst").await.unwrap();
    // The login's own checkout may race the first top-up and open a third.
    eventually("two idle connections", || async {
        pool_backends(&su, since).await >= 2
    })
    .await;
    let bob = p.connect("admin").await.unwrap();
    ann.batch_execute("BEGIN").await.unwrap();
    bob.batch_execute("BEGIN").await.unwrap();
    eventually(
        "two more while two are checked out, up to the size",
        || async { pool_backends(&su, since).await == 4 },
    )
    .await;
    ann.batch_execute("COMMIT").await.unwrap();
    bob.batch_execute("COMMIT").await.unwrap();
    drop(p);

    // idle_timeout_s: an idle connection is closed without any checkout.
    let p = proxy::start("[pool]\nidle_timeout_s = 1\n").await;
    let client = p.connect("analyst").await.unwrap();
    let idle = pid(&client).await;
    eventually("the idle connection is closed", || async {
        !exists(&su, idle).await
    })
    .await;
    assert_ne!(pid(&client).await, idle);

    // max_lifetime_s: a connection past it is not handed out again.
    let p = proxy::start("[pool]\nmax_lifetime_s = 1\nidle_timeout_s = 0\n").await;
    let client = p.connect("analyst").await.unwrap();
    let old = pid(&client).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let new = pid(&client).await;
    assert_ne!(new, old);
    eventually("the old connection is closed", || async {
        !exists(&su, old).await
    })
    .await;
}

/// When the cluster cannot take a connection now it says why (too many connections, starting
/// up, shutting down) and clients hear that, with its SQLSTATE, not a generic 08 error. Here
/// the pool's login has a connection limit of 0.
#[tokio::test]
async fn the_clusters_own_reason_for_refusing_a_connection_reaches_the_client() {
    let su = cluster().connect_superuser("demo").await.unwrap();
    su.batch_execute(
        "DROP ROLE IF EXISTS redveil_no_room; \
         CREATE ROLE redveil_no_room LOGIN PASSWORD 'no-room' CONNECTION LIMIT 0",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = common::demo();
    let (toml, ca) = proxy::config_text(dir.path(), "");
    let toml = toml
        .replace(
            &format!("user = \"{}\"", demo.query_user),
            "user = \"redveil_no_room\"",
        )
        .replace(
            &format!("password = \"{}\"", demo.query_password),
            "password = \"no-room\"",
        );
    let config = redveil::config::Config::parse(&toml, std::path::Path::new("test.toml")).unwrap();
    let server = redveil::server::Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve());
    let error = proxy::connect_tls(
        &ca,
        &format!(
            "host=localhost port={} dbname=demo user=analyst password={}",
            addr.port(),
            proxy::PASSWORD_OF("analyst")
        ),
    )
    .await
    .expect_err("no connection for the pool");
    let db = error.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "53300", "{db:?}");
    assert!(db.message().contains("too many connections"), "{db:?}");
}

/// On a direct connection, the sessions that used a database are gone when their clients
/// are; through the proxy their backend connections idle in its pool. A DROP DATABASE sent
/// through the proxy closes them first, so it succeeds as it would directly.
#[tokio::test]
async fn drop_database_is_not_stopped_by_the_pools_idle_connections() {
    let su = cluster().connect_superuser("demo").await.unwrap();
    let demo = common::demo();
    su.batch_execute("DROP DATABASE IF EXISTS redveil_dropme")
        .await
        .unwrap();
    su.batch_execute(&format!(
        "CREATE DATABASE redveil_dropme OWNER {}",
        demo.query_user
    ))
    .await
    .unwrap();
    let p = proxy::start("[pool]\nmode = \"session\"\n").await;
    let user = p
        .connect_with(&format!(
            "host=localhost port={} dbname=redveil_dropme user=analyst password={}",
            p.addr.port(),
            proxy::PASSWORD_OF("analyst")
        ))
        .await
        .unwrap();
    user.simple_query("SELECT 1").await.unwrap();
    drop(user);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = p.connect("analyst").await.unwrap();
    admin
        .batch_execute("DROP DATABASE redveil_dropme")
        .await
        .expect("no session is left in the database");
}

/// `pool.reuse = "never"`: in session mode each client starts on a backend nobody used, and
/// the one it leaves is closed; by default the next client gets the same backend, reset (one
/// connection, so the second client waits for the first one's), where the engine can reset it.
#[tokio::test]
async fn with_reuse_never_a_session_backend_serves_one_client() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let su = superuser().await;
    // Redshift cannot reset a session: there a connection never outlives its client.
    let resets = common::dialect() == redveil::dialect::Dialect::Postgres;
    for (reuse, shared) in [("affinity", resets), ("never", false)] {
        let p = proxy::start(&format!(
            "[pool]\nmode = \"session\"\nsize = 1\nreuse = \"{reuse}\"\n"
        ))
        .await;
        let first = p.connect("analyst").await.unwrap();
        let first_pid = pid(&first).await;
        drop(first);
        if !shared {
            eventually("the first client's backend is closed", || {
                let su = &su;
                async move { !exists(su, first_pid).await }
            })
            .await;
        }
        let second = p.connect("analyst").await.unwrap();
        assert_eq!(pid(&second).await == first_pid, shared, "reuse = {reuse}");
        p.stopper.immediate();
    }
}
