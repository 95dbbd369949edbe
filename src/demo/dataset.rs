//! The demo's backend data: database `demo`, table `hr.employees` (10 000 deterministic
//! rows) and the two login roles the proxy uses against it.
//!
//! Everything the demo needs inside the cluster is created here and only here, so later
//! work extends this module rather than scattering DDL. Loading is idempotent: running it
//! again resets roles' passwords and the table's contents to the same state.
//!
//! Grants to `redveil_query` are made *by* `redveil_system`, so they can be revoked as
//! `redveil_system` (only a grantor or an owner can). [`load`] leaves the query role able to
//! read `hr.employees` directly, which pass-through tests rely on; [`revoke_raw_access`] takes
//! that away, as policy sync requires (it refuses to run while the query role can bypass the
//! views).

use tokio_postgres::Client;

use crate::cluster::{ClusterError, EphemeralCluster};

/// The demo database.
pub const DEMO_DATABASE: &str = "demo";
/// The proxy pool's backend login.
pub const DEMO_QUERY_USER: &str = "redveil_query";
/// Password of [`DEMO_QUERY_USER`]. Demo-only: never reuse outside the ephemeral cluster.
pub const DEMO_QUERY_PASSWORD: &str = "redveil_query";
/// The proxy's control-path login (catalog sync: schemas, views, grants).
pub const DEMO_SYSTEM_USER: &str = "redveil_system";
/// Password of [`DEMO_SYSTEM_USER`]. Demo-only: never reuse outside the ephemeral cluster.
pub const DEMO_SYSTEM_PASSWORD: &str = "redveil_system";
/// Rows in `hr.employees`.
pub const EMPLOYEE_ROWS: i64 = 10_000;
/// Values of `hr.employees.region`.
pub const REGIONS: [&str; 3] = ["EU", "US", "APAC"];
/// Values of `hr.employees.dept`.
pub const DEPTS: [&str; 4] = ["hr", "eng", "sales", "ops"];

/// Where the demo's data is and how to log in to it.
#[derive(Debug, Clone)]
pub struct DemoBackend {
    /// Host of the cluster.
    pub host: String,
    /// Port of the cluster.
    pub port: u16,
    /// Database holding the demo data.
    pub database: String,
    /// The query role's login.
    pub query_user: String,
    /// The query role's password.
    pub query_password: String,
    /// The system role's login.
    pub system_user: String,
    /// The system role's password.
    pub system_password: String,
}

impl DemoBackend {
    /// libpq connection string for the query role.
    pub fn query_conn_string(&self, cluster: &EphemeralCluster) -> String {
        cluster.conn_string(&self.query_user, &self.query_password, &self.database)
    }

    /// libpq connection string for the system role.
    pub fn system_conn_string(&self, cluster: &EphemeralCluster) -> String {
        cluster.conn_string(&self.system_user, &self.system_password, &self.database)
    }
}

/// Creates (or resets) the demo database, its data and its roles.
pub async fn load(cluster: &EphemeralCluster) -> Result<DemoBackend, ClusterError> {
    let admin = cluster.connect_superuser("postgres").await?;
    create_roles(&admin).await?;
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&DEMO_DATABASE],
        )
        .await
        .map_err(ClusterError::postgres("looking for the demo database"))?
        .is_some();
    if !exists {
        exec(&admin, &format!("CREATE DATABASE {DEMO_DATABASE}")).await?;
    }
    drop(admin);

    let demo = cluster.connect_superuser(DEMO_DATABASE).await?;
    // Redshift has no unbounded text column: TEXT becomes VARCHAR(256) there
    // (r_Character_types.html), and the Redshift-like cluster's table says so too.
    let schema_sql = match cluster.is_redshift_like() {
        true => SCHEMA_SQL.replace(" text ", " VARCHAR(256) "),
        false => SCHEMA_SQL.to_string(),
    };
    exec(&demo, &schema_sql).await?;
    exec(&demo, EMPLOYEES_SQL).await?;
    exec(&demo, &grants_sql()).await?;
    Ok(DemoBackend {
        host: cluster.host().to_string(),
        port: cluster.port(),
        database: DEMO_DATABASE.to_string(),
        query_user: DEMO_QUERY_USER.to_string(),
        query_password: DEMO_QUERY_PASSWORD.to_string(),
        system_user: DEMO_SYSTEM_USER.to_string(),
        system_password: DEMO_SYSTEM_PASSWORD.to_string(),
    })
}

async fn create_roles(admin: &Client) -> Result<(), ClusterError> {
    for (role, password) in [
        (DEMO_QUERY_USER, DEMO_QUERY_PASSWORD),
        (DEMO_SYSTEM_USER, DEMO_SYSTEM_PASSWORD),
    ] {
        // Roles are cluster-wide and survive a reload; CREATE only the first time.
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(ClusterError::postgres("looking for the demo roles"))?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        // password_encryption is scram-sha-256, so the stored verifier is SCRAM.
        let sql = format!(
            "{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
            literal(password)
        );
        exec(admin, &sql).await?;
    }
    Ok(())
}

const SCHEMA_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS hr;
CREATE TABLE IF NOT EXISTS hr.employees (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    email   text NOT NULL,
    ssn     text NOT NULL,
    salary  numeric(12,2) NOT NULL,
    dept    text NOT NULL,
    region  text NOT NULL,
    hired   date NOT NULL
);";

/// Deterministic rows: every value is arithmetic on the row number, so every run (and
/// every test) sees the same data. dept cycles with `g % 4` and region with `(g / 4) % 3`,
/// so all twelve (dept, region) pairs are equally represented.
const EMPLOYEES_SQL: &str = "
BEGIN;
TRUNCATE hr.employees;
INSERT INTO hr.employees (id, name, email, ssn, salary, dept, region, hired)
SELECT g,
       n.first || ' ' || n.last,
       lower(n.first || '.' || n.last || '.' || g) || '@example.com',
       lpad(((g * 7919) % 800 + 100)::text, 3, '0') || '-'
         || lpad(((g * 31) % 99 + 1)::text, 2, '0') || '-'
         || lpad(((g * 104729) % 9999 + 1)::text, 4, '0'),
       30000 + ((g * 7727) % 22000001) / 100.0,
       (ARRAY['hr', 'eng', 'sales', 'ops'])[1 + g % 4],
       (ARRAY['EU', 'US', 'APAC'])[1 + (g / 4) % 3],
       date '2005-01-01' + ((g * 2654435761) % 7670)::int
FROM generate_series(1::bigint, 10000::bigint) AS g
CROSS JOIN LATERAL (
    SELECT (ARRAY['Alice', 'Bruno', 'Chloe', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hiro',
                  'Ines', 'Jamal', 'Kofi', 'Lena', 'Mateo', 'Nadia', 'Oscar', 'Priya',
                  'Quentin', 'Rosa', 'Sven', 'Tamar'])[1 + g % 20] AS first,
           (ARRAY['Anderson', 'Becker', 'Castillo', 'Dubois', 'Eriksen', 'Fischer',
                  'Garcia', 'Haddad', 'Ivanova', 'Jensen', 'Kowalski', 'Larsen', 'Moreau',
                  'Nakamura', 'Okafor', 'Petrov', 'Quinn', 'Rossi', 'Schmidt', 'Tanaka',
                  'Umarov', 'Varga', 'Wong', 'Yilmaz', 'Zhang'])[1 + (g / 20) % 25] AS last
) AS n;
COMMIT;
ANALYZE hr.employees;";

fn grants_sql() -> String {
    let (db, query, system) = (DEMO_DATABASE, DEMO_QUERY_USER, DEMO_SYSTEM_USER);
    format!(
        "
REVOKE ALL ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {query};
-- Every client of the proxy runs as the query role: its sessions must not see each other's
-- statements (policy sync checks this).
ALTER ROLE {query} SET track_activities = off;
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE {db} TO {system};
GRANT USAGE ON SCHEMA hr TO {system} WITH GRANT OPTION;
GRANT SELECT ON hr.employees TO {system} WITH GRANT OPTION;
SET ROLE {system};
GRANT USAGE ON SCHEMA hr TO {query};
-- Pass-through tests read the raw table; revoke_raw_access() removes this for the policy views.
GRANT SELECT ON hr.employees TO {query};
RESET ROLE;"
    )
}

/// Takes the query role's direct access to `hr.employees` away, so policy sync can run and
/// the query role reaches the data only through the policy views. Idempotent.
pub async fn revoke_raw_access(cluster: &EphemeralCluster) -> Result<(), ClusterError> {
    let demo = cluster.connect_superuser(DEMO_DATABASE).await?;
    // As the grantor: a superuser's REVOKE acts as the table owner and would leave the system
    // role's grant in place.
    let (query, system) = (DEMO_QUERY_USER, DEMO_SYSTEM_USER);
    exec(
        &demo,
        &format!(
            "SET ROLE {system};
REVOKE SELECT ON hr.employees FROM {query};
REVOKE USAGE ON SCHEMA hr FROM {query};
RESET ROLE;"
        ),
    )
    .await
}

async fn exec(client: &Client, sql: &str) -> Result<(), ClusterError> {
    client
        .batch_execute(sql)
        .await
        .map_err(ClusterError::postgres(format!(
            "demo dataset: {}",
            sql.trim().lines().next().unwrap_or_default()
        )))
}

/// A SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
