//! `--sync-scale`: how long sync takes for a catalog of 100 data sources of 20 columns.

use crate::{cluster_connect, Error};
use redveil::cluster::EphemeralCluster;
use redveil::config::Config;
use redveil::demo::dataset;
use redveil::policy::{self, Catalog, SyncOptions};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const SCALE_SOURCES: usize = 100;
const SCALE_USERS: usize = 20;

pub async fn sync_scale(
    cluster: &EphemeralCluster,
    backend: &dataset::DemoBackend,
    base: &str,
) -> Result<(), Error> {
    let types = ["text", "numeric(12,2)", "date", "integer", "timestamp"];
    let mut ddl = String::from("CREATE SCHEMA scale;\n");
    for t in 0..SCALE_SOURCES {
        let columns: Vec<String> = (1..20)
            .map(|c| format!("c{c:02} {}", types[c % types.len()]))
            .collect();
        let _ = writeln!(
            ddl,
            "CREATE TABLE scale.t{t:03} (id integer PRIMARY KEY, {});",
            columns.join(", ")
        );
    }
    let system = cluster_connect(cluster, backend).await?;
    system.batch_execute(&ddl).await?;
    let mut toml = format!(
        "{base}[control]\nuser = \"{}\"\npassword = \"{}\"\n",
        backend.system_user, backend.system_password
    );
    let verifier = redveil::auth::ScramVerifier::generate("bench").to_string();
    for u in 0..SCALE_USERS {
        let _ = write!(
            toml,
            "\n[[users]]\nname = \"u{u:02}\"\npassword = \"{verifier}\"\ngroups = [\"g{}\"]\nattributes = {{ region = [\"r{}\"] }}\n",
            u % 4,
            u % 3
        );
    }
    for t in 0..SCALE_SOURCES {
        let _ = write!(
            toml,
            "\n[[data_sources]]\ntable = \"scale.t{t:03}\"\n\
             [[data_sources.masks]]\ncolumn = \"c05\"\nmethod = \"hash\"\nunless_groups = [\"g0\"]\n\
             [[data_sources.masks]]\ncolumn = \"c01\"\nmethod = \"round\"\nstep = 100\nunless_groups = [\"g0\"]\n\
             [[data_sources.masks]]\ncolumn = \"c02\"\nmethod = \"truncate\"\nunit = \"month\"\nunless_groups = [\"g1\"]\n\
             [[data_sources.masks]]\ncolumn = \"c10\"\nmethod = \"regex\"\npattern = \"[0-9]\"\nreplacement = \"#\"\n\
             [[data_sources.masks]]\ncolumn = \"c04\"\nmethod = \"null\"\nunless_attributes = {{ region = [\"r0\"] }}\n\
             [[data_sources.row_rules]]\ncolumn = \"c15\"\nattribute = \"region\"\nunless_groups = [\"g0\"]\n"
        );
    }
    let timed = |label: &'static str, text: String| async move {
        let config = Config::parse(&text, Path::new("scale.toml"))?;
        let catalog = Catalog::from_config(&config).map_err(|p| format!("{p:?}"))?;
        let mut client = cluster_connect(cluster, backend).await?;
        let options = SyncOptions {
            database: backend.database.clone(),
            default_database: backend.database.clone(),
            query_role: backend.query_user.clone(),
            dialect: redveil::dialect::Dialect::Postgres,
            tokens: policy::TokenSync {
                current: std::sync::Arc::new(policy::Tokens::issue(&catalog, "bench")),
                previous: None,
            },
        };
        let start = Instant::now();
        let report = policy::sync(&mut client, &catalog, &options).await?;
        println!(
            "{label}: {:.0} ms, {} changes",
            start.elapsed().as_secs_f64() * 1e3,
            report.changes.len()
        );
        Ok::<(), Error>(())
    };
    println!("sync of {SCALE_SOURCES} data sources x 20 columns, {SCALE_USERS} users:");
    timed("first sync (creates everything)", toml.clone()).await?;
    timed("second sync (no changes)", toml.clone()).await?;
    let changed = toml.replacen("step = 100", "step = 1000", 1);
    timed("after one mask changed", changed).await?;
    Ok(())
}
