//! `backend.dialect` against what the cluster says it is (issue 15 item 1).

mod common;

use redveil::config::Config;
use redveil::dialect::Dialect;
use redveil::server::Server;

#[tokio::test]
async fn a_dialect_the_cluster_contradicts_stops_start_up_naming_the_key() {
    let (actual, other) = match common::dialect() {
        Dialect::Postgres => ("postgres", "redshift"),
        Dialect::Redshift => ("redshift", "postgres"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (toml, _) = common::proxy::config_text(dir.path(), "");
    let configured = |dialect: &str| {
        let text = toml.replace(
            &format!("dialect = \"{actual}\""),
            &format!("dialect = \"{dialect}\""),
        );
        Config::parse(&text, std::path::Path::new("test.toml")).expect("config")
    };
    match Server::bind(configured(other)).await {
        Ok(_) => panic!("a proxy configured for {other} started in front of {actual}"),
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.starts_with(&format!(
                    "backend.dialect is \"{other}\" but the cluster is {actual}"
                )),
                "{text}"
            );
        }
    }
    for agrees in ["auto", actual] {
        assert!(
            Server::bind(configured(agrees)).await.is_ok(),
            "backend.dialect = {agrees:?}"
        );
    }
}
