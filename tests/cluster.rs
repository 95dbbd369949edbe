//! The ephemeral cluster and the demo dataset, against a real PostgreSQL.

mod common;

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::demo::dataset::{DEPTS, EMPLOYEE_ROWS, REGIONS};

#[tokio::test]
async fn demo_table_has_all_rows_regions_and_depts() {
    let client = common::cluster()
        .connect_superuser("demo")
        .await
        .expect("superuser connects");
    let count: i64 = client
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, EMPLOYEE_ROWS);

    let rows = client
        .query(
            "SELECT region, dept, count(*) FROM hr.employees GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("group by");
    assert_eq!(rows.len(), REGIONS.len() * DEPTS.len());
    for row in &rows {
        let n: i64 = row.get(2);
        assert!(
            n > 700,
            "every (region, dept) pair is well represented, got {n}"
        );
        assert!(REGIONS.contains(&row.get::<_, &str>(0)));
        assert!(DEPTS.contains(&row.get::<_, &str>(1)));
    }

    let bounds = client
        .query_one(
            "SELECT min(salary)::float8, max(salary)::float8, min(hired)::text, max(hired)::text, \
                    count(DISTINCT email), bool_and(ssn ~ '^[0-9]{3}-[0-9]{2}-[0-9]{4}$') \
             FROM hr.employees",
            &[],
        )
        .await
        .expect("bounds");
    assert!(bounds.get::<_, f64>(0) >= 30_000.0);
    assert!(bounds.get::<_, f64>(1) <= 250_000.0);
    assert!(bounds.get::<_, &str>(2) >= "2005-01-01");
    assert!(bounds.get::<_, &str>(3) <= "2025-12-31");
    assert_eq!(bounds.get::<_, i64>(4), EMPLOYEE_ROWS);
    assert!(bounds.get::<_, bool>(5), "ssn looks like 123-45-6789");
}

#[tokio::test]
async fn query_role_logs_in_with_scram_and_selects() {
    let cluster = common::cluster();
    let demo = common::demo();
    let client = common::connect(&demo.query_conn_string(cluster))
        .await
        .expect("redveil_query logs in over TCP");
    let name: String = client
        .query_one("SELECT name FROM hr.employees WHERE id = 1", &[])
        .await
        .expect("select")
        .get(0);
    assert!(!name.is_empty());

    let admin = cluster.connect_superuser("postgres").await.expect("admin");
    let verifier: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&demo.query_user],
        )
        .await
        .expect("verifier")
        .get(0);
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "stored as SCRAM");

    let wrong = cluster.conn_string(&demo.query_user, "wrong", &demo.database);
    assert!(
        common::connect(&wrong).await.is_err(),
        "a wrong password is refused"
    );
}

#[tokio::test]
async fn system_role_can_create_views_and_grant_them() {
    let cluster = common::cluster();
    let demo = common::demo();
    let system = common::connect(&demo.system_conn_string(cluster))
        .await
        .expect("redveil_system logs in");
    system
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS harness_probe;
             CREATE OR REPLACE VIEW harness_probe.eu AS
                 SELECT id, region FROM hr.employees WHERE region = 'EU';
             GRANT USAGE ON SCHEMA harness_probe TO redveil_query;
             GRANT SELECT ON harness_probe.eu TO redveil_query;",
        )
        .await
        .expect("system role creates and grants a view");
    // The raw-table grant was made by the system role, so catalog sync can revoke it.
    let grantor: String = system
        .query_one(
            "SELECT grantor::text FROM information_schema.role_table_grants \
             WHERE grantee = 'redveil_query' AND table_schema = 'hr' \
               AND table_name = 'employees' AND privilege_type = 'SELECT'",
            &[],
        )
        .await
        .expect("grant to the query role")
        .get(0);
    assert_eq!(grantor, demo.system_user);
    let query = common::connect(&demo.query_conn_string(cluster))
        .await
        .expect("query role");
    let n: i64 = query
        .query_one("SELECT count(*) FROM harness_probe.eu", &[])
        .await
        .expect("query role reads the view")
        .get(0);
    assert!(n > 0);
}

/// Its own cluster: stopping the shared one would break concurrent tests.
#[tokio::test]
async fn stop_and_start_keep_data_and_port() {
    let mut cluster = EphemeralCluster::start(ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}", common::report(&e)));
    let port = cluster.port();
    let client = cluster
        .connect_superuser("postgres")
        .await
        .expect("connect");
    client
        .batch_execute("CREATE TABLE survives (x int); INSERT INTO survives VALUES (42)")
        .await
        .expect("create");

    cluster.stop_server().await.expect("stop");
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "the old connection is gone"
    );
    assert!(tokio::net::TcpStream::connect((cluster.host(), port))
        .await
        .is_err());

    cluster.start_server().await.expect("start again");
    assert_eq!(cluster.port(), port);
    let client = cluster
        .connect_superuser("postgres")
        .await
        .expect("reconnect");
    let x: i32 = client
        .query_one("SELECT x FROM survives", &[])
        .await
        .expect("data kept")
        .get(0);
    assert_eq!(x, 42);

    let dir = cluster.data_dir().to_path_buf();
    cluster.shutdown();
    cluster.shutdown();
    assert!(!dir.exists(), "shutdown removes the directory");
}

#[tokio::test]
async fn keep_leaves_the_directory_load_is_idempotent_taken_port_is_reported() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = EphemeralCluster::start(ClusterOptions {
        port: Some(port),
        keep: false,
        ..Default::default()
    })
    .await
    .expect_err("the port is taken");
    let text = common::report(&err);
    assert!(text.contains("Address already in use"), "{text}");

    let mut cluster = EphemeralCluster::start(ClusterOptions {
        port: None,
        keep: true,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}", common::report(&e)));
    // Loading twice converges to the same state.
    for _ in 0..2 {
        redveil::demo::dataset::load(&cluster)
            .await
            .unwrap_or_else(|e| panic!("{}", common::report(&e)));
    }
    let client = cluster.connect_superuser("demo").await.expect("connect");
    let count: i64 = client
        .query_one("SELECT count(*) FROM hr.employees", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, EMPLOYEE_ROWS);

    let dir = cluster.data_dir().to_path_buf();
    cluster.shutdown();
    assert!(dir.join("PG_VERSION").exists(), "keep leaves the data");
    assert!(!dir.join("postmaster.pid").exists(), "but stops the server");
    let root = dir.parent().expect("root");
    std::fs::remove_dir_all(root).expect("clean up the kept directory");
}
