//! The bypass corpus, pooled connections (issue 14 item 6): nothing a client leaves on a backend
//! connection (objects made without the word TEMP, settings and locks changed behind the
//! proxy's back, SQL-level prepared statements) reaches the next client of that connection,
//! of the same user or another. Harness: `common/bypass.rs`; one proxy with a pool of one.
//!
//! Planted values are spelled `'planted-by-' || 'another-client'` in SQL so that no statement
//! text (which an error's context may quote) carries `PLANTED`; any output that does is a leak.
//!
//! The tests named `leak_*` FAIL on the code of this commit: each is a recipe that shows
//! something the invariants forbid. They are kept as they are, not weakened, until fixed.

mod common;

use common::bypass::*;

const PG_TEMP_FIRST: &str = "-c search_path=pg_temp";
/// Objects of this connection's temporary schema, functions included (`warm` aside).
const LEFT_BEHIND: &str = "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relname <> 'warm') + (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema())";
fn loot() -> &'static str {
    setting_or_empty("x.loot")
}
/// A backend creates its temporary schema on first use; before that, pg_temp in search_path
/// makes nothing temporary.
const WARM: &str = "CREATE TEMP TABLE IF NOT EXISTS warm (x int)";

/// A trojan built without the words TEMP, HOLD or LISTEN (the startup search_path puts pg_temp
/// first): a view shadowing `pg_namespace` (relations in pg_temp come before pg_catalog) runs,
/// through ts_rewrite, SQL kept in a table, which copies the reader's identity token and the
/// rows of a view over the registered table into `x.loot`; a function `grab()` does the same
/// (functions in pg_temp are found only by a qualified name, so nothing calls it unasked).
const TROJAN: &str = "CREATE TABLE cap (t text); \
    INSERT INTO cap VALUES ('SELECT ''a''::tsquery, ''b''::tsquery FROM (SELECT set_' || 'config(''x.loot'', ''planted-by-'' || ''another-client '' || coalesce(current_' || 'setting(''imm'' || ''uta.token'', true), '''') || (SELECT coalesce(string_agg(ssn || '' '' || email, '',''), '''') FROM v), false)) f'); \
    CREATE VIEW v AS SELECT * FROM hr.employees; \
    CREATE FUNCTION grab() RETURNS int LANGUAGE sql AS $$ SELECT count(ts_rewrite('a'::tsquery, t))::int FROM cap $$; \
    CREATE VIEW pg_namespace AS SELECT n.* FROM pg_catalog.pg_namespace n, (SELECT count(ts_rewrite('a'::tsquery, t)) FROM cap) g; \
    CREATE VIEW trap AS SELECT 'planted-by-' || 'another-client' AS x; \
    CREATE TABLE bait AS SELECT 'planted-by-' || 'another-client' AS x; \
    SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relname IN ('cap', 'v', 'pg_namespace', 'trap', 'bait')";

/// What the next client checks: nothing of the trojan exists or runs, nothing was captured.
fn victim(who: Who) -> [Step; 5] {
    [
        s(
            who,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'hr'",
            Is("1"),
        ),
        s(who, LEFT_BEHIND, Is("0")),
        s(who, "SELECT x FROM trap", Fails),
        s(who, "SELECT x FROM bait", Fails),
        s(who, loot(), Is("")),
    ]
}

#[tokio::test]
async fn objects_left_without_trigger_words() {
    let mut h = Harness::new().await;
    let mut attempts = Vec::new();
    for (name, next) in [
        ("then admin", Admin),
        ("then bi_service", Bi),
        ("then another client of the analyst", Analyst),
    ] {
        let mut list = vec![
            fresh(Analyst, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, TROJAN, Is("5")),
        ];
        list.extend(victim(next));
        list.push(fresh_with(Analyst, PG_TEMP_FIRST, loot(), Is("")));
        list.push(fresh_with(Analyst, PG_TEMP_FIRST, LEFT_BEHIND, Is("0")));
        attempts.push(steps(text(format!("a trojan in pg_temp, {name}")), list));
    }
    attempts.extend([
        steps("a trojan in pg_temp, then the same options", vec![
            fresh(Bi, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, TROJAN, Is("5")),
            fresh_with(Analyst, PG_TEMP_FIRST, "SELECT count(*) FROM pg_namespace WHERE nspname = 'hr'", Is("1")),
            fresh_with(Analyst, PG_TEMP_FIRST, "SELECT x FROM trap", Fails),
            fresh_with(Analyst, PG_TEMP_FIRST, loot(), Is("")),
        ]),
        steps("the extended protocol after the trojan", vec![
            fresh(Analyst, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, TROJAN, Is("5")),
            x(Analyst, "SELECT count(*) FROM pg_namespace WHERE nspname = 'hr'", &[], Is("1")),
            x(Analyst, LEFT_BEHIND, &[], Is("0")),
            x(Analyst, loot(), &[], Is("")),
        ]),
        steps("a table named like one the next user reads unqualified", vec![
            fresh(Analyst, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, "CREATE TABLE pg_tables AS SELECT 'planted-by-' || 'another-client' AS tablename; CREATE TABLE pg_views AS SELECT * FROM pg_tables", Works),
            s(Admin, "SELECT tablename FROM pg_tables WHERE schemaname = 'hr'", Works),
            s(Analyst, "SELECT count(*) FROM pg_views WHERE schemaname = 'pg_catalog' AND viewname = 'pg_views'", Is("1")),
            s(Analyst, LEFT_BEHIND, Is("0")),
        ]),
        steps("functions and a view in pg_temp, the same user next", vec![
            fresh(Analyst, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'planted-by-' || 'another-client' $$; CREATE VIEW w AS SELECT 'planted-by-' || 'another-client' AS x", Works),
            s(Analyst, "SELECT pg_temp.f()", Fails),
            s(Analyst, "SELECT x FROM w", Fails),
            s(Analyst, LEFT_BEHIND, Is("0")),
        ]),
        steps("a table made in a transaction the client leaves open", vec![
            fresh(Analyst, WARM, Works),
            fresh_with(Analyst, PG_TEMP_FIRST, "BEGIN; CREATE TABLE bait AS SELECT 'planted-by-' || 'another-client' AS x", Works),
            s(Analyst, "SELECT x FROM bait", Fails),
            s(Analyst, LEFT_BEHIND, Is("0")),
        ]),
    ]);
    h.run(attempts).await;
    h.finish("objects_left_without_trigger_words", 8);
}

/// Session state changed behind the proxy's back, by an analyst client that then leaves:
/// (name, what it runs, what the next client checks, what that shows on a clean connection).
fn untracked() -> [(&'static str, &'static str, &'static str, Expect); 12] {
    [
    (
        "SET SESSION CHARACTERISTICS … SERIALIZABLE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SELECT current_setting('default_transaction_isolation')",
        Is("read committed"),
    ),
    (
        "SET SESSION CHARACTERISTICS … READ ONLY",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY, DEFERRABLE",
        "SELECT current_setting('default_transaction_read_only') || current_setting('default_transaction_deferrable')",
        Is("offoff"),
    ),
    (
        "set_config DateStyle",
        "SELECT set_config('DateStyle', 'SQL, DMY', false)",
        "SELECT current_setting('DateStyle') <> 'SQL, DMY'",
        Is("t"),
    ),
    (
        "set_config TimeZone",
        "SELECT set_config('TimeZone', 'Asia/Tokyo', false)",
        "SELECT current_setting('TimeZone') <> 'Asia/Tokyo'",
        Is("t"),
    ),
    (
        "set_config statement_timeout",
        "SELECT set_config('statement_timeout', '5min', false)",
        "SELECT current_setting('statement_timeout') <> '5min'",
        Is("t"),
    ),
    (
        "set_config transform_null_equals",
        "SELECT set_config('transform_null_equals', 'on', false)",
        "SELECT current_setting('transform_null_equals')",
        Is("off"),
    ),
    (
        "set_config of a custom setting",
        "SELECT length(set_config('x.y', 'planted-by-' || 'another-client', false))",
        setting_or_empty("x.y"),
        Is(""),
    ),
    (
        "set_config application_name",
        "SELECT set_config('application_name', 'left behind', false)",
        "SELECT current_setting('application_name') <> 'left behind'",
        Is("t"),
    ),
    (
        "SET inside a plpgsql function",
        "CREATE FUNCTION pg_temp.tune() RETURNS void LANGUAGE plpgsql AS $$ BEGIN SET work_mem = '7MB'; SET search_path = hr, public; END $$; SELECT pg_temp.tune()",
        "SELECT current_setting('work_mem') <> '7MB' AND current_setting('search_path') NOT LIKE 'hr%'",
        Is("t"),
    ),
    (
        "a session advisory lock",
        "SELECT pg_advisory_lock(4242); SELECT pg_advisory_lock(1, 2)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        Is("0"),
    ),
    (
        "a session advisory lock, shared",
        "SELECT pg_advisory_lock_shared(4243)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        Is("0"),
    ),
    // PostgreSQL keeps its random() state per backend and DISCARD ALL does not reseed it:
    // the next client's random() follows the seed (see the observation below). No data.
    (
        "setseed",
        "SELECT setseed(0.5)",
        "SELECT random()",
        Any,
    ),
    ]
}

#[tokio::test]
async fn untracked_session_state() {
    let mut h = Harness::new().await;
    let mut attempts = Vec::new();
    for (name, set, check, expect) in untracked() {
        for (then, order) in [
            ("the same user next", [Analyst, Admin]),
            ("another user next", [Bi, Analyst]),
        ] {
            let mut list = vec![fresh(Analyst, set, Works)];
            list.extend(order.map(|who| s(who, check, expect)));
            list.push(fresh(Analyst, check, expect));
            attempts.push(steps(text(format!("{name}, {then}")), list));
        }
    }
    attempts.push(steps("several at once, in the extended protocol next", vec![
        fresh(Analyst, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT set_config('TimeZone', 'Asia/Tokyo', false); SELECT length(set_config('x.y', 'planted-by-' || 'another-client', false)); SELECT pg_advisory_lock(4244)", Works),
        x(Analyst, "SELECT current_setting('default_transaction_isolation')", &[], Is("read committed")),
        x(Analyst, "SELECT current_setting('TimeZone') <> 'Asia/Tokyo'", &[], Is("true")),
        x(Analyst, setting_or_empty("x.y"), &[], Is("")),
        x(Analyst, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", &[], Is("0")),
    ]));
    h.run(attempts).await;

    // Observed, not asserted: does a seed one client sets decide the next client's random()?
    let su = common::cluster().connect_superuser("demo").await.unwrap();
    su.batch_execute("SELECT setseed(0.5)").await.unwrap();
    let seeded: f64 = su.query_one("SELECT random()", &[]).await.unwrap().get(0);
    let mut attacker = common::raw::RawConn::proxy(&h.proxy, "analyst", &[]).await;
    attacker.simple("SELECT setseed(0.5)").await;
    drop(attacker);
    let next = h.proxy.connect("admin").await.unwrap();
    let drawn: f64 = next.query_one("SELECT random()", &[]).await.unwrap().get(0);
    eprintln!(
        "setseed(0.5) by one client, then another user's random(): {drawn} ({} the first value after setseed(0.5))",
        if drawn == seeded { "IS" } else { "is not" }
    );
    h.finish("untracked_session_state", 24);
}

/// SQL-level PREPAREs and settings are the client's: the replay never skips a change of client.
#[tokio::test]
async fn replay_never_skipped() {
    let mut h = Harness::new().await;
    h.run(vec![
        steps("A's setting and PREPARE never reach B", vec![
            fresh(Analyst, "SET x.a = 'planted-by-another-client'; PREPARE a_q AS SELECT 'planted-by-' || 'another-client' AS x", Works),
            s(Analyst, setting_or_empty("x.a"), Is("")),
            s(Analyst, "EXECUTE a_q", Code("26000")),
            x(Analyst, "EXECUTE a_q", &[], Code("26000")),
            s(Analyst, "PREPARE a_q AS SELECT 1", Works),
            s(Analyst, "EXECUTE a_q", Is("1")),
            s(Analyst, "DEALLOCATE a_q", Works),
        ]),
        steps("A's untracked setting, B with the same tracked state", vec![
            fresh(Analyst, "SELECT length(set_config('x.c', 'planted-by-' || 'another-client', false)); PREPARE c_q AS SELECT 1", Works),
            s(Analyst, setting_or_empty("x.c"), Is("")),
            s(Analyst, "EXECUTE c_q", Code("26000")),
            fresh(Analyst, "EXECUTE c_q", Code("26000")),
        ]),
        steps("A leaves inside a transaction", vec![
            fresh(Analyst, "BEGIN; SET x.d = 'planted-by-another-client'", Works),
            s(Analyst, setting_or_empty("x.d"), Is("")),
        ]),
        steps("A's search_path and PREPARE over the table", vec![
            fresh(Analyst, "SET search_path = hr; PREPARE e_q AS SELECT count(*) FROM employees", Works),
            s(Analyst, "SELECT current_setting('search_path') <> 'hr'", Is("t")),
            s(Analyst, "EXECUTE e_q", Code("26000")),
            s(Admin, "EXECUTE e_q", Code("26000")),
        ]),
        steps("B's own PREPARE and settings work across clients and transactions", vec![
            s(Analyst, "SET x.b = 'b'", Works),
            s(Analyst, "PREPARE b_q AS SELECT count(*) FROM hr.employees", Works),
            fresh(Analyst, "SELECT 1", Works),
            s(Analyst, "EXECUTE b_q", Own),
            s(Analyst, "SELECT current_setting('x.b')", Is("b")),
            s(Bi, "SELECT 1", Works),
            s(Analyst, "EXECUTE b_q", Own),
            x(Analyst, "EXECUTE b_q", &[], Own),
            s(Analyst, "BEGIN", Works),
            s(Analyst, "EXECUTE b_q", Own),
            s(Analyst, "SELECT current_setting('x.b')", Is("b")),
            s(Analyst, "COMMIT", Works),
            fresh(Analyst, "EXECUTE b_q", Code("26000")),
            fresh(Analyst, setting_or_empty("x.b"), Is("")),
            s(Analyst, "EXECUTE b_q", Own),
            s(Analyst, "SELECT current_setting('x.b')", Is("b")),
            s(Admin, "EXECUTE b_q", Code("26000")),
            s(Analyst, "EXECUTE b_q", Own),
            s(Analyst, "DEALLOCATE b_q; RESET x.b", Any),
        ]),
    ])
    .await;
    h.finish("replay_never_skipped", 5);
}

/// Leaked before a change of client reset the connection (same user only). A client sets `statement_timeout` with
/// set_config (untracked) and leaves many temp objects: the next client of the same identity
/// gets the clean-and-replay pipelined ahead of its statement, DISCARD TEMP times out, RESET
/// ALL never runs, and its statement runs anyway on the connection as the last client left it
/// (its temp objects, its settings); the reply carries the replay's 57014 first, then the rows.
/// The connection is closed afterwards.
#[tokio::test]
async fn leak_replay_cut_short_by_a_statement_timeout() {
    let mut h = Harness::new().await;
    let mut setup: String = (0..1500)
        .map(|i| format!("CREATE TEMP TABLE t{i} (x int);"))
        .collect();
    setup.push_str(
        "CREATE TEMP VIEW trap AS SELECT 'planted-by-' || 'another-client' AS x; \
         SELECT length(set_config('x.loot', 'planted-by-' || 'another-client', false)); \
         SELECT set_config('statement_timeout', '1', false)",
    );
    let setup = text(setup);
    h.run(vec![
        steps(
            "the next client reads a temp view the last one left",
            vec![
                fresh(Analyst, setup, Works),
                fresh(Analyst, "SELECT x FROM pg_temp.trap", Fails),
            ],
        ),
        steps(
            "the next client reads a setting the last one left",
            vec![fresh(Analyst, setup, Works), fresh(Analyst, loot(), Is(""))],
        ),
    ])
    .await;
    h.finish("leak_replay_cut_short_by_a_statement_timeout", 2);
}

/// Leaked before a change of client reset the connection (same user only). PREPARE is not transactional, but the
/// proxy forgets a SQL-level PREPARE whose transaction failed or was abandoned, so the next
/// client's clean-and-replay (DEALLOCATE ALL only when the proxy knows of one) leaves it there:
/// the next client of the same identity runs the last client's statement by its name.
#[tokio::test]
async fn leak_sql_prepared_statements_of_a_failed_transaction() {
    let mut h = Harness::new().await;
    let planted = "SELECT 'planted-by-' || 'another-client' AS x";
    h.run(vec![
        steps(
            "A leaves inside a transaction",
            vec![
                fresh(
                    Analyst,
                    text(format!("BEGIN; PREPARE d_q AS {planted}")),
                    Works,
                ),
                s(Analyst, "EXECUTE d_q", Code("26000")),
            ],
        ),
        steps(
            "A's PREPARE in a string that then fails",
            vec![
                fresh(
                    Analyst,
                    text(format!("PREPARE z_q AS {planted}; SELECT 1/0")),
                    Fails,
                ),
                s(Analyst, "EXECUTE z_q", Code("26000")),
            ],
        ),
        steps(
            "A's PREPARE rolled back",
            vec![
                fresh(
                    Analyst,
                    text(format!("BEGIN; PREPARE r_q AS {planted}; ROLLBACK")),
                    Works,
                ),
                x(Analyst, "EXECUTE r_q", &[], Code("26000")),
            ],
        ),
    ])
    .await;
    h.finish("leak_sql_prepared_statements_of_a_failed_transaction", 3);
}
