//! Catalog sync against a real PostgreSQL: idempotence and change reports, live catalog
//! changes, privileges of the query role, validation errors that name the item, the
//! explain-policy command and the sync at proxy start.

mod common;

use common::policy::{self as pol, VERIFIER};
use redveil::policy::{Change, SyncError};
use tokio_postgres::error::SqlState;

async fn count(client: &tokio_postgres::Client, sql: &str) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

fn profile_rows(table: &str, added: usize, removed: usize) -> Change {
    Change::ProfileRows {
        table: format!("immuta_system.{table}"),
        added,
        removed,
    }
}

#[tokio::test]
async fn sync_is_idempotent_and_reports_what_it_changed() {
    let _guard = pol::lock().await;
    let demo = pol::demo_catalog();
    let without_analyst = demo.replace(
        &format!(
            "name = \"analyst\"\npassword = \"{VERIFIER}\"\nattributes = {{ region = [\"EU\"] }}\n"
        ),
        &format!("name = \"other\"\npassword = \"{VERIFIER}\"\n"),
    );
    assert_ne!(without_analyst, demo);
    pol::sync(&pol::config(&without_analyst)).await;

    // Users are not part of the view's text: only profile rows change.
    let report = pol::sync(&pol::config(&demo)).await;
    assert_eq!(
        report.changes,
        [
            profile_rows("profile_users", 1, 1),
            profile_rows("profile_attributes", 1, 0),
            profile_rows("profile_access", 1, 1),
        ]
    );
    let again = pol::sync(&pol::config(&demo)).await;
    assert!(again.is_unchanged(), "{again}");
    assert_eq!(again.to_string(), "demo: policy up to date");
}

#[tokio::test]
async fn sync_repairs_views_and_grants_changed_behind_its_back() {
    let _guard = pol::lock().await;
    let config = pol::config(&pol::demo_catalog());
    pol::sync(&config).await;
    pol::system()
        .await
        .batch_execute(
            "DROP VIEW immuta.hr_employees; DROP VIEW immuta_classes.hr_employees__c0; \
             REVOKE SELECT ON immuta_classes.hr_employees__c1 FROM redveil_query",
        )
        .await
        .unwrap();
    let report = pol::sync(&config).await;
    let view = |view: &str| (view.to_string(), "hr.employees".to_string());
    assert_eq!(
        report.changes,
        [
            {
                let (view, data_source) = view("immuta.hr_employees");
                Change::ReplacedView { view, data_source }
            },
            {
                let (view, data_source) = view("immuta_classes.hr_employees__c0");
                Change::CreatedView { view, data_source }
            },
            Change::Granted {
                privilege: "SELECT".into(),
                object: "immuta_classes.hr_employees__c1".into(),
            },
        ]
    );
    let analyst = pol::query_as(Some("analyst")).await;
    assert_eq!(
        count(&analyst, "SELECT count(*) FROM immuta.hr_employees")
            .await
            .unwrap(),
        3335
    );
    assert!(pol::sync(&config).await.is_unchanged());
}

#[tokio::test]
async fn catalog_changes_reach_live_sessions_on_their_next_statement() {
    let _guard = pol::lock().await;
    let demo = pol::demo_catalog();
    pol::sync(&pol::config(&demo)).await;
    let analyst = pol::query_as(Some("analyst")).await;
    let total = "SELECT count(*) FROM immuta.hr_employees";
    assert_eq!(count(&analyst, total).await.unwrap(), 3335);

    // Drop the row rule: the same connection sees every row.
    let no_rows_rule = demo.replace(
        "[[data_sources.row_rules]]\ncolumn = \"region\"\nattribute = \"region\"\nunless_groups = [\"hr\"]\n",
        "",
    );
    let report = pol::sync(&pol::config(&no_rows_rule)).await;
    // Tokens of the version before stay valid until the next sync, as the proxy re-pins each
    // session at its next statement.
    assert_eq!(count(&analyst, total).await.unwrap(), 10_000);
    pol::set_user(&analyst, "analyst").await;
    assert_eq!(
        report.changes,
        [
            Change::ReplacedView {
                view: "immuta.hr_employees".into(),
                data_source: "hr.employees".into()
            },
            // The class the rule applied to; hr's class was exempt from it.
            Change::ReplacedView {
                view: "immuta_classes.hr_employees__c0".into(),
                data_source: "hr.employees".into()
            },
            profile_rows("profile_access", 1, 1),
        ]
    );
    assert_eq!(count(&analyst, total).await.unwrap(), 10_000);

    // Change a mask: ssn becomes a constant.
    let constant_ssn = no_rows_rule.replace(
        "column = \"ssn\"\nmethod = \"null\"",
        "column = \"ssn\"\nmethod = \"constant\"\nvalue = \"hidden\"",
    );
    pol::sync(&pol::config(&constant_ssn)).await;
    pol::set_user(&analyst, "analyst").await;
    let ssn: String = analyst
        .query_one("SELECT ssn FROM immuta.hr_employees WHERE id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ssn, "hidden");

    // Add a user: someone in the US sees the US rows at once.
    let newbie = pol::query_as(Some("newbie")).await;
    assert_eq!(count(&newbie, total).await.unwrap(), 0);
    let with_newbie = format!(
        "{demo}\n[[users]]\nname = \"newbie\"\npassword = \"{VERIFIER}\"\nattributes = {{ region = [\"US\"] }}\n"
    );
    pol::sync(&pol::config(&with_newbie)).await;
    assert_eq!(count(&newbie, total).await.unwrap(), 0, "not pinned yet");
    pol::set_user(&newbie, "newbie").await;
    pol::set_user(&analyst, "analyst").await;
    assert_eq!(count(&newbie, total).await.unwrap(), 3333);
    assert_eq!(count(&analyst, total).await.unwrap(), 3335);

    // Remove the data source: its view goes, the schemas stay.
    let users_only = with_newbie.replace(redveil::demo::catalog::DATA_SOURCES_TOML, "");
    let report = pol::sync(&pol::config(&users_only)).await;
    assert_eq!(
        report.changes,
        [
            Change::DroppedView {
                view: "immuta.hr_employees".into(),
                data_source: "hr.employees".into()
            },
            Change::DroppedClassView {
                view: "immuta_classes.hr_employees__c0".into(),
                data_source: "hr.employees".into()
            },
            Change::DroppedClassView {
                view: "immuta_classes.hr_employees__c1".into(),
                data_source: "hr.employees".into()
            },
            profile_rows("profile_access", 0, 4),
        ]
    );
    let err = count(&analyst, total).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    pol::sync(&pol::config(&demo)).await;
}

#[tokio::test]
async fn the_query_role_cannot_read_raw_or_profile_tables() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config(&pol::demo_catalog())).await;
    let client = pol::query_as(Some("admin")).await;
    for table in [
        "hr.employees",
        "immuta_system.profile_users",
        "immuta_system.profile_groups",
        "immuta_system.profile_attributes",
        "immuta_system.profile_access",
        "immuta_system.data_sources",
        "immuta_system.managed_objects",
    ] {
        let err = count(&client, &format!("SELECT count(*) FROM {table}"))
            .await
            .expect_err(table);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}"
        );
    }
}

#[tokio::test]
async fn sync_refuses_while_the_query_role_can_bypass_the_views() {
    let _guard = pol::lock().await;
    let demo = pol::demo_catalog();
    pol::sync(&pol::config(&demo)).await;
    let system = pol::system().await;
    system
        .batch_execute("GRANT SELECT ON hr.employees TO redveil_query")
        .await
        .unwrap();
    let with_user = format!("{demo}\n[[users]]\nname = \"late\"\npassword = \"{VERIFIER}\"\n");
    let err = pol::try_sync(&pol::config(&with_user)).await.unwrap_err();
    system
        .batch_execute("REVOKE SELECT ON hr.employees FROM redveil_query")
        .await
        .unwrap();
    assert!(matches!(err, SyncError::DirectAccess { .. }));
    assert_eq!(
        err.to_string(),
        "the query role redveil_query can read hr.employees directly, bypassing the policy views; \
         revoke it (e.g. REVOKE SELECT ON hr.employees FROM redveil_query)"
    );
    // Nothing was applied.
    let late = count(
        &system,
        "SELECT count(*) FROM immuta_system.profile_users WHERE user_name = 'late'",
    )
    .await
    .unwrap();
    assert_eq!(late, 0);
}

#[tokio::test]
async fn catalog_errors_name_the_item_key_and_line() {
    let text = pol::config_text(&format!(
        "[[users]]\nname = \"u\"\npassword = \"{VERIFIER}\"\npermissions = [\"FLY\"]\n\
         [[data_sources]]\ntable = \"hr.employees\"\n\
         [[data_sources.masks]]\ncolumn = \"name\"\nmethod = \"regex\"\npattern = \"(unclosed\"\nreplacement = \"x\"\n\
         [[data_sources.masks]]\ncolumn = \"ssn\"\nmethod = \"round\"\n\
         [[data_sources.masks]]\ncolumn = \"email\"\nmethod = \"hash\"\nstep = 3\n\
         [[data_sources.row_rules]]\nwhere = \"true; DROP TABLE hr.employees\"\n"
    ));
    let base = text.lines().position(|l| l == "[[users]]").unwrap();
    let err = redveil::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap_err();
    let got: Vec<(String, Option<usize>, String)> = err
        .problems()
        .iter()
        .map(|p| (p.key.clone(), p.line.map(|l| l - base), p.message.clone()))
        .collect();
    let line = |n: usize| Some(n);
    assert_eq!(
        got,
        [
            (
                "users[0].permissions".into(),
                line(4),
                "unknown permission \"FLY\" (known: IMPERSONATE_USER)".into()
            ),
            (
                "data_sources[0].masks[0].pattern".into(),
                line(10),
                "invalid regular expression \"(unclosed\": error: unclosed group".into()
            ),
            (
                "data_sources[0].masks[1].step".into(),
                line(12),
                "required by method \"round\"".into()
            ),
            (
                "data_sources[0].masks[2].step".into(),
                line(18),
                "does not apply to method \"hash\"".into()
            ),
            (
                "data_sources[0].row_rules[0].where".into(),
                line(20),
                "not a single SQL expression: unexpected ; after it".into()
            ),
        ]
    );

    let unknown_key = pol::config_text("[[data_sources]]\ntable = \"hr.employees\"\n[[data_sources.masks]]\ncolumn = \"ssn\"\nmethod = \"null\"\nunles_groups = [\"hr\"]\n");
    let err =
        redveil::config::Config::parse(&unknown_key, std::path::Path::new("t.toml")).unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.line, Some(unknown_key.lines().count()));
    assert!(
        problem.message.starts_with("unknown field `unles_groups`"),
        "{problem}"
    );
}

#[tokio::test]
async fn columns_and_types_are_checked_against_the_cluster() {
    let _guard = pol::lock().await;
    let mask = |column: &str, method: &str| {
        format!("[[data_sources]]\ntable = \"hr.employees\"\n[[data_sources.masks]]\ncolumn = \"{column}\"\nmethod = \"{method}\"\n")
    };
    let cases = [
        (
            mask("idd", "null"),
            "data_sources[0].masks[0] (hr.employees): column \"idd\" does not exist in hr.employees \
             (columns: id, name, email, ssn, salary, dept, region, hired)",
        ),
        (
            mask("id", "hash"),
            "data_sources[0].masks[0] (hr.employees): hash needs a text column, but id is integer \
             (hash yields text; set cast_to_text = true to hash its text form)",
        ),
        (
            "[[data_sources]]\ntable = \"hr.employes\"\n".to_string(),
            "data_sources[0].table: table hr.employes does not exist, or the system role cannot see it",
        ),
        (
            "[[data_sources]]\ntable = \"hr.employees\"\n[[data_sources.row_rules]]\nwhere = \"nosuch > 1\"\n"
                .to_string(),
            "data_sources[0]: the cluster rejected the view \"immuta\".\"hr_employees\": column \"nosuch\" does not exist",
        ),
    ];
    for (catalog, message) in cases {
        let err = pol::try_sync(&pol::config(&catalog)).await.unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

#[tokio::test]
async fn explain_policy_prints_the_rules_and_the_view() {
    let _guard = pol::lock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, pol::config_text(&pol::demo_catalog())).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redveil"))
        .args(["explain-policy", "--config"])
        .arg(&path)
        .args(["--user", "analyst", "--data-source", "hr.employees"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (rules, sql) = stdout.split_once("view SQL:\n").unwrap();
    assert_eq!(
        rules,
        "data source hr.employees: Employees (demo data)\n\
         view immuta.hr_employees\n\
         user analyst (no groups; attributes: region = EU)\n\n\
         subscription: anyone in the catalog → subscribed\n\n\
         masks:\n  \
         ssn: null, unless in group hr → applies\n  \
         salary: round(10000), unless in group hr → applies\n  \
         email: hash (salted SHA-256, hex), unless in group hr → applies\n  \
         name: regex(\"^(.).*$\" → \"\\\\1***\"), unless in group hr → applies\n  \
         dept: randomized_response(ε = 1, k = 4, keep probability 0.4754, key column id), unless in group hr → applies\n\n\
         row rules:\n  \
         only rows where region is one of the user's values of attribute region, unless in group hr → applies (the user's region values: EU)\n\n"
    );
    let catalog =
        redveil::policy::Catalog::from_config(&pol::config(&pol::demo_catalog())).unwrap();
    let ds = &catalog.data_sources[0];
    let columns = redveil::policy::table_columns(&pol::system().await, common::dialect(), ds)
        .await
        .unwrap();
    // The SQL of the cluster's engine, which explain-policy asks for.
    let view = redveil::policy::compile(common::dialect(), ds, "immuta", &columns).unwrap();
    let class = redveil::policy::compile_class(common::dialect(), ds, "0", &columns).unwrap();
    assert_eq!(
        sql,
        format!(
            "{};\n\nthrough redveil: class view immuta_classes.hr_employees__c0 (flags 0; \
             it admits only sessions whose pinned token is of a user with these flags):\n{};\n",
            view.sql, class.sql
        )
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redveil"))
        .args(["explain-policy", "--config"])
        .arg(&path)
        .args(["--user", "admin", "--data-source", "immuta.hr_employees"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("  ssn: null, unless in group hr → exempt: sees the raw value\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unless in group hr → does not restrict this user\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("through redveil: class view immuta_classes.hr_employees__c1 (flags 1;"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_proxy_syncs_its_catalog_at_start() {
    let _guard = pol::lock().await;
    pol::sync(&pol::config("")).await;
    let system = pol::system().await;
    let views =
        "SELECT count(*) FROM pg_views WHERE schemaname = 'immuta' AND viewname = 'hr_employees'";
    assert_eq!(count(&system, views).await.unwrap(), 0);
    let config = pol::config(&format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n{}",
        pol::demo_catalog()
    ));
    let server = redveil::server::Server::bind(config)
        .await
        .expect("bind syncs");
    assert_eq!(count(&system, views).await.unwrap(), 1);
    server.stopper().immediate();
    server.serve().await;
}
