//! A detached shell that tears the cluster down when its owning process dies.
//!
//! Test binaries keep their cluster in a `static`, which is never dropped, and a killed
//! process runs no destructors at all. The watchdog reads its stdin, a pipe whose only
//! writer is the owning process: the read returns at EOF, which the kernel delivers when
//! the owner exits for any reason (no polling, no pid reuse race). It then stops the
//! server with `pg_ctl stop -m immediate` and removes the directory unless asked to keep it.
//! An orderly `shutdown` kills the watchdog after doing the same work itself.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::binaries::Runner;
use super::ClusterError;

/// `$1` = the directory to remove, `$2` = "keep" or "remove", the rest = the stop command.
const SCRIPT: &str = r#"
read -r _ignored || true
root=$1; keep=$2; shift 2
"$@" >/dev/null 2>&1 || true
if [ "$keep" != keep ]; then rm -rf -- "$root"; fi
"#;

/// The running watchdog; kill it once the owner has torn down by itself.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Starts watching. `data_dir` is the PostgreSQL data directory inside `root`.
    pub(crate) fn spawn(
        runner: Runner,
        pg_ctl: &Path,
        data_dir: &Path,
        root: &Path,
        keep: bool,
    ) -> Result<Self, ClusterError> {
        let stop = runner.argv(
            pg_ctl,
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data_dir.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
            ],
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("redveil-pg-watchdog")
            .arg(root)
            .arg(if keep { "keep" } else { "remove" })
            .args(&stop)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C or a group kill aimed at the owner must not
            // take the watchdog down with it.
            .process_group(0)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                program: "sh (watchdog)".into(),
                source,
            })?;
        Ok(Self { child })
    }

    /// Ends the watchdog without letting it act, and reaps it.
    pub(crate) fn disarm(mut self) {
        // Errors mean it already exited; there is nothing left to clean up either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
