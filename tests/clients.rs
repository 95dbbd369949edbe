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
//! local runs.

mod common;

use common::demo_views;
use common::proxy::{TestProxy, PASSWORD_OF};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// Several idle backend connections, handed out first-in first-out, so consecutive
/// transactions of one client land on different backends.
const POOL: &str = "[pool]\nmode = \"transaction\"\nsize = 4\nmin_idle = 4\n";

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

/// Skips (returns true) when the suite is switched off; otherwise fails if `missing` names
/// something not installed.
fn skip_or_require(client: &str, missing: Option<String>) -> bool {
    if std::env::var("REDVEIL_SKIP_CLIENTS").is_ok_and(|v| v == "1") {
        eprintln!("{client}: skipped (REDVEIL_SKIP_CLIENTS=1)");
        return true;
    }
    if let Some(what) = missing {
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

/// A proxy for one client's session and the environment the client script reads.
async fn setup(client: &str) -> (TestProxy, Vec<(String, String)>) {
    scratch_table().await;
    let proxy = demo_views::start(POOL).await;
    let eu = demo_views::eu_rows().await;
    let env = [
        ("REDVEIL_HOST", "localhost".to_string()),
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

/// One Python driver's session script from `tests/clients/python/`.
async fn python_session(client: &str, module: &str, script: &str) {
    if skip_or_require(client, missing_python_module(module)) {
        return;
    }
    let (_proxy, env) = setup(client).await;
    let mut command = Command::new(venv_python());
    command.arg(clients_dir().join("python").join(script));
    run_session(client, command, &env).await;
}

#[tokio::test]
async fn psycopg3() {
    python_session("psycopg3", "psycopg", "psycopg3_session.py").await;
}
