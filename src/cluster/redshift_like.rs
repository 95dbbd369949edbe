//! A PostgreSQL that reads and answers like Amazon Redshift where redveil depends on it, for
//! tests and `redveil demo --dialect redshift`: plain literals take backslash escapes
//! (`standard_conforming_strings = off`), `version()` names Redshift, Redshift's session
//! setting `enable_result_cache_for_session` exists (a small module, built here), and SQL
//! versions of the Redshift functions the dialect writes (SHA2, STRTOL, REGEXP_REPLACE that
//! replaces every match, CURRENT_SETTING whose second argument is error_if_undefined) and
//! the SVV_COLUMNS catalog view come first in the search path. What it cannot stand in for (RLS
//! policies, Redshift's planner, its catalog) only a real cluster shows.

use super::error::ClusterError;
use std::path::{Path, PathBuf};

const MODULE_SOURCE: &str = include_str!("redshift_compat.c");

/// Installed in template1 before any database is created, so every database has them.
pub const FUNCTIONS_SQL: &str = r#"
CREATE SCHEMA IF NOT EXISTS redshift_compat;
GRANT USAGE ON SCHEMA redshift_compat TO PUBLIC;
CREATE OR REPLACE FUNCTION redshift_compat.sha2(text, integer) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT CASE WHEN $2 = 256 THEN encode(sha256(convert_to($1, 'UTF8')), 'hex') END $$;
CREATE OR REPLACE FUNCTION redshift_compat.strtol(text, integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT CASE WHEN $2 = 16 THEN CAST(CAST('x' || lpad($1, 16, '0') AS bit(64)) AS bigint) END $$;
CREATE OR REPLACE FUNCTION redshift_compat.regexp_replace(text, text, text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT pg_catalog.regexp_replace($1, $2, $3, 'g') $$;
-- Redshift's second argument is error_if_undefined, PostgreSQL's missing_ok.
CREATE OR REPLACE FUNCTION redshift_compat.current_setting(text, boolean) RETURNS text
    LANGUAGE sql STABLE STRICT AS $$ SELECT pg_catalog.current_setting($1, NOT $2) $$;
-- Redshift's documented column catalog (r_SVV_COLUMNS.html), the columns sync reads.
CREATE OR REPLACE VIEW redshift_compat.svv_columns AS
    SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, data_type,
           character_maximum_length, numeric_precision, numeric_scale
    FROM information_schema.columns;
GRANT SELECT ON redshift_compat.svv_columns TO PUBLIC;
CREATE OR REPLACE FUNCTION redshift_compat.version() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT pg_catalog.version() || ', Redshift-like test cluster (redveil), Redshift 1.0' $$;
"#;

/// Compiles the module into `root`; returns its path.
pub(crate) async fn build_module(root: &Path) -> Result<PathBuf, ClusterError> {
    let source = root.join("redshift_compat.c");
    let module = root.join("redshift_compat.so");
    std::fs::write(&source, MODULE_SOURCE).map_err(ClusterError::io("writing", &source))?;
    let includes = run("pg_config", &["--includedir-server".as_ref()]).await?;
    let include_arg = format!("-I{}", includes.trim());
    run(
        "gcc",
        &[
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-O2".as_ref(),
            include_arg.as_ref(),
            "-o".as_ref(),
            module.as_os_str(),
            source.as_os_str(),
        ],
    )
    .await?;
    Ok(module)
}

/// Server settings of a Redshift-like cluster whose module is at `module`.
pub(crate) fn settings(module: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "shared_preload_libraries",
            format!("'{}'", module.display()),
        ),
        ("standard_conforming_strings", "off".into()),
        // The warnings would only repeat what the setting means.
        ("escape_string_warning", "off".into()),
        (
            "search_path",
            "'\"$user\", public, redshift_compat, pg_catalog'".into(),
        ),
    ]
}

async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, ClusterError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| ClusterError::Spawn {
            program: format!(
                "{program} (install postgresql-server-dev with scripts/install-deps.sh)"
            ),
            source,
        })?;
    if !out.status.success() {
        return Err(ClusterError::CommandFailed {
            program: program.into(),
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
