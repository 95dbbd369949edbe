//! The live suite (issue 15 item 7): what no PostgreSQL can stand in for, checked against a
//! real Amazon Redshift. It runs when `REDVEIL_REDSHIFT_URL` names the cluster as the query
//! role (the pool's login), `postgres://user:password@host:5439/dev`, and
//! `REDVEIL_REDSHIFT_CONTROL_USER` / `REDVEIL_REDSHIFT_CONTROL_PASSWORD` the control role
//! (sync's login: it creates `immuta_*` schemas and, for this suite, the scratch schema
//! `redveil_live`). TLS is required of the cluster; `REDVEIL_REDSHIFT_CA` (a PEM bundle, e.g.
//! Amazon's) turns on certificate verification. Otherwise it says
//! `skipped: REDVEIL_REDSHIFT_URL unset` and passes.
//!
//!     REDVEIL_REDSHIFT_URL=postgres://redveil_query:…@cluster…:5439/dev \
//!     REDVEIL_REDSHIFT_CONTROL_USER=redveil_system REDVEIL_REDSHIFT_CONTROL_PASSWORD=… \
//!     cargo test --test redshift_live -- --nocapture
//!
//! In order: the engine is named Redshift; every mask method gives on Redshift exactly what
//! its PostgreSQL spelling gives on the local test cluster; a proxy in Redshift mode syncs a
//! scratch copy of the demo table and serves its users (rows, masks, impersonation, bound
//! parameters, backslash literals, the result cache off, system views refused); and last, a
//! predicate that divides by zero on rows the row rule hides must not reveal them (without
//! RLS policies on the views, a Redshift plan may run it first: see the README).

mod common;

use redveil::config::Config;
use redveil::dialect::Dialect;
use redveil::policy::masks::{masked_expression, Column, ColumnKind, Context};
use redveil::policy::model::{MaskMethod, TruncateUnit};
use redveil::server::Server;

const SCHEMA: &str = "redveil_live";

/// A row of the scratch table; `salary` and `hired` as SQL literals take them.
struct Row {
    id: i32,
    name: &'static str,
    email: &'static str,
    ssn: &'static str,
    salary: &'static str,
    dept: &'static str,
    region: &'static str,
    hired: &'static str,
}

const ROWS: &[Row] = &[];

struct Live {
    host: String,
    port: u16,
    database: String,
    query_user: String,
    query_password: String,
    control_user: String,
    control_password: String,
    ca: Option<String>,
    /// `sslmode=disable` in the URL: for a rehearsal against a local Redshift-like cluster.
    plain: bool,
}

fn live() -> Option<Live> {
    let url = std::env::var("REDVEIL_REDSHIFT_URL").ok()?;
    let parsed: tokio_postgres::Config = url.parse().expect("REDVEIL_REDSHIFT_URL");
    let host = match parsed.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("REDVEIL_REDSHIFT_URL needs a TCP host"),
    };
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is unset"));
    Some(Live {
        host,
        port: parsed.get_ports().first().copied().unwrap_or(5439),
        database: parsed.get_dbname().unwrap_or("dev").to_string(),
        query_user: parsed
            .get_user()
            .expect("a user in REDVEIL_REDSHIFT_URL")
            .to_string(),
        query_password: String::from_utf8(
            parsed
                .get_password()
                .expect("a password in REDVEIL_REDSHIFT_URL")
                .to_vec(),
        )
        .expect("a UTF-8 password"),
        control_user: env("REDVEIL_REDSHIFT_CONTROL_USER"),
        control_password: env("REDVEIL_REDSHIFT_CONTROL_PASSWORD"),
        ca: std::env::var("REDVEIL_REDSHIFT_CA").ok(),
        plain: parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Disable,
    })
}

/// The proxy's configuration: the demo catalog with its table in the scratch schema.
fn config_text(live: &Live, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let certs = redveil::devcert::generate(dir).expect("dev certs");
    let tls = match (&live.ca, live.plain) {
        (Some(ca), _) => format!("tls = \"verify-full\"\nca_cert = \"{ca}\""),
        (None, true) => "tls = \"disable\"".to_string(),
        (None, false) => "tls = \"require\"".to_string(),
    };
    let backend = redveil::demo::dataset::DemoBackend {
        host: live.host.clone(),
        port: live.port,
        database: live.database.clone(),
        query_user: live.query_user.clone(),
        query_password: live.query_password.clone(),
        system_user: live.control_user.clone(),
        system_password: live.control_password.clone(),
    };
    let catalog = redveil::demo::catalog::catalog_toml(&backend, |user| {
        redveil::auth::ScramVerifier::generate_with(user, user.as_bytes(), 4096).to_string()
    })
    .replace(
        "table = \"hr.employees\"",
        &format!("table = \"{SCHEMA}.employees\""),
    );
    let toml = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n\
         {tls}\ndialect = \"redshift\"\n{catalog}",
        certs.server_cert.display(),
        certs.server_key.display(),
        live.host,
        live.port,
        live.database,
        live.query_user,
        live.query_password,
    );
    (toml, certs.ca_cert)
}

async fn count(client: &tokio_postgres::Client, sql: String) -> i64 {
    client
        .query_one(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redveil_in_front_of_a_real_redshift() {
    let Some(live) = live() else {
        eprintln!("skipped: REDVEIL_REDSHIFT_URL unset");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (toml, ca) = config_text(&live, dir.path());
    let config = Config::parse(&toml, std::path::Path::new("live.toml")).expect("config");

    let control = redveil::policy::control::pool(&config, &live.database)
        .await
        .expect("control pool");
    let control = control.get().await.expect("the control role logs in");
    let version: String = control
        .query_one("SELECT version()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        Dialect::from_version(&version),
        Dialect::Redshift,
        "{version}"
    );

    masks_match_postgres(&control).await;

    let mut setup = format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; \
         CREATE TABLE {SCHEMA}.employees (id INTEGER, name VARCHAR(256), email VARCHAR(256), \
         ssn VARCHAR(256), salary DECIMAL(12,2), dept VARCHAR(256), region VARCHAR(256), hired DATE); \
         INSERT INTO {SCHEMA}.employees VALUES "
    );
    let values: Vec<String> = ROWS
        .iter()
        .map(|r| {
            format!(
                "({}, '{}', '{}', '{}', {}, '{}', '{}', DATE '{}')",
                r.id, r.name, r.email, r.ssn, r.salary, r.dept, r.region, r.hired
            )
        })
        .collect();
    setup.push_str(&values.join(", "));
    control
        .batch_execute(&setup)
        .await
        .expect("the scratch table");

    let server = Server::bind(config)
        .await
        .expect("the proxy syncs and starts");
    let addr = server.local_addr();
    let stopper = server.stopper();
    tokio::spawn(server.serve());
    let connect = |user: &'static str| {
        let (ca, database) = (ca.clone(), live.database.clone());
        async move {
            common::proxy::connect_tls(
                &ca,
                &format!(
                    "host=localhost port={} dbname={database} user={user} password={user}",
                    addr.port(),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e:?}"))
        }
    };
    let eu = ROWS.iter().filter(|r| r.region == "EU").count() as i64;
    let table = format!("{SCHEMA}.employees");

    let analyst = connect("analyst").await;
    assert_eq!(
        count(&analyst, format!("SELECT count(*) FROM {table}")).await,
        eu
    );
    for row in analyst
        .query(
            &format!("SELECT name, email, ssn, salary FROM {table}"),
            &[],
        )
        .await
        .unwrap()
    {
        let name: String = row.get(0);
        let email: String = row.get(1);
        assert!(name.ends_with("***") && name.chars().count() == 4, "{name}");
        assert!(
            email.len() == 64 && email.bytes().all(|b| b.is_ascii_hexdigit()),
            "{email}"
        );
        assert_eq!(row.get::<_, Option<String>>(2), None);
    }
    let name: String = analyst
        .query_one(
            &format!("SELECT name FROM {table} WHERE id = $1"),
            &[&2_i32],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "B***", "a bound parameter on the policy view");
    let backslash: String = analyst
        .query_one(r"SELECT 'a\tb'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(backslash, "a\tb", "Redshift reads a backslash as an escape");
    let cache: String = analyst
        .query_one("SHOW enable_result_cache_for_session", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cache, "off");
    let refused = analyst
        .simple_query("SELECT querytxt FROM stl_query LIMIT 1")
        .await
        .expect_err("other sessions' statements");
    assert_eq!(
        refused.code().map(|c| c.code()),
        Some("42501"),
        "{refused:?}"
    );

    let admin = connect("admin").await;
    assert_eq!(
        count(&admin, format!("SELECT count(*) FROM {table}")).await,
        ROWS.len() as i64
    );
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    assert_eq!(
        count(&admin, format!("SELECT count(*) FROM {table}")).await,
        eu
    );

    // Last: whether a client's predicate runs before the row rule (see the module doc).
    let probe = analyst
        .query_one(
            &format!(
                "SELECT count(*) FROM {table} WHERE CASE WHEN region <> 'EU' THEN 1/(id - id) ELSE 1 END = 1"
            ),
            &[],
        )
        .await;
    control
        .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
        .await
        .unwrap();
    stopper.graceful();
    match probe {
        Ok(row) => assert_eq!(row.get::<_, i64>(0), eu),
        Err(e) => assert_ne!(
            e.code().map(|c| c.code()),
            Some("22012"),
            "the division by zero ran on rows the row rule hides: {e:?}"
        ),
    }
}

/// Each mask method over fixed values, on Redshift in its Redshift spelling and on the local
/// test cluster in its PostgreSQL spelling: the same text.
async fn masks_match_postgres(redshift: &tokio_postgres::Client) {
    let postgres = common::cluster()
        .connect_superuser("postgres")
        .await
        .unwrap();
    // PostgreSQL's own reading and functions, whichever cluster the harness started.
    postgres
        .batch_execute("SET standard_conforming_strings = on; SET search_path = pg_catalog")
        .await
        .unwrap();
    let text = Column {
        name: "v".into(),
        sql_type: "character varying(256)".into(),
        kind: ColumnKind::Text,
    };
    let number = Column {
        name: "v".into(),
        sql_type: "numeric(12,2)".into(),
        kind: ColumnKind::Number,
    };
    let date = Column {
        name: "v".into(),
        sql_type: "date".into(),
        kind: ColumnKind::Date,
    };
    let cases: Vec<(MaskMethod, &Column, &str)> = vec![
        (MaskMethod::Null, &text, "'x'"),
        (MaskMethod::Constant(r"it's \ hidden".into()), &text, "'x'"),
        (
            MaskMethod::Hash {
                cast_to_text: false,
            },
            &text,
            "'Zoë@example.com'",
        ),
        (MaskMethod::Hash { cast_to_text: true }, &number, "41234.56"),
        (
            MaskMethod::Regex {
                pattern: r"^(.)[^@]*@".into(),
                replacement: r"\1***@".into(),
            },
            &text,
            "'alice@example.com'",
        ),
        (
            MaskMethod::Round {
                step: "1000".into(),
            },
            &number,
            "41234.56",
        ),
        (
            MaskMethod::Round {
                step: "0.25".into(),
            },
            &number,
            "41234.56",
        ),
        (
            MaskMethod::Truncate {
                unit: TruncateUnit::Quarter,
            },
            &date,
            "DATE '2015-11-30'",
        ),
        (
            MaskMethod::RandomizedResponse {
                epsilon: 1.0,
                domain: vec!["hr".into(), "eng".into(), "sales".into(), "ops".into()],
                key: "id".into(),
            },
            &text,
            "'eng'",
        ),
    ];
    for (method, column, value) in cases {
        let mut answers = Vec::new();
        for (dialect, client) in [
            (Dialect::Redshift, redshift),
            (Dialect::Postgres, &postgres),
        ] {
            let raw = format!("CAST({value} AS {})", column.sql_type);
            let cx = Context {
                dialect,
                raw: &raw,
                column,
                salt: "'salt-1'",
                key: Some("7"),
            };
            let expr = masked_expression(&method, &cx).expect("a mask");
            let sql = format!("SELECT CAST({expr} AS {})", dialect.text_type());
            let answer: Option<String> = client
                .query_one(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
                .get(0);
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "{method:?} on {value}");
    }
}
