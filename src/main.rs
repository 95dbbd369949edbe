//! The `redveil` command line: run the proxy, check a config, make a password verifier,
//! explain a policy, or start the demo.

use clap::{Parser, Subcommand};
use redveil::config::Config;
use redveil::server::Server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "redveil",
    version,
    about = "Policy-enforcing proxy for Redshift and PostgreSQL"
)]
struct Cli {
    /// Run the proxy with this configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file; prints every problem with its key and line.
    CheckConfig { file: PathBuf },
    /// Read a password (from the terminal, or a line of stdin) and print a SCRAM-SHA-256 verifier.
    Passwd,
    /// Show which subscription, masking and row rules apply to a user on a data source, and
    /// the view's SQL (reads the table's columns from the cluster as the control role).
    ExplainPolicy {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        user: String,
        /// The registered table (`[database.]schema.table`) or its view.
        #[arg(long)]
        data_source: String,
    },
    /// Start an ephemeral PostgreSQL with demo data and the proxy in front of it.
    Demo {
        #[arg(long, default_value = "127.0.0.1:5439")]
        listen: SocketAddr,
        /// Keep the cluster's data directory afterwards.
        #[arg(long)]
        keep: bool,
        /// `redshift`: a PostgreSQL made to read and answer like Redshift where redveil
        /// depends on it, and the proxy speaking Redshift to it.
        #[arg(long, default_value = "postgres", value_parser = ["postgres", "redshift"])]
        dialect: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Passwd) => passwd(),
        Some(Command::ExplainPolicy {
            config,
            user,
            data_source,
        }) => explain_policy(&config, &user, &data_source),
        Some(Command::Demo {
            listen,
            keep,
            dialect,
        }) => {
            init_logging("info");
            let dialect = match dialect.as_str() {
                "redshift" => redveil::dialect::Dialect::Redshift,
                _ => redveil::dialect::Dialect::Postgres,
            };
            runtime(|| async move { redveil::demo::run::run(listen, keep, dialect).await })
        }
        None => match cli.config {
            Some(path) => run(&path),
            None => {
                eprintln!("redveil: give --config FILE, or a subcommand (see --help)");
                ExitCode::from(2)
            }
        },
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: OK", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn explain_policy(path: &std::path::Path, user: &str, data_source: &str) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (user, data_source) = (user.to_string(), data_source.to_string());
    runtime(|| async move {
        let text =
            redveil::policy::explain::explain_configured(&config, &user, &data_source).await?;
        print!("{text}");
        Ok(())
    })
}

fn passwd() -> ExitCode {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map(|_| line.trim_end_matches(['\r', '\n']).to_string())
    };
    match password {
        Ok(p) if !p.is_empty() => {
            println!("{}", redveil::auth::ScramVerifier::generate(&p));
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("redveil passwd: empty password");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("redveil passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config.log.level);
    let path = path.to_path_buf();
    runtime(|| async move {
        // First, so the counters of the start-up itself (sync, the first logins) are kept.
        if let Some(addr) = config.metrics.listen_addr() {
            redveil::admin::serve_prometheus(addr)?;
            tracing::info!(%addr, "metrics listening");
        }
        let server = Server::bind(config).await?;
        let stopper = server.stopper();
        tokio::spawn(reload_on_sighup(path, server.reloader()));
        let serving = tokio::spawn(server.serve());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => stopper.graceful(),
            _ = tokio::signal::ctrl_c() => stopper.immediate(),
        }
        serving.await?;
        Ok(())
    })
}

/// SIGHUP re-reads the config file and puts its catalog in force; a bad file is reported and
/// the running catalog kept.
async fn reload_on_sighup(path: std::path::PathBuf, reloader: redveil::server::Reloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; catalog reload disabled");
        return;
    };
    while hangup.recv().await.is_some() {
        let config = match Config::load(&path) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!("reload refused, keeping the running catalog: {e}");
                continue;
            }
        };
        match reloader.reload(config).await {
            Ok(reports) => {
                for report in reports {
                    tracing::info!("catalog reloaded: {report}");
                }
            }
            Err(e) => tracing::error!("reload failed, keeping the running catalog: {e}"),
        }
    }
}

fn runtime<F, Fut>(body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redveil: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(body()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redveil: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    // tokio-postgres logs every NOTICE of the control path at INFO, sync's own DDL included
    // ("view ... does not exist, skipping"): not for a human unless asked for.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},tokio_postgres::connection=warn"))
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}
