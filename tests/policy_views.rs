//! Policy views against a real PostgreSQL, queried directly on a query-role connection with
//! `immuta.user` set (as the proxy pins it): what each user sees, exactly, for every masking
//! method, row rule and subscription; the view's shape; randomized response; the security
//! barrier; the secure profile views and the impersonation stub.

mod common;

use common::policy::{self as pol, VERIFIER};
use tokio_postgres::{Client, SimpleQueryMessage};

type Rows = Vec<Vec<Option<String>>>;

/// Every row of a query, each value in text form, sorted (views may hash the key).
async fn rows(client: &Client, sql: &str) -> Rows {
    let mut out: Rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

async fn raw_rows(sql: &str) -> Rows {
    let admin = common::cluster()
        .connect_superuser("demo")
        .await
        .expect("superuser");
    rows(&admin, sql).await
}

/// Columns: id, name, email, ssn, salary, dept, region, hired.
fn text(row: &[Option<String>], i: usize) -> &str {
    row[i].as_deref().expect("not null")
}

/// Randomized response as masks.rs documents it, computed independently in Rust.
fn randomized(
    salt: &str,
    column: &str,
    key: &str,
    value: &str,
    domain: &[&str],
    epsilon: f64,
) -> Option<String> {
    domain.iter().position(|d| *d == value)?;
    let k = domain.len() as u64;
    let hex = pol::sha256_hex(&format!("{salt}:{column}:{key}"));
    let draw = u64::from_str_radix(&hex[..8], 16).unwrap();
    // Keep with r = (e^ε − 1) / (e^ε + k − 1), else one of k equal buckets picks a value.
    let e = epsilon.exp();
    let keep_below = ((e - 1.0) / (e + k as f64 - 1.0) * 4_294_967_296.0).floor() as u64;
    let bucket = (4_294_967_296 - keep_below).div_ceil(k);
    Some(if draw < keep_below {
        value.to_string()
    } else {
        domain[((draw - keep_below) / bucket) as usize].to_string()
    })
}

const DEPTS: [&str; 4] = ["hr", "eng", "sales", "ops"];

#[tokio::test]
async fn demo_users_see_exactly_their_policy() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&pol::demo_catalog())).await;
    let salt = pol::salt_of("hr.employees").await;
    let raw = raw_rows("SELECT * FROM hr.employees").await;
    let view = "SELECT * FROM immuta.hr_employees";

    // admin is in group hr: the raw table, every row and value.
    assert_eq!(rows(&pol::query_as(Some("admin")).await, view).await, raw);

    // analyst: EU rows only, every column masked as the demo catalog says.
    let mut expected: Rows = raw
        .iter()
        .filter(|r| text(r, 6) == "EU")
        .map(|r| {
            let salary: f64 = text(r, 4).parse().unwrap();
            vec![
                r[0].clone(),
                Some(format!("{}***", text(r, 1).chars().next().unwrap())),
                Some(pol::sha256_hex(&format!("{salt}{}", text(r, 2)))),
                None,
                Some(format!("{:.2}", (salary / 10_000.0).round() * 10_000.0)),
                randomized(&salt, "dept", text(r, 0), text(r, 5), &DEPTS, 1.0),
                r[6].clone(),
                r[7].clone(),
            ]
        })
        .collect();
    expected.sort();
    let analyst = rows(&pol::query_as(Some("analyst")).await, view).await;
    assert_eq!(analyst.len(), 3335);
    assert_eq!(analyst, expected);
    let first = &analyst[0];
    assert_eq!(
        (
            text(first, 0),
            text(first, 1),
            first[3].as_deref(),
            text(first, 4)
        ),
        ("1", "B***", None, "30000.00")
    );

    // bi_service has no region: nothing. Unknown users and unset immuta.user: nothing.
    for user in [Some("bi_service"), Some("mallory"), None] {
        assert_eq!(
            rows(&pol::query_as(user).await, view).await,
            Rows::new(),
            "{user:?}"
        );
    }
}

/// A catalog using every other method, every row rule form and every subscription form.
fn methods_catalog() -> String {
    format!(
        r#"
[[users]]
name = "auditor"
password = "{VERIFIER}"
groups = ["audit"]

[[users]]
name = "contractor"
password = "{VERIFIER}"
groups = ["contractors"]
attributes = {{ clearance = ["high"] }}

[[users]]
name = "intern"
password = "{VERIFIER}"
attributes = {{ region = ["APAC"] }}

[[users]]
name = "outsider"
password = "{VERIFIER}"
groups = ["contractors"]

[[data_sources]]
table = "hr.employees"
salt = "fixed-test-salt"

[data_sources.subscription]
users = ["intern"]
groups = ["audit"]
attributes = {{ clearance = ["high"] }}

[[data_sources.masks]]
column = "id"
method = "hash"
cast_to_text = true
unless_groups = ["audit"]

[[data_sources.masks]]
column = "ssn"
method = "constant"
value = "XXX-XX-XXXX"

[[data_sources.masks]]
column = "hired"
method = "truncate"
unit = "year"
unless_attributes = {{ clearance = ["high"] }}

[[data_sources.masks]]
column = "salary"
method = "round"
step = 1000
unless_groups = ["audit"]

[[data_sources.masks]]
column = "name"
method = "null"

[[data_sources.row_rules]]
where = "dept <> 'hr'"
for_groups = ["contractors"]

[[data_sources.row_rules]]
column = "region"
attribute = "region"
unless_groups = ["audit", "contractors"]
"#
    )
}

#[tokio::test]
async fn every_method_row_rule_and_subscription() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&methods_catalog())).await;
    // Expected values from independent SQL over the raw table (round(x, -3), make_date).
    let raw = raw_rows(
        "SELECT id::text, email, round(salary, -3)::numeric(12,2)::text, salary::text, dept, region, \
         make_date(extract(year FROM hired)::int, 1, 1)::text, hired::text FROM hr.employees",
    )
    .await;
    let expect = |keep: &dyn Fn(&[Option<String>]) -> bool,
                  hashed_id: bool,
                  rounded: bool,
                  truncated: bool| {
        let mut out: Rows = raw
            .iter()
            .filter(|r| keep(r))
            .map(|r| {
                let id = if hashed_id {
                    pol::sha256_hex(&format!("fixed-test-salt{}", text(r, 0)))
                } else {
                    text(r, 0).to_string()
                };
                vec![
                    Some(id),
                    None,
                    r[1].clone(),
                    Some("XXX-XX-XXXX".to_string()),
                    r[if rounded { 2 } else { 3 }].clone(),
                    r[4].clone(),
                    r[5].clone(),
                    r[if truncated { 6 } else { 7 }].clone(),
                ]
            })
            .collect();
        out.sort();
        out
    };
    let view = "SELECT * FROM immuta.hr_employees";
    let auditor = rows(&pol::query_as(Some("auditor")).await, view).await;
    assert_eq!(auditor.len(), 10_000);
    assert_eq!(auditor, expect(&|_| true, false, false, true));
    let contractor = rows(&pol::query_as(Some("contractor")).await, view).await;
    assert_eq!(contractor.len(), 7_500);
    assert_eq!(
        contractor,
        expect(&|r| text(r, 4) != "hr", true, true, false)
    );
    let intern = rows(&pol::query_as(Some("intern")).await, view).await;
    assert_eq!(intern.len(), 3_332);
    assert_eq!(intern, expect(&|r| text(r, 5) == "APAC", true, true, true));
    // outsider is a contractor without clearance: not subscribed.
    assert_eq!(
        rows(&pol::query_as(Some("outsider")).await, view).await,
        Rows::new()
    );

    // Same names, order and types as the table, except the hashed id, which is text
    // (VARCHAR(65535) on Redshift).
    let shape =
        "SELECT attnum::text, attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = '{}'::regclass AND attnum > 0 AND NOT attisdropped";
    let table = raw_rows(&shape.replace("{}", "hr.employees")).await;
    let mut wanted = table.clone();
    wanted[0][2] = Some(
        match common::dialect() {
            redveil::dialect::Dialect::Postgres => "text",
            redveil::dialect::Dialect::Redshift => "character varying(65535)",
        }
        .into(),
    );
    assert_eq!(
        raw_rows(&shape.replace("{}", "immuta.hr_employees")).await,
        wanted
    );
    assert_eq!(text(&table[4], 2), "numeric(12,2)");
}

#[tokio::test]
async fn randomized_response_keeps_at_rate_p_and_is_stable() {
    let _guard = pol::lock().await;
    let catalog = format!(
        "[[users]]\nname = \"everyone\"\npassword = \"{VERIFIER}\"\n\
         [[data_sources]]\ntable = \"hr.employees\"\nsalt = \"rr-salt\"\n\
         [[data_sources.masks]]\ncolumn = \"dept\"\nmethod = \"randomized_response\"\nepsilon = 1.0\n\
         domain = [\"hr\", \"eng\", \"sales\", \"ops\"]\nkey = \"id\"\n"
    );
    pol::sync(&pol::config(&catalog)).await;
    let raw = raw_rows("SELECT id::text, dept FROM hr.employees").await;
    let client = pol::query_as(Some("everyone")).await;
    let sql = "SELECT id::text, dept FROM immuta.hr_employees";
    let seen = rows(&client, sql).await;
    assert_eq!(
        rows(&client, sql).await,
        seen,
        "the same query twice, the same noise"
    );
    let expected: Rows = raw
        .iter()
        .map(|r| {
            vec![
                r[0].clone(),
                randomized("rr-salt", "dept", text(r, 0), text(r, 1), &DEPTS, 1.0),
            ]
        })
        .collect();
    assert_eq!(seen, expected);

    // p = e / (e + 3) = 0.4754; 10 000 draws have σ = 0.005, so 4σ = 0.02.
    let p = 1f64.exp() / (1f64.exp() + 3.0);
    let mut shifts = [0usize; 4];
    for (r, s) in raw.iter().zip(&seen) {
        let from = DEPTS.iter().position(|d| *d == text(r, 1)).unwrap();
        let to = DEPTS.iter().position(|d| *d == text(s, 1)).unwrap();
        shifts[(to + 4 - from) % 4] += 1;
    }
    let kept = shifts[0] as f64 / 10_000.0;
    assert!((kept - p).abs() < 0.02, "keep rate {kept} vs p = {p}");
    // The others are uniform: each gets (1 − p) / 3 = 0.1749 of the rows.
    for n in &shifts[1..] {
        let share = *n as f64 / 10_000.0;
        assert!((share - (1.0 - p) / 3.0).abs() < 0.016, "{shifts:?}");
    }
}

#[tokio::test]
async fn a_leaky_client_function_sees_only_what_the_view_shows() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&pol::demo_catalog())).await;
    let client = pol::query_as(Some("analyst")).await;
    client
        .batch_execute(
            "CREATE TEMP TABLE seen (v text);
             CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
                 AS $$ BEGIN INSERT INTO seen VALUES ($1); RETURN true; END $$;",
        )
        .await
        .expect("temp function");
    let visible = rows(
        &client,
        "SELECT count(*) FROM immuta.hr_employees WHERE pg_temp.leak(region || '|' || coalesce(ssn, '-'))",
    )
    .await;
    assert_eq!(visible, vec![vec![Some("3335".to_string())]]);
    let seen = rows(&client, "SELECT v, count(*) FROM seen GROUP BY v").await;
    assert_eq!(
        seen,
        vec![vec![Some("EU|-".to_string()), Some("3335".to_string())]]
    );
}

#[tokio::test]
async fn secure_profile_views_and_the_impersonation_stub() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&pol::demo_catalog())).await;
    let client = pol::query_as(Some("analyst")).await;
    let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_profile").await,
        vec![some(&["analyst", "f"])]
    );
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_attributes").await,
        vec![some(&["region", "EU"])]
    );
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_groups").await,
        Rows::new()
    );
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_access").await,
        vec![some(&["hr.employees"])]
    );
    pol::set_user(&client, "admin").await;
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_groups").await,
        vec![some(&["hr"])]
    );
    assert_eq!(
        rows(&client, "SELECT * FROM immuta_system.user_profile").await,
        vec![some(&["admin", "t"])]
    );

    let err = client
        .batch_execute("CALL immuta_procedures.impersonate_user('admin')")
        .await
        .expect_err("direct connections cannot impersonate");
    let db = err.as_db_error().expect("a database error");
    // Redshift's RAISE takes no SQLSTATE: it is raise_exception's there.
    let code = match common::dialect() {
        redveil::dialect::Dialect::Postgres => "0A000",
        redveil::dialect::Dialect::Redshift => "P0001",
    };
    assert_eq!(db.code().code(), code);
    assert_eq!(
        db.message(),
        "immuta_procedures.impersonate_user works only through the redveil proxy; connect through it to impersonate a user"
    );
}

/// The class views (the proxy's fast path, see policy/classes.rs) show each user exactly what
/// the canonical view shows, with the same shape, once the proxy's pin has run; a session
/// without the pin, or pinned for another class, sees nothing.
#[tokio::test]
async fn class_views_match_the_canonical_view_for_every_user() {
    use redveil::policy::classes::{Entitlement, CLASSES_SCHEMA};
    use redveil::policy::Catalog;
    let _guard = pol::lock().await;
    for catalog_text in [pol::demo_catalog(), methods_catalog()] {
        let config = pol::config(&catalog_text);
        pol::sync(&config).await;
        let tokens = pol::tokens();
        let catalog = Catalog::from_config(&config).unwrap();
        let ds = &catalog.data_sources[0];
        let canonical = format!("SELECT * FROM {}.{}", catalog.view_schema, ds.view_name());
        let shape = "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                     WHERE attrelid = '{}'::regclass AND attnum > 0 ORDER BY attnum";
        let users: Vec<&str> = catalog.users.iter().map(|u| u.name.as_str()).collect();
        let mut classes_seen = Vec::new();
        for user in users.iter().copied().chain(["mallory"]) {
            let entitlement = Entitlement::of(&catalog, &tokens, user);
            let expected = rows(&pol::query_as(Some(user)).await, &canonical).await;
            let Some(class) = entitlement.views.get(&ds.table.key()) else {
                assert_eq!(expected, Rows::new(), "{user} is not subscribed");
                continue;
            };
            let class_view = format!("{CLASSES_SCHEMA}.{class}");
            let pinned = pol::query_as(None).await;
            assert_eq!(
                rows(&pinned, &format!("SELECT * FROM {class_view}")).await,
                Rows::new(),
                "{class_view} without the pin"
            );
            pol::set_user(&pinned, user).await;
            let seen = rows(&pinned, &format!("SELECT * FROM {class_view}")).await;
            assert_eq!(seen, expected, "{user} through {class_view}");
            assert_eq!(
                raw_rows(&shape.replace("{}", &class_view)).await,
                raw_rows(&shape.replace("{}", &canonical[14..])).await,
                "{class_view} has the canonical view's shape"
            );
            classes_seen.push((class_view, user));
        }
        // A session pinned for one class sees nothing through another class's view.
        for (view, _) in &classes_seen {
            for (other_view, other_user) in &classes_seen {
                if view == other_view {
                    continue;
                }
                let client = pol::query_as(Some(other_user)).await;
                assert_eq!(
                    rows(&client, &format!("SELECT * FROM {view}")).await,
                    Rows::new(),
                    "{view} pinned for {other_view}"
                );
            }
        }
        assert!(classes_seen.len() >= 2, "{classes_seen:?}");
    }
}
