//! Fidelity: for statements that touch no registered table, the backend messages a client
//! receives through the proxy are byte-identical to those of a direct connection with the same
//! session settings — in the simple protocol, and in the extended protocol with text and with
//! binary result formats.

mod common;

use bytes::BytesMut;
use common::proxy;
use common::raw::{self, Msg, RawConn};
use redveil::protocol::tag;

/// Sent as startup parameters on both paths; deliberately not the server's defaults, so a
/// proxy that failed to apply them would show in the compared bytes.
const SETTINGS: &[(&str, &str)] = &[
    ("application_name", "fidelity"),
    ("TimeZone", "Asia/Kolkata"),
    ("DateStyle", "ISO, DMY"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
];

/// Statements covering the types drivers decode, NULLs, errors, notices and odd replies.
const QUERIES: &[&str] = &[
    "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, -32768::int2, 2147483647::int4",
    "SELECT 12345.6789::numeric(12,4), 'NaN'::numeric, -0.000001::numeric, 10::numeric ^ 300",
    "SELECT 1.5::float4, 2.25::float8, 'Infinity'::float8, '-0'::float8, 0.1::float8",
    "SELECT 12.34::money, 255::oid, 'x'::\"char\", 'abc'::name",
    "SELECT '2024-02-29 13:14:15.123456+05:30'::timestamptz, 'epoch'::timestamptz, 'infinity'::timestamptz",
    "SELECT '2024-02-29 13:14:15'::timestamp, '2024-02-29'::date, '-infinity'::date",
    "SELECT '13:14:15.5'::time, '13:14:15+02'::timetz",
    "SELECT '1 year 2 months 3 days 04:05:06.789'::interval, '-1 day'::interval, make_interval(days => 10, secs => 1.5)",
    "SELECT ARRAY[1, 2, NULL, 4]::int[], '{{1,2},{3,4}}'::int[], '{}'::int8[]",
    "SELECT ARRAY['a', 'b c', NULL, '\"q\"', '']::text[], ARRAY[1.5, NULL]::numeric[]",
    "SELECT ARRAY['2024-01-01 00:00:00+00'::timestamptz], ARRAY['{\"a\":1}'::jsonb, NULL]",
    "SELECT '{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"\\u00e9\"}'::json",
    "SELECT '{\"b\":[1,2],\"a\":{\"x\":\"y\"},\"n\":1.50}'::jsonb, '[]'::jsonb, 'null'::jsonb",
    "SELECT jsonb_build_object('k', ARRAY[1,2], 'v', NULL), json_agg(g) FROM generate_series(1, 3) g",
    "SELECT '\\xdeadbeef00ff'::bytea, ''::bytea, NULL::bytea",
    "SELECT decode(repeat('00ff7f80', 20000), 'hex') AS big_bytea",
    "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '00000000-0000-0000-0000-000000000000'::uuid",
    "SELECT NULL::int, NULL::text, NULL::jsonb, NULL::uuid, NULL",
    "SELECT true, false, NULL::bool",
    "SELECT 'héllo wörld ✓'::text, ''::text, 'x'::char(5), 'y'::varchar(3), E'tab\\there'",
    "SELECT '192.168.1.0/24'::cidr, '10.0.0.1'::inet, '08:00:2b:01:02:03'::macaddr",
    "SELECT '(1,2)'::point, '[1,5)'::int4range, 'empty'::numrange, '[2024-01-01,2024-02-01)'::daterange",
    "SELECT 'a fat cat sat'::tsvector, 'fat & cat'::tsquery, B'1011'::bit(4), 'pg_class'::regclass",
    "SELECT ROW(1, 'x', NULL)",
    "SELECT * FROM hr.employees ORDER BY id LIMIT 50",
    "SELECT dept, region, count(*), sum(salary), avg(salary), min(hired) FROM hr.employees GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT id, hired, salary, hired::timestamptz FROM hr.employees WHERE id BETWEEN 100 AND 300 ORDER BY id",
    "SELECT n, n * 1.5, repeat('z', n % 17) FROM generate_series(1, 2000) n",
    "SELECT 1 WHERE false",
    "SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle'), current_setting('extra_float_digits'), current_setting('application_name')",
    "SHOW TimeZone",
    "SELECT 1/0",
    "SELECT * FROM no_such_table",
    "SELECT 'not a number'::int",
    "DO $$BEGIN RAISE NOTICE 'fidelity notice %', 42; RAISE WARNING 'careful' USING ERRCODE = '01R01'; END$$",
    "",
    "SELECT 1; SELECT 'two'",
    "VALUES (1, 'one'), (2, NULL)",
];

/// A proxy, a client of it, and a direct connection, all with [`SETTINGS`].
async fn both() -> (proxy::TestProxy, RawConn, RawConn) {
    let p = proxy::start("").await;
    let through = RawConn::proxy(&p, "analyst", SETTINGS).await;
    let direct = RawConn::direct(SETTINGS).await;
    (p, through, direct)
}

/// Sends the same bytes on both connections and returns both replies up to ReadyForQuery.
async fn exchange(through: &mut RawConn, direct: &mut RawConn, bytes: &[u8]) -> Vec<Msg> {
    through.send(bytes).await;
    let via_proxy = through.until_ready().await;
    direct.send(bytes).await;
    let straight = direct.until_ready().await;
    assert_same(&via_proxy, &straight, bytes);
    via_proxy
}

fn assert_same(via_proxy: &[Msg], straight: &[Msg], request: &[u8]) {
    let request = String::from_utf8_lossy(&request[..request.len().min(200)]);
    for (i, (a, b)) in via_proxy.iter().zip(straight).enumerate() {
        assert!(
            a == b,
            "message {i} differs for {request:?}\n proxy:  {a:?}\n direct: {b:?}"
        );
    }
    assert_eq!(
        via_proxy.len(),
        straight.len(),
        "message count differs for {request:?}\n proxy:  {via_proxy:?}\n direct: {straight:?}"
    );
}

fn simple(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    redveil::protocol::frontend::query(&mut out, sql);
    out
}

/// Parse, Describe statement, Bind with the given result formats, Describe portal, Execute, Sync.
fn extended(sql: &str, result_formats: &[i16]) -> BytesMut {
    let mut out = BytesMut::new();
    raw::parse(&mut out, "", sql);
    raw::describe(&mut out, b'S', "");
    raw::bind(&mut out, "", "", &[], result_formats);
    raw::describe(&mut out, b'P', "");
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    out
}

fn tags(messages: &[Msg]) -> String {
    messages.iter().map(|m| m.tag as char).collect()
}

#[tokio::test]
async fn simple_protocol_results_are_byte_identical() {
    let (_proxy, mut through, mut direct) = both().await;
    let mut rows = 0;
    for sql in QUERIES {
        let replies = exchange(&mut through, &mut direct, &simple(sql)).await;
        rows += replies.iter().filter(|m| m.tag == tag::DATA_ROW).count();
    }
    assert!(
        QUERIES.len() >= 30,
        "the corpus covers at least 30 statements"
    );
    assert!(rows > 2_000, "the corpus returned rows ({rows})");
}

#[tokio::test]
async fn extended_protocol_text_results_are_byte_identical() {
    let (_proxy, mut through, mut direct) = both().await;
    for sql in QUERIES {
        exchange(&mut through, &mut direct, &extended(sql, &[])).await;
    }
}

#[tokio::test]
async fn extended_protocol_binary_results_are_byte_identical() {
    let (_proxy, mut through, mut direct) = both().await;
    let mut binary_rows = 0;
    for sql in QUERIES {
        let replies = exchange(&mut through, &mut direct, &extended(sql, &[1])).await;
        binary_rows += replies.iter().filter(|m| m.tag == tag::DATA_ROW).count();
    }
    assert!(binary_rows > 2_000);
    // Spot check that binary really was asked for and given: int4 2 as 4 big-endian bytes.
    let replies = exchange(&mut through, &mut direct, &extended("SELECT 2::int4", &[1])).await;
    let row = replies.iter().find(|m| m.tag == tag::DATA_ROW).unwrap();
    assert_eq!(row.body(), &[0, 1, 0, 0, 0, 4, 0, 0, 0, 2]);
}

#[tokio::test]
async fn session_settings_match_on_both_paths() {
    let (_proxy, mut through, mut direct) = both().await;
    let replies = exchange(
        &mut through,
        &mut direct,
        &simple("SELECT current_setting('TimeZone'), current_setting('DateStyle'), '2024-02-29 12:00:00+00'::timestamptz::text"),
    )
    .await;
    let row = replies.iter().find(|m| m.tag == tag::DATA_ROW).unwrap();
    let text = String::from_utf8_lossy(row.body());
    assert!(text.contains("Asia/Kolkata"), "{text}");
    assert!(text.contains("ISO, DMY"), "{text}");
    assert!(text.contains("2024-02-29 17:30:00+05:30"), "{text}");
}

#[tokio::test]
async fn named_statements_portals_and_row_limits_are_byte_identical() {
    let (_proxy, mut through, mut direct) = both().await;
    // A named statement (renamed on the backend by the proxy), binary and text columns mixed,
    // a parameter, a portal read three rows at a time, and Close.
    let mut out = BytesMut::new();
    raw::parse(
        &mut out,
        "fid_s1",
        "SELECT id, name, salary, hired FROM hr.employees WHERE id <= $1 ORDER BY id",
    );
    raw::describe(&mut out, b'S', "fid_s1");
    raw::bind(&mut out, "fid_p1", "fid_s1", &[Some(b"8")], &[1, 0, 1, 1]);
    raw::describe(&mut out, b'P', "fid_p1");
    raw::execute(&mut out, "fid_p1", 3);
    raw::execute(&mut out, "fid_p1", 3);
    raw::execute(&mut out, "fid_p1", 3);
    raw::sync(&mut out);
    let replies = exchange(&mut through, &mut direct, &out).await;
    assert_eq!(tags(&replies), "1tT2TDDDsDDDsDDCZ");

    // The same statement again in a new transaction, then closed; an unnamed portal of it.
    let mut out = BytesMut::new();
    raw::bind(&mut out, "", "fid_s1", &[Some(b"2")], &[1]);
    raw::execute(&mut out, "", 0);
    out.extend_from_slice(&{
        let mut c = BytesMut::new();
        redveil::protocol::frontend::close_statement(&mut c, "fid_s1");
        c
    });
    raw::sync(&mut out);
    let replies = exchange(&mut through, &mut direct, &out).await;
    assert_eq!(tags(&replies), "2DDC3Z");

    // Using it after Close fails the same way on both paths.
    let mut out = BytesMut::new();
    raw::bind(&mut out, "", "fid_s1", &[Some(b"2")], &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    let replies = exchange(&mut through, &mut direct, &out).await;
    assert_eq!(raw::error_codes(&replies), ["26000"]);
}

#[tokio::test]
async fn transactions_and_parameter_status_changes_are_byte_identical() {
    let (_proxy, mut through, mut direct) = both().await;
    for sql in [
        "BEGIN",
        "SELECT txid_current() IS NOT NULL",
        "SELECT 1/0",
        "SELECT 1",
        "ROLLBACK",
        "SET application_name = 'fidelity-2'",
        "SHOW application_name",
        "BEGIN; SELECT 'in'; COMMIT",
    ] {
        exchange(&mut through, &mut direct, &simple(sql)).await;
    }
    let replies = exchange(
        &mut through,
        &mut direct,
        &simple("SET DateStyle = 'SQL, MDY'"),
    )
    .await;
    assert!(
        replies.iter().any(|m| m.tag == tag::PARAMETER_STATUS),
        "DateStyle change reported: {replies:?}"
    );
    exchange(
        &mut through,
        &mut direct,
        &simple("SELECT '2024-02-29 13:14:15+00'::timestamptz"),
    )
    .await;
}

/// A message whose text is raw bytes: SQL as a client writes it in its own encoding.
fn message_of_bytes(message_tag: u8, parts: &[&[u8]]) -> BytesMut {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(part);
    }
    let mut out = BytesMut::new();
    redveil::protocol::frontend::put_message(&mut out, message_tag, &body);
    out
}

fn simple_bytes(sql: &[u8]) -> BytesMut {
    message_of_bytes(tag::QUERY, &[sql, b"\0"])
}

/// Parse, Bind, Execute, Sync of the unnamed statement with the text as raw bytes.
fn extended_bytes(sql: &[u8]) -> BytesMut {
    let mut out = message_of_bytes(tag::PARSE, &[b"\0", sql, b"\0\0\0"]);
    raw::bind(&mut out, "", "", &[], &[]);
    raw::execute(&mut out, "", 0);
    raw::sync(&mut out);
    out
}

/// The SQLSTATE and message of the one error among `replies`.
fn error_of(replies: &[Msg]) -> (String, String) {
    let errors: Vec<_> = replies
        .iter()
        .filter(|m| m.tag == tag::ERROR_RESPONSE)
        .map(|m| {
            let fields = m.fields();
            (fields.code.clone(), fields.message.clone())
        })
        .collect();
    assert_eq!(errors.len(), 1, "one error: {replies:?}");
    errors[0].clone()
}

#[tokio::test]
async fn single_byte_client_encodings_are_relayed_byte_for_byte() {
    let p = proxy::start("").await;
    if common::dialect() == redveil::dialect::Dialect::Redshift {
        return p.assert_refuses_client_encoding("KOI8R").await;
    }
    for encoding in ["LATIN1", "KOI8R", "WIN1251"] {
        let settings = [("client_encoding", encoding)];
        let mut through = RawConn::proxy(&p, "analyst", &settings).await;
        let mut direct = RawConn::direct(&settings).await;
        for sql in [
            &b"SELECT 'caf\xe9' AS \"\xe9t\xe9\", length('\xe9\xe8\xff')"[..],
            b"SELECT upper('\xe0\xe9\xee'), '\xc0' = '\xc0' -- \xe9\xe9\n",
            b"SELECT $q$\xe9'$q$, E'\xe9\\''",
        ] {
            exchange(&mut through, &mut direct, &simple_bytes(sql)).await;
            exchange(&mut through, &mut direct, &extended_bytes(sql)).await;
        }
    }
}

#[tokio::test]
async fn a_byte_the_client_encoding_does_not_allow_fails_the_statement_not_the_connection() {
    let (_proxy, mut through, mut direct) = both().await;
    for request in [
        simple_bytes(b"SELECT 'caf\xe9'"),
        extended_bytes(b"SELECT 'caf\xe9'"),
    ] {
        through.send(&request).await;
        let via_proxy = through.until_ready().await;
        direct.send(&request).await;
        let straight = direct.until_ready().await;
        assert_eq!(error_of(&via_proxy), error_of(&straight));
        assert_eq!(error_of(&via_proxy).0, "22021");
        exchange(&mut through, &mut direct, &simple("SELECT 'still here'")).await;
    }
    // Switching encodings mid-session changes how the proxy reads the next statement.
    exchange(
        &mut through,
        &mut direct,
        &simple("SET client_encoding TO 'latin1'"),
    )
    .await;
    exchange(
        &mut through,
        &mut direct,
        &simple_bytes(b"SELECT 'caf\xe9'"),
    )
    .await;
    exchange(&mut through, &mut direct, &simple("RESET client_encoding")).await;
    through.send(&simple_bytes(b"SELECT 'caf\xe9'")).await;
    assert_eq!(error_of(&through.until_ready().await).0, "22021");
}

#[tokio::test]
async fn client_only_multibyte_encodings_pass_ascii_and_refuse_what_could_hide_a_quote() {
    let (_proxy, mut through, mut direct) = both().await;
    exchange(
        &mut through,
        &mut direct,
        &simple("SET client_encoding TO 'SJIS'"),
    )
    .await;
    exchange(&mut through, &mut direct, &simple("SELECT 'ascii only', 1")).await;
    // 0x95 0x5c is one SJIS character; its second byte is a backslash to any other reader.
    through.send(&simple_bytes(b"SELECT '\x95\x5c'")).await;
    let replies = through.until_ready().await;
    assert_eq!(error_of(&replies).0, "0A000", "{replies:?}");
    exchange(&mut through, &mut direct, &simple("SELECT 'after'")).await;
}

#[tokio::test]
async fn text_in_a_client_encoding_survives_replay_on_a_pooled_connection() {
    let p = proxy::start("[pool]\nsize = 1\n").await;
    if common::dialect() == redveil::dialect::Dialect::Redshift {
        return p.assert_refuses_client_encoding("LATIN1").await;
    }
    let settings = [("client_encoding", "LATIN1")];
    let mut through = RawConn::proxy(&p, "analyst", &settings).await;
    let mut direct = RawConn::direct(&settings).await;
    let mut other = RawConn::proxy(&p, "analyst", &[("client_encoding", "UTF8")]).await;
    for sql in [
        &b"SET application_name = 'caf\xe9'"[..],
        b"PREPARE accented AS SELECT 'caf\xe9' AS \"\xe9\", length('\xe9\xe8')",
    ] {
        exchange(&mut through, &mut direct, &simple_bytes(sql)).await;
    }
    // The one backend connection serves another client in between: the first client's state
    // is replayed on it afterwards.
    let replies = other.simple("SELECT 'caf\u{e9}'").await;
    assert!(raw::error_codes(&replies).is_empty(), "{replies:?}");
    for sql in [
        "EXECUTE accented",
        "SHOW application_name",
        "SHOW client_encoding",
    ] {
        exchange(&mut through, &mut direct, &simple(sql)).await;
    }
}

/// The ParameterStatus messages of a login, by name.
fn parameter_statuses(conn: &RawConn) -> std::collections::BTreeMap<String, String> {
    conn.startup
        .iter()
        .filter(|m| m.tag == tag::PARAMETER_STATUS)
        .map(|m| {
            let (name, value) =
                redveil::protocol::backend::decode_parameter_status(m.body()).expect("status");
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn startup_parameters_are_reported_and_applied_as_the_server_does() {
    let p = proxy::start("").await;
    // As drivers send them: node-postgres quotes its encoding; a search_path list; names and
    // values in any case.
    let settings = [
        ("client_encoding", "'utf-8'"),
        ("datestyle", "iso"),
        ("TimeZone", "utc"),
        ("application_name", "startup"),
        ("search_path", "hr, public"),
        ("standard_conforming_strings", "on"),
    ];
    let mut through = RawConn::proxy(&p, "analyst", &settings).await;
    let mut direct = RawConn::direct(&settings).await;
    assert_eq!(parameter_statuses(&through), parameter_statuses(&direct));
    for sql in [
        "SELECT current_schemas(false)",
        "SHOW DateStyle",
        "SHOW TimeZone",
        "SELECT count(*) FROM employees",
    ] {
        exchange(&mut through, &mut direct, &simple(sql)).await;
    }
}

#[tokio::test]
async fn a_startup_setting_the_server_refuses_ends_the_login_as_it_would_directly() {
    let p = proxy::start("").await;
    let demo = common::demo();
    for (options, code) in [
        ("-c no_such_setting=1", "42704"),
        ("-c DateStyle=bogus", "22023"),
    ] {
        let direct = common::connect(&format!(
            "host={} port={} dbname={} user={} password={} options='{options}'",
            demo.host, demo.port, demo.database, demo.query_user, demo.query_password
        ))
        .await
        .expect_err("refused directly");
        let through = p
            .connect_with(&format!("{} options='{options}'", p.conn_string("analyst")))
            .await
            .expect_err("refused through the proxy");
        let (direct, through) = (direct.as_db_error(), through.as_db_error());
        assert_eq!(
            through.map(|e| (e.code().code(), e.message(), e.severity())),
            direct.map(|e| (e.code().code(), e.message(), e.severity())),
        );
        assert_eq!(through.map(|e| e.code().code()), Some(code));
    }
}

#[tokio::test]
async fn in_session_mode_protocol_statements_keep_their_names_for_sql() {
    let p = proxy::start("[pool]\nmode = \"session\"\n").await;
    let mut through = RawConn::proxy(&p, "analyst", SETTINGS).await;
    let mut direct = RawConn::direct(SETTINGS).await;
    let mut prepare = BytesMut::new();
    raw::parse(&mut prepare, "by_protocol", "SELECT $1::int + 1 AS next");
    raw::sync(&mut prepare);
    exchange(&mut through, &mut direct, &prepare).await;
    for sql in [
        "EXECUTE by_protocol(41)",
        "SELECT name, statement FROM pg_prepared_statements ORDER BY name",
    ] {
        exchange(&mut through, &mut direct, &simple(sql)).await;
    }
    // The name is taken, for the protocol as for SQL, until it is deallocated.
    through.send(&prepare).await;
    direct.send(&prepare).await;
    let (via_proxy, straight) = (through.until_ready().await, direct.until_ready().await);
    assert_eq!(error_of(&via_proxy), error_of(&straight));
    exchange(&mut through, &mut direct, &simple("DEALLOCATE by_protocol")).await;
    exchange(&mut through, &mut direct, &prepare).await;
    // Closed by the protocol, the name is free again for SQL.
    let mut close = BytesMut::new();
    frontend_close_statement(&mut close, "by_protocol");
    raw::sync(&mut close);
    exchange(&mut through, &mut direct, &close).await;
    for sql in [
        "PREPARE by_protocol AS SELECT 'sql'",
        "EXECUTE by_protocol",
        "DEALLOCATE by_protocol",
    ] {
        exchange(&mut through, &mut direct, &simple(sql)).await;
    }
}

fn frontend_close_statement(out: &mut BytesMut, name: &str) {
    redveil::protocol::frontend::close_statement(out, name);
}

#[tokio::test]
async fn in_session_mode_the_client_knows_its_backends_process_id() {
    let p = proxy::start("[pool]\nmode = \"session\"\n").await;
    let mut through = RawConn::proxy(&p, "analyst", &[]).await;
    let key_pid = through
        .startup
        .iter()
        .find(|m| m.tag == tag::BACKEND_KEY_DATA)
        .map(|m| i32::from_be_bytes(m.body()[..4].try_into().unwrap()))
        .expect("BackendKeyData");
    let replies = through
        .simple("LISTEN fidelity; NOTIFY fidelity, 'hi'; SELECT pg_backend_pid()")
        .await;
    let notified_by = replies
        .iter()
        .find(|m| m.tag == tag::NOTIFICATION)
        .map(|m| i32::from_be_bytes(m.body()[..4].try_into().unwrap()))
        .expect("the notification");
    let row = replies
        .iter()
        .find(|m| m.tag == tag::DATA_ROW)
        .expect("pg_backend_pid()");
    let backend_pid: i32 = String::from_utf8_lossy(&row.body()[6..]).parse().unwrap();
    assert_eq!((key_pid, notified_by), (backend_pid, backend_pid));
}

/// What a RESET of a setting given at startup does from the next statement on is what it
/// does directly: the startup value is back. (The ParameterStatus the RESET itself brings
/// reports the server's default: known and left, see the issue note.)
#[tokio::test]
async fn reset_goes_back_to_the_startup_value_as_on_a_direct_connection() {
    for pool in ["", "[pool]\nmode = \"session\"\n"] {
        let p = proxy::start(pool).await;
        let mut through = RawConn::proxy(&p, "analyst", SETTINGS).await;
        let mut direct = RawConn::direct(SETTINGS).await;
        for sql in [
            "SET DateStyle = 'German'",
            "RESET DateStyle",
            "SHOW DateStyle",
            "SELECT '2024-02-29'::date",
            "SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'",
            "RESET ALL",
            "SELECT current_setting('TimeZone'), current_setting('IntervalStyle')",
            "SET DateStyle TO DEFAULT",
            "SHOW DateStyle",
            "SET TIME ZONE 'UTC'",
            "RESET TIME ZONE",
            "SHOW TimeZone",
        ] {
            if sql.starts_with("RESET") || sql.ends_with("DEFAULT") {
                let without_status = |replies: Vec<Msg>| -> Vec<Msg> {
                    replies
                        .into_iter()
                        .filter(|m| m.tag != tag::PARAMETER_STATUS)
                        .collect()
                };
                through.send(&simple(sql)).await;
                direct.send(&simple(sql)).await;
                let via_proxy = without_status(through.until_ready().await);
                let straight = without_status(direct.until_ready().await);
                assert_same(&via_proxy, &straight, sql.as_bytes());
            } else {
                exchange(&mut through, &mut direct, &simple(sql)).await;
            }
        }
    }
}

/// pg_dump starts with `SELECT pg_catalog.set_config('search_path', '', false)`: with tables
/// registered, the call is tracked like SET, its value read raw as the server reads it, and
/// replayed on every backend connection the client gets later (transaction mode, two
/// connections taking turns).
#[tokio::test]
async fn set_config_of_search_path_follows_the_client_like_set() {
    let p = common::demo_views::start("[pool]\nsize = 2\nreuse = \"rotate\"\n").await;
    let analyst = p.connect("analyst").await.unwrap();
    let eu = common::demo_views::eu_rows().await;
    analyst
        .batch_execute("SELECT pg_catalog.set_config('search_path', 'hr, public', false)")
        .await
        .unwrap();
    for _ in 0..3 {
        let shown: String = analyst
            .query_one("SHOW search_path", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(shown, "hr, public");
        assert_eq!(
            common::demo_views::count(&analyst, "SELECT count(*) FROM employees").await,
            eu,
            "the view, through the tracked search_path"
        );
    }
    analyst
        .batch_execute("SELECT pg_catalog.set_config('search_path', '', false)")
        .await
        .unwrap();
    for _ in 0..3 {
        let error = analyst
            .query_one("SELECT count(*) FROM employees", &[])
            .await
            .unwrap_err();
        assert_eq!(common::demo_views::sqlstate(&error), "42P01", "{error}");
    }
}
