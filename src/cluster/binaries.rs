//! Finding the PostgreSQL server binaries and running them as the right OS user.
//!
//! PostgreSQL refuses to run as root, so when we are root every server program runs
//! as the `postgres` OS user through `runuser`, and the cluster's files are chowned to it.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::ClusterError;

/// Where Debian installs one directory of server binaries per major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The OS user that owns the cluster when we run as root.
pub(crate) const POSTGRES_OS_USER: &str = "postgres";

/// Client-side environment variables that could point our helpers at another server.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATA",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
];

/// A directory holding `initdb`, `postgres` and `pg_ctl`.
#[derive(Debug, Clone)]
pub(crate) struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// `pg_config --bindir` when it has a server, else the newest Debian-style install.
    pub(crate) fn locate() -> Result<Self, ClusterError> {
        let mut searched = Vec::new();
        if let Some(dir) = pg_config_bindir() {
            if has_server(&dir) {
                return Ok(Self { bindir: dir });
            }
            searched.push(format!("{} (pg_config --bindir)", dir.display()));
        } else {
            searched.push("pg_config --bindir (not available)".to_string());
        }
        let mut candidates: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = parse_version(&entry.file_name().to_string_lossy())?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, dir)| has_server(dir))
            .collect();
        candidates.sort();
        searched.push(format!("{DEBIAN_ROOT}/*/bin"));
        match candidates.pop() {
            Some((_, bindir)) => Ok(Self { bindir }),
            None => Err(ClusterError::NoBinaries {
                searched: searched.join(", "),
            }),
        }
    }

    pub(crate) fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    pub(crate) fn pg_ctl(&self) -> PathBuf {
        self.bindir.join("pg_ctl")
    }

    pub(crate) fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_ctl"]
        .iter()
        .all(|name| dir.join(name).is_file())
}

/// "15" → [15], "9.6" → [9, 6]; anything else is not a version directory.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Runs server programs directly, or as the `postgres` OS user when we are root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runner {
    as_postgres: bool,
}

impl Runner {
    pub(crate) fn detect() -> Self {
        Self {
            as_postgres: running_as_root(),
        }
    }

    /// Whether server programs run as the `postgres` OS user.
    pub(crate) fn as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// Program and arguments, wrapped in `runuser` when needed.
    pub(crate) fn argv(&self, program: &Path, args: &[&OsStr]) -> Vec<std::ffi::OsString> {
        let mut argv = Vec::with_capacity(args.len() + 4);
        if self.as_postgres {
            argv.extend(["runuser", "-u", POSTGRES_OS_USER, "--"].map(Into::into));
        }
        argv.push(program.as_os_str().to_owned());
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// Runs to completion on the async runtime; a non-zero exit is an error.
    pub(crate) async fn run(
        &self,
        cwd: &Path,
        program: &Path,
        args: &[&OsStr],
    ) -> Result<Output, ClusterError> {
        let argv = self.argv(program, args);
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(cwd).kill_on_drop(true);
        cmd.stdin(std::process::Stdio::null());
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        let name = program.display().to_string();
        let out = cmd.output().await.map_err(|source| ClusterError::Spawn {
            program: name.clone(),
            source,
        })?;
        check(name, out)
    }

    /// Blocking variant, for teardown in `Drop` where no runtime may be available.
    pub(crate) fn run_blocking(
        &self,
        cwd: &Path,
        program: &Path,
        args: &[&OsStr],
    ) -> Result<Output, ClusterError> {
        let argv = self.argv(program, args);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(cwd)
            .stdin(std::process::Stdio::null());
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        let name = program.display().to_string();
        let out = cmd.output().map_err(|source| ClusterError::Spawn {
            program: name.clone(),
            source,
        })?;
        check(name, out)
    }

    /// Hands a freshly created tree to the `postgres` OS user (no-op when not root).
    pub(crate) async fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if !self.as_postgres {
            return Ok(());
        }
        let owner = format!("{POSTGRES_OS_USER}:");
        let out = tokio::process::Command::new("chown")
            .arg("-R")
            .arg(owner)
            .arg(path)
            .output()
            .await
            .map_err(|source| ClusterError::Spawn {
                program: "chown".into(),
                source,
            })?;
        check("chown".into(), out).map(drop)
    }
}

fn check(program: String, out: Output) -> Result<Output, ClusterError> {
    if out.status.success() {
        return Ok(out);
    }
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(ClusterError::CommandFailed {
        program,
        status: out.status,
        output: tail(&output, 2000),
    })
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_string()
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective uid; fall back to `id -u`.
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return meta.uid() == 0;
    }
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("common"), None);
        assert!(parse_version("9.6") < parse_version("10"));
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
