//! What a policy view costs inside PostgreSQL, and how long sync takes: run by
//! `bench/policy_view.sh` (see bench/README.md for the method and saved results).
//!
//! `cargo run --example policy_bench -- [--seconds N] [--rounds N] [--clients N]`
//! runs pgbench primary-key lookups of one row of the demo's 10 000-row `hr.employees`: on
//! the raw table and on its policy view (as `analyst`, whom every mask and the row rule
//! apply to, and as `admin`, who is exempt), plus two variants built only for comparison:
//! the same view without `security_barrier`, and the shape that computes the user's flags
//! per statement from the secure profile views. Each in `-M extended` (planned every time)
//! and `-M prepared` (cached plan), interleaved round by round so a busy machine hurts all
//! alike; reported are the median TPS and the median of each round's ratio to the raw table.
//!
//! `cargo run --example policy_bench -- --callgrind` counts the server's instructions per
//! lookup instead (valgrind; see `instructions`).
//!
//! `cargo run --example policy_bench -- --sync-scale` times sync of 100 data sources of 20
//! columns each (20 users): the first sync, a second one (no changes) and one after a mask
//! changed.

use redveil::cluster::{ClusterOptions, EphemeralCluster};
use redveil::config::Config;
use redveil::demo::{catalog, dataset};
use redveil::policy::entitle::AccessPlan;
use redveil::policy::{self, Catalog};
use std::fmt::Write as _;
use std::path::Path;

mod sync_scale;
mod workload;

use workload::{query_login, tps_of, Pins, Workload};

type Error = Box<dyn std::error::Error>;

struct Args {
    seconds: u32,
    rounds: usize,
    clients: u32,
    sync_scale: bool,
    callgrind: bool,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 3,
        rounds: 5,
        clients: 8,
        sync_scale: false,
        callgrind: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--seconds" => args.seconds = value(),
            "--rounds" => args.rounds = value() as usize,
            "--clients" => args.clients = value(),
            "--sync-scale" => args.sync_scale = true,
            "--callgrind" => args.callgrind = true,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args = args();
    let mut cluster = EphemeralCluster::start(ClusterOptions::default()).await?;
    let backend = dataset::load(&cluster).await?;
    dataset::revoke_raw_access(&cluster).await?;
    let base = format!(
        "[tls]\nmode = \"disable\"\n[backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        backend.host, backend.port, backend.database, backend.query_user, backend.query_password
    );
    let result = if args.sync_scale {
        sync_scale::sync_scale(&cluster, &backend, &base).await
    } else {
        let text = base
            + &catalog::catalog_toml(&backend, |u| {
                redveil::auth::ScramVerifier::generate(u).to_string()
            });
        let config = Config::parse(&text, Path::new("bench.toml"))?;
        let catalog = Catalog::from_config(&config).map_err(|e| format!("{e:?}"))?;
        let tokens = policy::Tokens::issue(&catalog, "bench");
        policy::sync_configured(
            &config,
            &policy::TokenSync {
                current: std::sync::Arc::new(tokens.clone()),
                previous: None,
            },
            redveil::dialect::Dialect::Postgres,
        )
        .await?;
        let ds = &catalog.data_sources[0];
        let columns = policy::table_columns(
            &cluster_connect(&cluster, &backend).await?,
            redveil::dialect::Dialect::Postgres,
            ds,
        )
        .await?;
        let mut class_sql = std::collections::BTreeMap::new();
        for user in ["analyst", "admin"] {
            let row = catalog
                .user(user)
                .and_then(|u| AccessPlan::of(ds).row_for(ds, u))
                .ok_or("the demo user may query hr.employees")?;
            let view = policy::compile_class(
                redveil::dialect::Dialect::Postgres,
                ds,
                &row.flags,
                &columns,
            )?;
            class_sql.insert(user.to_string(), view.sql);
        }
        let pins = Pins {
            catalog,
            tokens,
            class_sql,
        };
        if args.callgrind {
            instructions(&cluster, &backend, &pins).await
        } else {
            views(&cluster, &backend, &args, &pins).await
        }
    };
    cluster.shutdown();
    result
}

/// Views built only to compare shapes, owned by the system role like the real one.
const VARIANTS_SQL: &str = "
CREATE SCHEMA immuta_bench;
GRANT USAGE ON SCHEMA immuta_bench TO redveil_query;
CREATE VIEW immuta_bench.profile_views WITH (security_barrier) AS
SELECT t.id,
  CASE WHEN f.hr THEN t.name ELSE regexp_replace(t.name, '^(.).*$', '\\1***', 'g') END AS name,
  CASE WHEN f.hr THEN t.email ELSE encode(sha256(convert_to(f.salt || t.email, 'UTF8')), 'hex') END AS email,
  CASE WHEN f.hr THEN t.ssn END AS ssn,
  CASE WHEN f.hr THEN t.salary ELSE CAST(round(t.salary / 10000) * 10000 AS numeric(12,2)) END AS salary,
  t.dept, t.region, t.hired
FROM hr.employees t
CROSS JOIN (SELECT EXISTS (SELECT 1 FROM immuta_system.user_groups WHERE group_name = 'hr') AS hr,
                   ARRAY(SELECT value FROM immuta_system.user_attributes WHERE attribute = 'region') AS regions,
                   (SELECT salt FROM immuta_system.data_sources WHERE data_source = 'hr.employees') AS salt
            WHERE EXISTS (SELECT 1 FROM immuta_system.user_access WHERE data_source = 'hr.employees')
            OFFSET 0) f
WHERE f.hr OR t.region = ANY (f.regions);
GRANT SELECT ON immuta_bench.profile_views TO redveil_query;";

async fn views(
    cluster: &EphemeralCluster,
    backend: &dataset::DemoBackend,
    args: &Args,
    pins: &Pins,
) -> Result<(), Error> {
    let admin = cluster.connect_superuser(&backend.database).await?;
    let definition: String = admin
        .query_one(
            "SELECT pg_get_viewdef('immuta.hr_employees'::regclass)",
            &[],
        )
        .await?
        .get(0);
    admin
        .batch_execute(&format!(
            "SET ROLE redveil_system; {VARIANTS_SQL}
             CREATE VIEW immuta_bench.no_barrier AS {definition}
             GRANT SELECT ON immuta_bench.no_barrier TO redveil_query; RESET ROLE;"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let mut workloads = pins.workloads(backend);
    let analyst = pins.canonical("analyst");
    for (label, relation) in [
        (
            "  same, no security_barrier, analyst",
            "immuta_bench.no_barrier",
        ),
        (
            "  flags from secure profile views, analyst",
            "immuta_bench.profile_views",
        ),
    ] {
        workloads.push(Workload::lookup(
            label,
            relation,
            query_login(backend),
            &analyst,
        ));
    }
    let modes = ["extended", "prepared"];
    let mut tps = vec![vec![Vec::new(); modes.len()]; workloads.len()];
    for round in 0..args.rounds {
        for (m, mode) in modes.iter().enumerate() {
            for (w, workload) in workloads.iter().enumerate() {
                let script = dir.path().join(format!("w{w}.sql"));
                let load = [
                    "-c",
                    &args.clients.to_string(),
                    "-T",
                    &args.seconds.to_string(),
                ]
                .map(String::from);
                let output = workload.pgbench(cluster, backend, &load, mode, &script)?;
                let value = tps_of(&output)?;
                eprintln!(
                    "round {} {mode:9} {}: {value:.0} tps",
                    round + 1,
                    workload.label
                );
                tps[w][m].push(value);
            }
        }
    }
    let mut out = format!(
        "\nPostgreSQL primary-key lookup, {} clients, {} rounds x {} s per cell, load average {}\n\
         median TPS, and in parentheses the median over rounds of (TPS / raw-table TPS of the same round)\n",
        args.clients,
        args.rounds,
        args.seconds,
        load_average()
    );
    let _ = writeln!(
        out,
        "| workload | -M extended | -M prepared |\n|---|---|---|"
    );
    for (w, workload) in workloads.iter().enumerate() {
        let cells: Vec<String> = (0..modes.len())
            .map(|m| {
                let ratios: Vec<f64> = tps[w][m]
                    .iter()
                    .zip(&tps[0][m])
                    .map(|(v, raw)| v / raw)
                    .collect();
                format!("{:.0} ({:.2})", median(&tps[w][m]), median(&ratios))
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", workload.label.trim(), cells.join(" | "));
    }
    println!("{out}");
    Ok(())
}

/// Statements per callgrind run; the second run does three times as many.
const CALLGRIND_STATEMENTS: u32 = 300;

/// The server's own instructions per primary-key lookup, counted by callgrind (stable on a
/// busy machine, unlike TPS): the server restarts under valgrind, and each workload runs
/// once with N and once with 3N statements on one connection, so start-up and login cancel
/// out of (I(3N) − I(N)) / 2N.
async fn instructions(
    cluster: &EphemeralCluster,
    backend: &dataset::DemoBackend,
    pins: &Pins,
) -> Result<(), Error> {
    let out_dir = cluster.data_dir().to_path_buf();
    let out_file = format!("--callgrind-out-file={}/callgrind.%p", out_dir.display());
    cluster.stop_server().await?;
    cluster
        .start_server_under(&["valgrind", "--tool=callgrind", "--dump-instr=no", &out_file])
        .await?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("lookup.sql");
    let mut out = String::from(
        "\nPostgreSQL server instructions per primary-key lookup (callgrind, 1 client), and the ratio to the raw table\n\
         | workload | -M prepared | -M extended |\n|---|---|---|\n",
    );
    let mut raw = [0f64; 2];
    for (w, workload) in pins.workloads(backend).iter().enumerate() {
        let label = workload.label.trim();
        let mut cells = Vec::new();
        for (m, mode) in ["prepared", "extended"].into_iter().enumerate() {
            let mut totals = Vec::new();
            for n in [CALLGRIND_STATEMENTS, 3 * CALLGRIND_STATEMENTS] {
                let before = callgrind_files(&out_dir)?;
                let load = ["-c".to_string(), "1".into(), "-t".into(), n.to_string()];
                workload.pgbench(cluster, backend, &load, mode, &script)?;
                totals.push(finished_run(&out_dir, &before).await?);
            }
            let per_statement =
                (totals[1] - totals[0]) as f64 / f64::from(2 * CALLGRIND_STATEMENTS);
            if w == 0 {
                raw[m] = per_statement;
            }
            cells.push(format!(
                "{per_statement:.0} ({:.2})",
                per_statement / raw[m]
            ));
            eprintln!("{label} {mode}: {per_statement:.0} instructions per statement");
        }
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    cluster.stop_server().await?;
    println!("{out}");
    Ok(())
}

fn callgrind_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("callgrind."))
        {
            files.push(path);
        }
    }
    Ok(files)
}

/// The instruction total of the pgbench connection's backend, which exited since `before`
/// was listed (callgrind writes a process's file when it exits). Background workers that
/// exit meanwhile write files too; the connection's is by far the largest.
async fn finished_run(dir: &Path, before: &[std::path::PathBuf]) -> Result<u64, Error> {
    let total_of = |file: &Path| {
        std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("summary: ")
                    .or_else(|| l.strip_prefix("totals: "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        })
    };
    let mut seen = Vec::new();
    for _ in 0..600 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let fresh: Vec<_> = callgrind_files(dir)?
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        let totals: Option<Vec<u64>> = fresh.iter().map(|f| total_of(f)).collect();
        match totals {
            Some(totals) if !fresh.is_empty() && fresh == seen => {
                for file in &fresh {
                    std::fs::remove_file(file)?;
                }
                return Ok(totals.into_iter().max().unwrap_or(0));
            }
            _ => seen = fresh,
        }
    }
    Err("callgrind wrote no file for the pgbench connection within 5 minutes".into())
}

/// The machine's 1-minute load average: results on a busy machine say so.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

async fn cluster_connect(
    cluster: &EphemeralCluster,
    backend: &dataset::DemoBackend,
) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) =
        tokio_postgres::connect(&backend.system_conn_string(cluster), tokio_postgres::NoTls)
            .await?;
    tokio::spawn(connection);
    Ok(client)
}
