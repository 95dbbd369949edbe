//! The cluster is the last line: what the proxy's text rules never see (SQL run by a function
//! from a bound parameter) cannot open data through a forged setting, and nothing one client
//! leaves on a pooled connection reaches the next (objects, settings, locks, a forged pin).
//! The direct tests take the query role's side with no proxy at all: with its own token in
//! hand it reads nothing beyond its own rows.

mod common;

use common::demo_views::{count, eu_rows, start};
use common::policy as pol;

/// SQL run by `ts_rewrite` through SPI, from a bound parameter: the proxy sees only `$1`.
/// It returns the two tsquery columns ts_rewrite wants, and sets every `immuta.*` setting
/// the views ever trusted to what would open all rows.
const FORGE: &str = "SELECT 'a'::tsquery, 'b'::tsquery FROM (SELECT \
     set_config('immuta.user', 'admin', false), \
     set_config('immuta.attributes', chr(31) || 'region' || chr(30) || 'EU' || chr(31) || 'region' || chr(30) || 'US' || chr(31) || 'region' || chr(30) || 'APAC' || chr(31), false), \
     set_config('immuta.access', ' ', false), \
     set_config('immuta.token', 'forged', false)) AS forged";

async fn forge(client: &tokio_postgres::Client) {
    client
        .query("SELECT ts_rewrite('a'::tsquery, $1::text)::text", &[&FORGE])
        .await
        .expect("ts_rewrite runs the text");
}

const TOTAL: &str = "SELECT count(*) FROM hr.employees";

#[tokio::test]
async fn settings_forged_by_sql_the_proxy_cannot_see_open_nothing() {
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let analyst = p.connect("analyst").await.unwrap();
    assert_eq!(count(&analyst, TOTAL).await, eu);
    forge(&analyst).await;
    // Its own session now holds a void token: it sees nothing, and certainly not more.
    assert_eq!(count(&analyst, TOTAL).await, 0);
    drop(analyst);

    // The forged settings never reach the next client on that connection, whoever it is.
    let next = p.connect("analyst").await.unwrap();
    assert_eq!(count(&next, TOTAL).await, eu);
    let admin = p.connect("admin").await.unwrap();
    assert_eq!(count(&admin, TOTAL).await, 10_000);
    drop((next, admin));

    // In session mode as well.
    let p = start("[pool]\nmode = \"session\"\nsize = 1\n").await;
    let analyst = p.connect("analyst").await.unwrap();
    forge(&analyst).await;
    assert_eq!(count(&analyst, TOTAL).await, 0);
    drop(analyst);
    let next = p.connect("analyst").await.unwrap();
    assert_eq!(count(&next, TOTAL).await, eu);
}

/// The objects of the test below, found without a word the old cleanup looked for.
const LEFT_BEHIND: &str =
    "SELECT count(*) FROM pg_class WHERE relname IN ('trap', 'bait') AND relpersistence = 't'";

/// Objects a client creates without the word TEMP (its startup search_path puts pg_temp first) are
/// gone before anyone else uses the connection.
#[tokio::test]
async fn objects_left_on_a_connection_never_reach_another_client() {
    for pool in [
        "[pool]\nsize = 1\n",
        "[pool]\nmode = \"session\"\nsize = 1\n",
    ] {
        let p = start(pool).await;
        // A backend creates its temporary schema once, on first use; pooled backends have one.
        let warm = p.connect("analyst").await.unwrap();
        warm.batch_execute("CREATE TEMP TABLE warm (x int)")
            .await
            .unwrap();
        drop(warm);
        let between = p.connect("analyst").await.unwrap();
        between.batch_execute("SELECT 1").await.unwrap();
        drop(between);
        // pg_temp first, from the startup packet: no statement says TEMP.
        let setter = p
            .connect_with(&format!(
                "{} options='-c search_path=pg_temp'",
                p.conn_string("analyst")
            ))
            .await
            .unwrap();
        setter
            .batch_execute("CREATE VIEW trap AS SELECT 1 AS x; CREATE TABLE bait (x int)")
            .await
            .unwrap();
        assert_eq!(
            count(&setter, LEFT_BEHIND).await,
            2,
            "{pool}: they are temporary objects"
        );
        drop(setter);
        for user in ["analyst", "admin"] {
            let next = p.connect(user).await.unwrap();
            assert_eq!(
                count(&next, LEFT_BEHIND).await,
                0,
                "{pool}: {user} sees what the last client left"
            );
        }
    }
}

/// Session state a client changes behind the proxy's back (set_config, SET inside a function,
/// session characteristics, session advisory locks) is the client's alone.
#[tokio::test]
async fn untracked_session_state_never_reaches_another_client() {
    for pool in [
        "[pool]\nsize = 1\n",
        "[pool]\nmode = \"session\"\nsize = 1\n",
    ] {
        let p = start(pool).await;
        let setter = p.connect("analyst").await.unwrap();
        setter
            .batch_execute(
                "SELECT set_config('TimeZone', 'Asia/Tokyo', false);\
                 SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE;\
                 CREATE FUNCTION pg_temp.tune() RETURNS void LANGUAGE plpgsql AS $$ BEGIN SET work_mem = '7MB'; END $$;\
                 SELECT pg_temp.tune();\
                 SELECT set_config('my.secret', 'left behind', false);\
                 SELECT pg_advisory_lock(4242)",
            )
            .await
            .unwrap();
        assert_eq!(
            show(&setter, "SELECT current_setting('TimeZone')")
                .await
                .as_deref(),
            Some("Asia/Tokyo")
        );
        drop(setter);
        for user in ["analyst", "admin"] {
            let next = p.connect(user).await.unwrap();
            let what = format!("{pool}: {user}");
            assert_ne!(
                show(&next, "SELECT current_setting('TimeZone')")
                    .await
                    .as_deref(),
                Some("Asia/Tokyo"),
                "{what}"
            );
            assert_eq!(
                show(
                    &next,
                    "SELECT current_setting('default_transaction_isolation')"
                )
                .await
                .as_deref(),
                Some("read committed"),
                "{what}"
            );
            assert_ne!(
                show(&next, "SELECT current_setting('work_mem')")
                    .await
                    .as_deref(),
                Some("7MB"),
                "{what}"
            );
            assert_eq!(
                show(
                    &next,
                    "SELECT nullif(current_setting('my.secret', true), '')"
                )
                .await,
                None,
                "{what}"
            );
            assert_eq!(
                count(&next, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").await,
                0,
                "{what}"
            );
        }
    }
}

/// As the query role with no proxy in front: a session holding a user's token reads exactly
/// that user's rows whatever else it sets, reaches no other class, and cannot read tokens,
/// profile or salts.
#[tokio::test]
async fn the_query_role_with_its_own_token_reads_nothing_beyond_its_rows() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&pol::demo_catalog())).await;
    let eu = eu_rows().await;
    let analyst = pol::query_as(Some("analyst")).await;
    let canonical = "SELECT count(*), count(ssn) FROM immuta.hr_employees";
    let own_class = "SELECT count(*) FROM immuta_classes.hr_employees__c0";
    let other_class = "SELECT count(*) FROM immuta_classes.hr_employees__c1";
    let expect_own = |why: &'static str| {
        let analyst = &analyst;
        async move {
            assert_eq!(counts(analyst, canonical).await, [eu, 0], "{why}");
            assert_eq!(counts(analyst, own_class).await, [eu], "{why}");
            assert_eq!(counts(analyst, other_class).await, [0], "{why}");
        }
    };
    expect_own("pinned").await;

    // Every setting the views ever trusted, forged; its own token stays pinned.
    analyst
        .batch_execute(
            "SELECT set_config('immuta.user', 'admin', false);\
             SELECT set_config('immuta.attributes', chr(31) || 'region' || chr(30) || 'US' || chr(31), false);\
             SELECT set_config('immuta.access', ' ', false);\
             SET immuta.salt = 'x'",
        )
        .await
        .unwrap();
    expect_own("forged settings").await;

    // Tokens are secrets of the system role; so are the profile and the salts.
    for table in [
        "immuta_system.session_tokens",
        "immuta_system.profile_access",
        "immuta_system.profile_users",
        "immuta_system.data_sources",
        "hr.employees",
    ] {
        let err = analyst
            .query(&format!("SELECT * FROM {table} LIMIT 1"), &[])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}"
        );
    }
    // The secure views show its own profile only.
    assert_eq!(
        counts(&analyst, "SELECT count(*) FROM immuta_system.user_profile").await,
        [1]
    );
    // The views' text carries no secret.
    let definitions: String = analyst
        .query_one(
            "SELECT string_agg(pg_get_viewdef(c.oid), ' ') FROM pg_class c JOIN pg_namespace n \
             ON n.oid = c.relnamespace WHERE n.nspname IN ('immuta', 'immuta_classes', 'immuta_system') AND c.relkind = 'v'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let salt = pol::salt_of("hr.employees").await;
    assert!(!definitions.contains(&salt));
    for token in pol::tokens().pairs().map(|(token, _)| token.to_string()) {
        assert!(!definitions.contains(&token));
    }

    // A token that is not one, or none, opens nothing.
    for forged in ["", "forged", "00000000000000000000000000000000"] {
        analyst
            .execute("SELECT set_config('immuta.token', $1, false)", &[&forged])
            .await
            .unwrap();
        assert_eq!(counts(&analyst, canonical).await, [0, 0], "{forged:?}");
        assert_eq!(counts(&analyst, own_class).await, [0], "{forged:?}");
    }
    // The query role cannot become the system role or anyone else.
    let err = analyst
        .batch_execute(&format!("SET ROLE {}", common::demo().system_user))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

async fn show(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn counts(client: &tokio_postgres::Client, sql: &str) -> Vec<i64> {
    let row = client.query_one(sql, &[]).await.unwrap();
    (0..row.len()).map(|i| row.get::<_, i64>(i)).collect()
}

/// An impersonation inside one extended-protocol batch takes effect for the statements after
/// it in that batch: the pin runs there without a Sync of its own, so the batch stays one
/// implicit transaction, and a failure before it still skips everything to the client's Sync.
#[tokio::test]
async fn a_pin_inside_a_batch_joins_the_batch() {
    use common::raw::{self, RawConn};
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let mut admin = RawConn::proxy(&p, "admin", &[]).await;
    let batch = |statements: &[&str]| {
        let mut out = bytes::BytesMut::new();
        for sql in statements {
            raw::parse(&mut out, "", sql);
            raw::bind(&mut out, "", "", &[], &[]);
            raw::execute(&mut out, "", 0);
        }
        raw::sync(&mut out);
        out
    };
    let counts = |replies: &[raw::Msg]| -> Vec<String> {
        replies
            .iter()
            .filter(|m| m.tag == b'D')
            .map(|m| String::from_utf8_lossy(&m.body()[6..]).into_owned())
            .collect()
    };
    admin
        .send(&batch(&[
            TOTAL,
            "CALL immuta_procedures.impersonate_user('analyst')",
            TOTAL,
            "CALL immuta_procedures.impersonate_user(NULL)",
            TOTAL,
        ]))
        .await;
    let replies = admin.until_ready().await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");
    assert_eq!(
        counts(&replies),
        ["10000".to_string(), eu.to_string(), "10000".to_string()]
    );
    // What the client sees is exactly a direct connection's reply sequence: nothing of the
    // pins (ParseComplete '1', BindComplete '2', CommandComplete 'C', ReadyForQuery 'Z').
    let tags: String = replies.iter().map(|m| m.tag as char).collect();
    assert_eq!(tags, "12DC12C12DC12C12DCZ");

    // A failure ahead of the impersonation skips it, and the statements after it, to Sync.
    admin
        .send(&batch(&[
            "SELECT 1/0",
            "CALL immuta_procedures.impersonate_user('analyst')",
            TOTAL,
        ]))
        .await;
    let replies = admin.until_ready().await;
    assert_eq!(raw::error_codes(&replies), ["22012"]);
    assert!(counts(&replies).is_empty());
    assert_eq!(counts(&admin.simple(TOTAL).await), ["10000"], "still admin");

    // Inside a transaction block the pin rolls back with it.
    admin
        .send(&batch(&[
            "BEGIN",
            "CALL immuta_procedures.impersonate_user('analyst')",
            TOTAL,
            "ROLLBACK",
        ]))
        .await;
    let replies = admin.until_ready().await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");
    assert_eq!(counts(&replies), [eu.to_string()]);
    assert_eq!(counts(&admin.simple(TOTAL).await), ["10000"], "admin again");
}

/// A client that leaves in the middle of an extended-protocol batch (no Sync) never hands the
/// next client a backend still waiting for that Sync, or inside that batch's transaction.
#[tokio::test]
async fn a_batch_left_without_sync_never_reaches_the_next_client() {
    use common::raw::{self, RawConn};
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let cases: [&[&str]; 3] = [
        // A failing Parse: the backend skips everything until a Sync that never comes.
        &["SELECT * FROM no_such_table"],
        // A valid statement, executed and flushed: its implicit transaction stays open.
        &[
            "CREATE TEMP TABLE left_open (x int)",
            "INSERT INTO left_open VALUES (1)",
        ],
        &["SELECT pg_advisory_xact_lock(7)"],
    ];
    for statements in cases {
        let mut leaver = RawConn::proxy(&p, "admin", &[]).await;
        let mut out = bytes::BytesMut::new();
        for sql in statements {
            raw::parse(&mut out, "", sql);
            raw::bind(&mut out, "", "", &[], &[]);
            raw::execute(&mut out, "", 0);
        }
        frontend_flush(&mut out);
        leaver.send(&out).await;
        // Its replies arrive (the proxy relays them); then it goes without a Sync.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        drop(leaver);
        next_client_finds_nothing_left(&p, eu, &format!("{statements:?}")).await;
    }
}

/// The next client on the pool's only connection is served at once, reads what its user
/// may, and finds nothing the last client left there (a temp table, an advisory lock).
async fn next_client_finds_nothing_left(p: &common::proxy::TestProxy, eu: i64, after: &str) {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let next = p.connect("analyst").await.unwrap();
        let n = count(&next, TOTAL).await;
        let left = show(
            &next,
            "SELECT (to_regclass('pg_temp.left_open') IS NULL AND NOT EXISTS \
             (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()))::text",
        )
        .await;
        (n, left)
    })
    .await
    .unwrap_or_else(|_| panic!("the next client hung after {after}"));
    assert_eq!(next, (eu, Some("true".into())), "after {after}");
}

fn frontend_flush(out: &mut bytes::BytesMut) {
    redveil::protocol::frontend::put_message(out, redveil::protocol::tag::FLUSH, &[]);
}

/// An impersonation is pinned with a token minted for it: an impersonator that copies the
/// token it was pinned with (SQL the proxy cannot see reads its own session's settings) holds
/// nothing once the impersonation has ended.
#[tokio::test]
async fn a_token_kept_from_an_impersonation_opens_nothing_after_it() {
    const SAVE: &str = "SELECT 'a'::tsquery, 'b'::tsquery FROM \
         (SELECT set_config('x.kept', current_setting('immuta.token'), false)) AS saved";
    const RESTORE: &str = "SELECT 'a'::tsquery, 'b'::tsquery FROM \
         (SELECT set_config('immuta.token', current_setting('x.kept'), false)) AS restored";
    for pool in [
        "[pool]\nsize = 1\n",
        "[pool]\nmode = \"session\"\nsize = 1\n",
    ] {
        let p = start(pool).await;
        let bi = p.connect("bi_service").await.unwrap();
        let ts_rewrite = "SELECT ts_rewrite('a'::tsquery, $1::text)::text";
        bi.batch_execute("BEGIN; CALL immuta_procedures.impersonate_user('admin')")
            .await
            .unwrap();
        bi.batch_execute("CREATE TEMP VIEW kept AS SELECT * FROM hr.employees")
            .await
            .unwrap();
        assert_eq!(
            count(&bi, "SELECT count(*) FROM pg_temp.kept").await,
            10_000
        );
        bi.query(ts_rewrite, &[&SAVE]).await.unwrap();
        bi.batch_execute("CALL immuta_procedures.impersonate_user(NULL); COMMIT")
            .await
            .unwrap();
        assert_eq!(count(&bi, TOTAL).await, 0, "{pool}: bi_service again");
        bi.query(ts_rewrite, &[&RESTORE]).await.unwrap();
        // In transaction mode the connection held admin's identity too, so it was reset
        // before bi_service's next transaction and the view is gone; in session mode it
        // stays, and shows nothing.
        let kept = bi
            .query_one("SELECT count(*) FROM pg_temp.kept", &[])
            .await
            .map(|row| row.get::<_, i64>(0));
        match kept {
            Ok(n) => assert_eq!(n, 0, "{pool}: the kept token opens nothing"),
            Err(e) => assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE),
                "{pool}"
            ),
        }
        assert_eq!(count(&bi, TOTAL).await, 0, "{pool}");
    }
}

/// The other ways a client can leave a backend mid-protocol: a failing Bind, a COPY FROM
/// STDIN never finished, a large result half read, a large Bind cut off after its first
/// bytes, a message whose length swallows what follows. Each time the next client on the
/// pool's only connection is served at once, on a connection with nothing of the last one's.
#[tokio::test]
async fn every_way_of_leaving_mid_protocol_leaves_the_next_client_unharmed() {
    use common::raw::{self, RawConn};
    use redveil::protocol::{frontend, tag};
    let p = start("[pool]\nsize = 1\n").await;
    let eu = eu_rows().await;
    let mut failing_bind = bytes::BytesMut::new();
    raw::parse(&mut failing_bind, "", "SELECT $1::int");
    raw::bind(&mut failing_bind, "", "", &[Some(b"not a number")], &[]);
    raw::execute(&mut failing_bind, "", 0);
    frontend_flush(&mut failing_bind);
    let mut copy_in = bytes::BytesMut::new();
    frontend::query(
        &mut copy_in,
        "CREATE TEMP TABLE left_open (x int); COPY left_open FROM STDIN",
    );
    frontend::put_message(&mut copy_in, tag::COPY_DATA, b"1\n2\n");
    let mut half_read = bytes::BytesMut::new();
    frontend::query(
        &mut half_read,
        "BEGIN; SELECT pg_advisory_xact_lock(7), repeat('x', 1000) FROM generate_series(1, 100000)",
    );
    // A Bind declaring 1 MB of parameters, of which 100 kB arrive.
    let mut cut_bind = bytes::BytesMut::new();
    raw::parse(&mut cut_bind, "", "SELECT length($1)");
    let param = vec![b'p'; 1 << 20];
    let mut whole_bind = bytes::BytesMut::new();
    raw::bind(&mut whole_bind, "", "", &[Some(&param)], &[]);
    cut_bind.extend_from_slice(&whole_bind[..100_000]);
    // A Query whose declared length swallows the Sync after it.
    let mut swallowing = bytes::BytesMut::new();
    raw::parse(&mut swallowing, "", "SELECT 1");
    swallowing.extend_from_slice(b"Q\0\0\x10\0SELECT 1;");
    raw::sync(&mut swallowing);
    for (what, bytes) in [
        ("a failing Bind", failing_bind),
        ("an unfinished COPY FROM STDIN", copy_in),
        ("a large result half read", half_read),
        ("a large Bind cut off", cut_bind),
        ("a length that swallows the Sync", swallowing),
    ] {
        let mut leaver = RawConn::proxy(&p, "admin", &[]).await;
        leaver.send(&bytes).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(leaver);
        let started = std::time::Instant::now();
        next_client_finds_nothing_left(&p, eu, what).await;
        println!(
            "after {what}: next client served in {:?}",
            started.elapsed()
        );
    }
}
