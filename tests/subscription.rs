//! Subscription is checked by the proxy, for the effective user, before anything reaches the
//! cluster. Its own test binary: its catalog differs from the demo's, and a sync replaces the
//! catalog for every proxy on the same cluster.

mod common;

use common::demo_views::{count, sqlstate};
use common::proxy;

const ROWS: &str = "SELECT count(*) FROM hr.employees";

/// The demo catalog, with `subscription` TOML for `hr.employees` when given.
fn catalog(subscription: &str) -> String {
    let demo = common::demo();
    format!(
        "[control]\nuser = \"{}\"\npassword = \"{}\"\n{}\n{subscription}",
        demo.system_user,
        demo.system_password,
        redveil::demo::catalog::DATA_SOURCES_TOML
    )
}

const HR_AND_BI_ONLY: &str =
    "[data_sources.subscription]\ngroups = [\"hr\"]\nusers = [\"bi_service\"]\n";

#[tokio::test]
async fn only_subscribers_reach_the_data_source() {
    let _sync = common::policy::lock().await;
    let p = proxy::start(&catalog(HR_AND_BI_ONLY)).await;
    let admin = p.connect("admin").await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);

    let analyst = p.connect("analyst").await.unwrap();
    for attempt in [
        ROWS,
        "SELECT 1 FROM employees",
        "SELECT * FROM \"hr\".\"employees\"",
    ] {
        analyst.batch_execute("SET search_path = hr").await.unwrap();
        let err = analyst.query(attempt, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{attempt}");
        let message = err.as_db_error().unwrap().message();
        assert!(
            message.contains("not subscribed") && message.contains("hr.employees"),
            "{message}"
        );
    }

    // Impersonating someone means having their reach, not one's own.
    admin
        .batch_execute("CALL immuta_procedures.impersonate_user('analyst')")
        .await
        .unwrap();
    let err = admin.simple_query(ROWS).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    admin.batch_execute("RESET immuta_user").await.unwrap();
    assert_eq!(count(&admin, ROWS).await, 10_000);

    // Subscribed, but the region rule leaves bi_service (no region) nothing.
    let bi = p.connect("bi_service").await.unwrap();
    assert_eq!(count(&bi, ROWS).await, 0);
}

#[tokio::test]
async fn a_reloaded_catalog_applies_to_live_sessions_at_their_next_statement() {
    let _sync = common::policy::lock().await;
    let p = proxy::start(&catalog("")).await;
    let analyst = p.connect("analyst").await.unwrap();
    let eu = count(&analyst, ROWS).await;
    assert!(eu > 0);
    p.reload(&catalog(HR_AND_BI_ONLY)).await;
    let err = analyst.simple_query(ROWS).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "same session, next statement");
    p.reload(&catalog("")).await;
    assert_eq!(count(&analyst, ROWS).await, eu);
}

/// Sync commits database by database: when a later one fails, the ones before it are synced
/// back to the running catalog, which the proxy keeps.
#[tokio::test]
async fn a_reload_failing_in_a_later_database_leaves_the_running_catalog_everywhere() {
    let _sync = common::policy::lock().await;
    let p = proxy::start(&catalog("")).await;
    let analyst = p.connect("analyst").await.unwrap();
    let eu = count(&analyst, ROWS).await;
    analyst
        .batch_execute("PREPARE all_rows AS SELECT count(*) FROM hr.employees")
        .await
        .unwrap();
    assert_eq!(count(&analyst, "EXECUTE all_rows").await, eu);
    // `demo` sorts before the missing database, so its sync commits first.
    let failing =
        catalog(HR_AND_BI_ONLY) + "\n[[data_sources]]\ntable = \"zz_missing.hr.employees\"\n";
    let (toml, _) = proxy::config_text(p.dir.path(), &failing);
    let config = redveil::config::Config::parse(&toml, std::path::Path::new("t.toml")).unwrap();
    let error = p.reloader.reload(config).await.unwrap_err();
    assert!(error.to_string().contains("zz_missing"), "{error}");
    // The canonical view reads the profile rows the reload had replaced in `demo`.
    assert_eq!(count(&analyst, "EXECUTE all_rows").await, eu);
    assert_eq!(count(&analyst, ROWS).await, eu);
    // As the proxy pins it: its own token for analyst.
    let direct = common::policy::query_as(None).await;
    let token = p
        .reloader
        .current()
        .tokens
        .of("analyst")
        .unwrap()
        .to_string();
    direct
        .execute("SELECT set_config('immuta.token', $1, false)", &[&token])
        .await
        .unwrap();
    assert_eq!(
        count(&direct, "SELECT count(*) FROM immuta.hr_employees").await,
        eu
    );
}
