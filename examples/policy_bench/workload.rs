//! The pgbench workloads of the view measurements: what each runs, as whom, pinned how.

use crate::Error;
use redveil::cluster::EphemeralCluster;
use redveil::demo::dataset;
use redveil::policy::classes::Entitlement;
use redveil::policy::Catalog;
use std::path::Path;
use std::process::Command;

/// How a pgbench connection is pinned: (relation to query, libpq `options`).
pub struct Pins {
    pub catalog: Catalog,
    pub tokens: redveil::policy::Tokens,
    /// The class views' SQL by user, for the inline-masks baseline.
    pub class_sql: std::collections::BTreeMap<String, String>,
}

impl Pins {
    /// The user's class view with its entitlements pinned at connect time, as the proxy
    /// pins them (see policy/classes.rs).
    pub fn class(&self, user: &str) -> (String, Option<String>) {
        let entitlement = self.entitlement(user);
        let view = format!("immuta_classes.{}", entitlement.views["hr.employees"]);
        (view, Some(self.token_option(user)))
    }

    pub fn entitlement(&self, user: &str) -> Entitlement {
        Entitlement::of(&self.catalog, &self.tokens, user)
    }

    /// `user`'s identity token pinned at connect time, as the proxy pins it.
    fn token_option(&self, user: &str) -> String {
        pgoptions(&[(
            redveil::policy::tokens::TOKEN_SETTING.to_string(),
            self.entitlement(user).token,
        )])
    }

    /// The canonical view with `user`'s token pinned.
    pub fn canonical(&self, user: &str) -> (String, Option<String>) {
        (
            "immuta.hr_employees".to_string(),
            Some(self.token_option(user)),
        )
    }

    /// The class view's body read as the system role: the same masks, row rules and
    /// entitlement join, no view. What is left between this and the class view is the view's
    /// own cost; between this and the raw table, the masks' and the join's.
    pub fn inline_masks(&self, backend: &dataset::DemoBackend, user: &str) -> Workload {
        let sql = &self.class_sql[user];
        let select = &sql[sql.find("\nSELECT ").expect("a SELECT") + 1..];
        // compile_class joins its filters by "\n  AND ".
        let (select, filters) = select.split_once("\nWHERE ").unwrap_or((select, ""));
        let mut filters: Vec<&str> = filters
            .split("\n  AND ")
            .filter(|f| !f.is_empty())
            .collect();
        filters.push("\"employees\".id = :id");
        Workload {
            label: if user == "admin" {
                "  raw table, admin's class inlined (no view)"
            } else {
                "  raw table, analyst's masks inlined (no view)"
            },
            // pgbench would take the `:dept` of the randomized-response literal `':dept:'`
            // for a variable; it does not know about quotes.
            sql: format!("{select} WHERE {};", filters.join(" AND ")).replace("':", "chr(58) || '"),
            login: system_login(backend),
            options: Some(self.token_option(user)),
        }
    }

    /// The workloads both measurements share.
    pub fn workloads(&self, backend: &dataset::DemoBackend) -> Vec<Workload> {
        let query = || query_login(backend);
        vec![
            Workload::lookup(
                "raw table",
                "hr.employees",
                system_login(backend),
                &(String::new(), None),
            ),
            Workload::lookup(
                "policy view, analyst",
                "",
                query(),
                &self.canonical("analyst"),
            ),
            Workload::lookup(
                "policy view, admin (exempt)",
                "",
                query(),
                &self.canonical("admin"),
            ),
            Workload::lookup(
                "class view (proxy's), analyst",
                "",
                query(),
                &self.class("analyst"),
            ),
            self.inline_masks(backend, "analyst"),
            Workload::lookup(
                "class view (proxy's), admin (exempt)",
                "",
                query(),
                &self.class("admin"),
            ),
            self.inline_masks(backend, "admin"),
        ]
    }
}

/// One pgbench workload: a statement with `:id`, run as `login` with libpq `options`.
pub struct Workload {
    pub label: &'static str,
    sql: String,
    login: (String, String),
    options: Option<String>,
}

impl Workload {
    /// A primary-key lookup on `relation`, or on the pinned relation when it is empty.
    pub fn lookup(
        label: &'static str,
        relation: &str,
        login: (String, String),
        (pinned, options): &(String, Option<String>),
    ) -> Workload {
        let relation = if relation.is_empty() {
            pinned
        } else {
            relation
        };
        Workload {
            label,
            sql: format!("SELECT * FROM {relation} WHERE id = :id;"),
            login,
            options: options.clone(),
        }
    }

    /// Runs pgbench with `load` (`-c N -T S`, or `-t N`) and returns its standard output;
    /// `script` is where the workload's script is written.
    pub fn pgbench(
        &self,
        cluster: &EphemeralCluster,
        backend: &dataset::DemoBackend,
        load: &[String],
        mode: &str,
        script: &Path,
    ) -> Result<String, Error> {
        std::fs::write(script, format!("\\set id random(1, 10000)\n{}\n", self.sql))?;
        let mut command = Command::new("pgbench");
        command
            .args(["-n", "-j", "2", "-M", mode])
            .args(load)
            .args([
                "-h",
                cluster.host(),
                "-p",
                &cluster.port().to_string(),
                "-U",
                &self.login.0,
            ])
            .arg("-f")
            .arg(script)
            .arg(&backend.database)
            .env("PGPASSWORD", &self.login.1);
        if let Some(options) = &self.options {
            command.env("PGOPTIONS", options);
        }
        let output = command.output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(format!(
                "pgbench failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(stdout)
    }
}

pub fn system_login(backend: &dataset::DemoBackend) -> (String, String) {
    (backend.system_user.clone(), backend.system_password.clone())
}

pub fn query_login(backend: &dataset::DemoBackend) -> (String, String) {
    (backend.query_user.clone(), backend.query_password.clone())
}

/// libpq `options` setting each of `settings` (spaces and backslashes escaped).
pub fn pgoptions(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(name, value)| {
            let value = value.replace('\\', "\\\\").replace(' ', "\\ ");
            format!("-c {name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn tps_of(pgbench_output: &str) -> Result<f64, Error> {
    pgbench_output
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench output: {pgbench_output}").into())
}
