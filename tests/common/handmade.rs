//! A hand-written policy view on `hr.employees` keyed on `immuta.user` (admin: every row and
//! the raw ssn; analyst: EU rows, ssn NULL; anyone else: nothing), so the proxy's query path
//! can be tested apart from the policy compiler.

use super::proxy::{self, TestProxy};
use tokio::sync::OnceCell;

pub const VIEW_SCHEMA: &str = "rv_enforce";

static VIEW: OnceCell<()> = OnceCell::const_new();

async fn create_view() {
    VIEW.get_or_init(|| async {
        let su = super::cluster()
            .connect_superuser("demo")
            .await
            .expect("superuser");
        su.batch_execute(&format!(
            "CREATE SCHEMA {VIEW_SCHEMA};
             CREATE VIEW {VIEW_SCHEMA}.hr_employees AS
               SELECT id, name, email,
                      CASE WHEN current_setting('immuta.user', true) = 'admin' THEN ssn END AS ssn,
                      salary, dept, region, hired
               FROM hr.employees
               WHERE current_setting('immuta.user', true) = 'admin'
                  OR (current_setting('immuta.user', true) = 'analyst' AND region = 'EU');
             GRANT USAGE ON SCHEMA {VIEW_SCHEMA} TO redveil_query;
             GRANT SELECT ON {VIEW_SCHEMA}.hr_employees TO redveil_query;"
        ))
        .await
        .expect("creating the test view");
    })
    .await;
}

pub async fn start(pool: &str) -> TestProxy {
    create_view().await;
    proxy::start(&format!(
        "{pool}\n[views]\nschema = \"{VIEW_SCHEMA}\"\n[[data_sources]]\ntable = \"hr.employees\"\n"
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
