//! Real clients through redveil: psql, pgjdbc, psqlODBC, psycopg 3, psycopg2, asyncpg,
//! SQLAlchemy, node-postgres, and Amazon's redshift_connector (with its SQLAlchemy dialect).
//!
//! Each test starts a proxy in front of the demo catalog's policy views (transaction pooling,
//! several idle backend connections) and runs one client's scripted session from
//! `tests/clients/` as a subprocess, with the connection details in `REDVEIL_*` environment
//! variables. The session checks its own results (simple and parameterized queries, a prepared
//! statement across transactions, masking as analyst and admin, impersonation, rollback,
//! SQLSTATE of an error, a 100 000-row fetch; see `tests/clients/README.md`) and ends with the
//! line `session complete`. A failing client prints what it saw, and the test shows it.
//!
//! The clients are installed by `scripts/install-clients.sh` (run by `scripts/test.sh`). A
//! missing client fails its test; `REDVEIL_SKIP_CLIENTS=1` skips the whole suite for quick
//! local runs (not under CI).

mod common;

use common::demo_views;
use common::proxy::{TestProxy, PASSWORD_OF};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// Several idle backend connections, taking turns (`reuse = "rotate"`; the default gives a
/// client its own connection back), so consecutive transactions of one client land on
/// different backends and its prepared statements are re-prepared there.
const POOL: &str = "[pool]\nmode = \"transaction\"\nsize = 4\nmin_idle = 4\nreuse = \"rotate\"\n";

/// The table the rollback step writes to (and must find empty afterwards).
const SCRATCH_TABLE: &str = "public.client_scratch";

/// How long one client's session may take before it counts as hung.
const SESSION_TIMEOUT: Duration = Duration::from_secs(180);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    repo().join("tests/clients")
}

/// The project-local virtualenv made by `scripts/install-clients.sh`.
fn venv_python() -> PathBuf {
    repo().join(".venv-clients/bin/python")
}

/// Skips (returns true) when `REDVEIL_SKIP_CLIENTS=1`, except under `CI=true`, where every
/// client must run; otherwise fails if `missing` names something not installed.
fn skip_or_require(client: &str, missing: impl FnOnce() -> Option<String>) -> bool {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !in_ci && std::env::var("REDVEIL_SKIP_CLIENTS").is_ok_and(|v| v == "1") {
        eprintln!("{client}: skipped (REDVEIL_SKIP_CLIENTS=1)");
        return true;
    }
    if let Some(what) = missing() {
        panic!("{client}: {what} is not installed; run scripts/install-clients.sh");
    }
    false
}

fn missing_file(path: &Path) -> Option<String> {
    (!path.exists()).then(|| path.display().to_string())
}

fn missing_command(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    (!found).then(|| format!("`{name}`"))
}

/// A python module importable from the clients' virtualenv.
fn missing_python_module(module: &str) -> Option<String> {
    let python = venv_python();
    if let Some(missing) = missing_file(&python) {
        return Some(missing);
    }
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    (!ok).then(|| format!("the python module {module} (in .venv-clients)"))
}

/// The scratch table, created once per test binary and writable by the query role.
async fn scratch_table() {
    static CREATED: OnceCell<()> = OnceCell::const_new();
    CREATED
        .get_or_init(|| async {
            let su = common::cluster().connect_superuser("demo").await.unwrap();
            su.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {SCRATCH_TABLE} (client text, n int);
                 GRANT SELECT, INSERT, DELETE ON {SCRATCH_TABLE} TO {}",
                common::demo().query_user
            ))
            .await
            .unwrap();
        })
        .await;
}

/// Makes sure the pool holds at least two idle backend connections before the client starts
/// (min_idle fills it in the background), so the session's transactions must rotate between
/// them: two clients hold a transaction open at the same time.
async fn warm_pool(proxy: &TestProxy) {
    let a = proxy.connect("admin").await.expect("warm-up login");
    let b = proxy.connect("admin").await.expect("warm-up login");
    a.batch_execute("BEGIN; SELECT 1").await.unwrap();
    b.batch_execute("BEGIN; SELECT 1").await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    b.batch_execute("COMMIT").await.unwrap();
}

/// A proxy for one client's session and the environment the client script reads. `auth` is
/// TOML appended to the harness config's `[auth]` table.
async fn setup(client: &str, auth: &str) -> (TestProxy, Vec<(String, String)>) {
    scratch_table().await;
    let proxy = demo_views::start(&format!("{auth}{POOL}")).await;
    warm_pool(&proxy).await;
    let eu = demo_views::eu_rows().await;
    let env = [
        ("REDVEIL_HOST", "127.0.0.1".to_string()),
        ("REDVEIL_PORT", proxy.addr.port().to_string()),
        ("REDVEIL_DATABASE", "demo".into()),
        ("REDVEIL_CA", proxy.ca.display().to_string()),
        ("REDVEIL_EU_ROWS", eu.to_string()),
        (
            "REDVEIL_TOTAL_ROWS",
            redveil::demo::dataset::EMPLOYEE_ROWS.to_string(),
        ),
        ("REDVEIL_SCRATCH_TABLE", SCRATCH_TABLE.into()),
        ("REDVEIL_CLIENT", client.into()),
        ("REDVEIL_PASSWORD_ADMIN", PASSWORD_OF("admin")),
        ("REDVEIL_PASSWORD_ANALYST", PASSWORD_OF("analyst")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (proxy, env)
}

/// Runs `command` (a client session) with `env` and asserts it completed.
async fn run_session(client: &str, mut command: Command, env: &[(String, String)]) {
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(repo())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(SESSION_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{client}: session still running after {SESSION_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{client}: cannot start {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complete = stdout.lines().any(|l| l.trim() == "session complete");
    if !output.status.success() || !complete {
        panic!(
            "{client}: session failed ({}, {})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            output.status,
            if complete {
                "completed"
            } else {
                "no `session complete` line"
            }
        );
    }
    eprintln!(
        "{client}: session complete in {:.1}s\n{stdout}",
        started.elapsed().as_secs_f64()
    );
}

/// One Python driver's session script from `tests/clients/python/`, with `args`.
async fn python_session(client: &str, module: &str, script: &str, args: &[&str], auth: &str) {
    if skip_or_require(client, || missing_python_module(module)) {
        return;
    }
    let (proxy, mut env) = setup(client, auth).await;
    // redshift_connector trusts the system store (and its bundled Redshift CA); this points
    // Python's default store at the test CA, for this process only.
    env.push(("SSL_CERT_FILE".into(), proxy.ca.display().to_string()));
    let mut command = Command::new(venv_python());
    command
        .arg(clients_dir().join("python").join(script))
        .args(args);
    run_session(client, command, &env).await;
}

#[tokio::test]
async fn psql() {
    if skip_or_require("psql", || missing_command("psql")) {
        return;
    }
    let (_proxy, env) = setup("psql", "").await;
    let mut command = Command::new("bash");
    command.arg(clients_dir().join("psql/session.sh"));
    run_session("psql", command, &env).await;
}

/// pgjdbc: the session is compiled with javac against Debian's jar, then run.
#[tokio::test]
async fn pgjdbc() {
    const JAR: &str = "/usr/share/java/postgresql.jar";
    let missing = || {
        missing_file(Path::new(JAR))
            .or_else(|| missing_command("javac"))
            .or_else(|| missing_command("java"))
    };
    if skip_or_require("pgjdbc", missing) {
        return;
    }
    let classes = tempfile::tempdir().expect("tempdir");
    let javac = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .args(["-cp", JAR])
        .arg(clients_dir().join("java/JdbcSession.java"))
        .output()
        .await
        .expect("running javac");
    assert!(
        javac.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let (_proxy, env) = setup("pgjdbc", "").await;
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(format!("{}:{JAR}", classes.path().display()))
        .arg("JdbcSession");
    run_session("pgjdbc", command, &env).await;
}

#[tokio::test]
async fn psqlodbc() {
    const DRIVER: &str = "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so";
    let missing = || {
        missing_python_module("pyodbc").or_else(|| {
            let registered = std::fs::read_to_string("/etc/odbcinst.ini")
                .is_ok_and(|ini| ini.contains("[PostgreSQL Unicode]"));
            (!registered).then(|| format!("psqlODBC (\"PostgreSQL Unicode\", {DRIVER})"))
        })
    };
    if skip_or_require("psqlodbc", missing) {
        return;
    }
    let (_proxy, env) = setup("psqlodbc", "").await;
    let mut command = Command::new(venv_python());
    command.arg(clients_dir().join("python/odbc_session.py"));
    run_session("psqlodbc", command, &env).await;
}

#[tokio::test]
async fn psycopg3() {
    python_session("psycopg3", "psycopg", "psycopg3_session.py", &[], "").await;
}

#[tokio::test]
async fn psycopg2() {
    python_session("psycopg2", "psycopg2", "psycopg2_session.py", &[], "").await;
}

#[tokio::test]
async fn asyncpg() {
    python_session("asyncpg", "asyncpg", "asyncpg_session.py", &[], "").await;
}

#[tokio::test]
async fn sqlalchemy_psycopg() {
    python_session(
        "sqlalchemy_psycopg",
        "sqlalchemy",
        "sqlalchemy_session.py",
        &["psycopg"],
        "",
    )
    .await;
}

/// redshift_connector with the default `auth.redshift_driver_method` (cleartext over TLS).
#[tokio::test]
async fn redshift_connector() {
    python_session(
        "redshift_connector",
        "redshift_connector",
        "redshift_connector_session.py",
        &[],
        "",
    )
    .await;
}

/// redshift_connector offered md5, as a Redshift cluster itself would.
#[tokio::test]
async fn redshift_connector_md5() {
    python_session(
        "redshift_connector_md5",
        "redshift_connector",
        "redshift_connector_session.py",
        &[],
        "redshift_driver_method = \"md5\"\n",
    )
    .await;
}

/// sqlalchemy-redshift's `redshift+redshift_connector` dialect.
#[tokio::test]
async fn sqlalchemy_redshift() {
    python_session(
        "sqlalchemy_redshift",
        "sqlalchemy_redshift",
        "sqlalchemy_session.py",
        &["redshift_connector"],
        "",
    )
    .await;
}

#[tokio::test]
async fn node_postgres() {
    let node_dir = clients_dir().join("node");
    let missing = || {
        missing_command("node")
            .or_else(|| missing_file(&node_dir.join("node_modules/pg/package.json")))
    };
    if skip_or_require("node_postgres", missing) {
        return;
    }
    let (_proxy, env) = setup("node_postgres", "").await;
    let mut command = Command::new("node");
    command.arg(node_dir.join("session.js"));
    run_session("node_postgres", command, &env).await;
}
