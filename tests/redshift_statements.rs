//! Every statement redveil itself sends to a Redshift cluster is one AWS documents (issue 15
//! item 6), captured rather than assembled: the proxy runs in Redshift mode in front of the
//! Redshift-like cluster while the cluster logs every statement of redveil's two logins (the
//! control role's sync and token exchanges, the query role's pins, resets and rewritten client
//! statements), and each logged statement goes through the check of
//! `tests/redshift_conformance.rs` against `src/dialect/redshift.toml`.
//!
//! One test in this binary, so the dialect it sets before the harness starts is the only one
//! any thread of it reads.

mod common;

use common::conformance::problems_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_redveil_sends_to_redshift_is_documented_by_aws() {
    std::env::set_var("REDVEIL_TEST_DIALECT", "redshift");
    let cluster = common::cluster();
    let demo = common::demo();
    let su = cluster.connect_superuser(&demo.database).await.unwrap();
    for role in [&demo.system_user, &demo.query_user] {
        su.batch_execute(&format!("ALTER ROLE \"{role}\" SET log_statement = 'all'"))
            .await
            .unwrap();
    }
    let log_start = std::fs::metadata(cluster.log_file()).unwrap().len();

    // Sync at the proxy's start, then twice more as the proxy syncs (the third replaces the
    // second's tokens, the catalog loses a user and gets it back).
    let proxy = common::demo_views::start("[pool]\nmode = \"transaction\"\nsize = 2\n").await;
    {
        let _sync = common::policy::lock().await;
        let catalog = common::policy::demo_catalog();
        let without_admin = catalog.replacen("name = \"admin\"", "name = \"admin_gone\"", 1);
        common::policy::sync(&common::policy::config(&without_admin)).await;
        common::policy::sync(&common::policy::config(&catalog)).await;
    }
    let analyst = proxy.connect("analyst").await.unwrap();
    analyst
        .simple_query(
            "SELECT count(*) FROM hr.employees; SELECT name, email FROM hr.employees LIMIT 3",
        )
        .await
        .unwrap();
    analyst
        .query(
            "SELECT ssn, salary FROM hr.employees WHERE id = $1",
            &[&1_i32],
        )
        .await
        .unwrap();
    analyst.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let bi = proxy.connect("bi_service").await.unwrap();
    bi.simple_query(
        "CALL immuta_procedures.impersonate_user('analyst'); SELECT count(*) FROM hr.employees",
    )
    .await
    .unwrap();
    bi.query("SELECT max(salary) FROM hr.employees", &[])
        .await
        .unwrap();
    bi.batch_execute("CALL immuta_procedures.impersonate_user(NULL)")
        .await
        .unwrap();
    drop((analyst, bi));
    // A new client on a connection another client used: the reset between them.
    let admin = proxy.connect("admin").await.unwrap();
    admin
        .simple_query("SELECT count(*) FROM hr.employees")
        .await
        .unwrap();
    drop(admin);
    proxy.stopper.graceful();
    // The server writes its log as statements arrive; the last ones are a moment behind.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let log = std::fs::read(cluster.log_file()).unwrap();
    let statements = logged_statements(&String::from_utf8_lossy(&log[log_start as usize..]));
    assert!(
        statements.len() > 40,
        "the cluster logged only {} statements: {statements:#?}",
        statements.len()
    );
    let problems = problems_in(&statements);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The statements of `statement:` and `execute <name>:` entries of a server log whose lines
/// start with the default prefix (a timestamp); a statement's further lines carry no prefix.
fn logged_statements(log: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        let starts_entry = line.len() > 4 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit);
        match entries.last_mut() {
            Some(entry) if !starts_entry => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => entries.push(line.to_string()),
        }
    }
    entries
        .iter()
        .filter_map(|entry| {
            let (_, rest) = entry.split_once("LOG:  ")?;
            if let Some(sql) = rest.strip_prefix("statement: ") {
                return Some(sql.to_string());
            }
            let rest = rest.strip_prefix("execute ")?;
            Some(rest.split_once(": ")?.1.to_string())
        })
        .collect()
}
