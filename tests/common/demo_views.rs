//! A proxy in front of the demo catalog's real policy views (synced at proxy start): admin
//! (group hr) sees every row raw, analyst (region EU) sees EU rows with ssn NULL, bi_service
//! (no region) sees nothing.

use super::proxy::{self, TestProxy};

/// A proxy with the demo catalog and `pool` TOML (e.g. `[pool]` settings). Holds the policy
/// lock while syncing so proxies of one test binary never sync at once.
pub async fn start(pool: &str) -> TestProxy {
    let demo = super::demo();
    let _sync = super::policy::lock().await;
    proxy::start(&format!(
        "{pool}\n[control]\nuser = \"{}\"\npassword = \"{}\"\n{}",
        demo.system_user,
        demo.system_password,
        redveil::demo::catalog::DATA_SOURCES_TOML
    ))
    .await
}

pub async fn eu_rows() -> i64 {
    let su = super::cluster().connect_superuser("demo").await.unwrap();
    su.query_one("SELECT count(*) FROM hr.employees WHERE region = 'EU'", &[])
        .await
        .unwrap()
        .get(0)
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

pub fn sqlstate(error: &tokio_postgres::Error) -> &str {
    error.code().map(|c| c.code()).unwrap_or("none")
}
