//! Opens many idle PostgreSQL connections and holds them until SIGTERM or SIGINT, so
//! `bench/run.sh` can read a proxy's RSS per idle client.
//!
//! `bench_idle --count 1000 [--ca ca.crt] "host=localhost port=... user=... password=..."`.
//! With `--ca` every connection uses TLS (`sslmode=require`, the certificate verified
//! against that CA); without it, none does. Prints `open N` once all N are logged in.

use clap::Parser;
use std::sync::Arc;
use std::time::Instant;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Logins in flight at once (SCRAM costs CPU on both sides).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// CA certificate (PEM); turns TLS on.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// libpq-style key=value connection string.
    conn: String,
}

const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

type Held = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let conn = match &args.ca {
        Some(_) => format!("{} sslmode=require", args.conn),
        None => format!("{} sslmode=disable", args.conn),
    };
    let config: tokio_postgres::Config = conn.parse()?;
    let tls = match &args.ca {
        Some(ca) => Some(tokio_postgres_rustls::MakeRustlsConnect::new(client_tls(
            ca,
        )?)),
        None => None,
    };
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..args.count {
        let (config, tls, gate) = (config.clone(), tls.clone(), gate.clone());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            // A proxy that stops accepting (e.g. out of file descriptors) must fail the
            // measurement, not hang it.
            tokio::time::timeout(LOGIN_TIMEOUT, open(&config, tls))
                .await
                .map_err(|_| "login timed out")?
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        });
    }
    let mut held = Vec::with_capacity(args.count);
    while let Some(joined) = opening.join_next().await {
        held.push(joined?.map_err(|e| e as Box<dyn std::error::Error>)?);
    }
    println!(
        "open {} in {:.1} s",
        held.len(),
        started.elapsed().as_secs_f64()
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    for (client, task) in held {
        drop(client);
        task.abort();
    }
    Ok(())
}

async fn open(
    config: &tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
) -> Result<Held, tokio_postgres::Error> {
    match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await?;
            Ok((client, tokio::spawn(async move { drop(connection.await) })))
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            Ok((client, tokio::spawn(async move { drop(connection.await) })))
        }
    }
}

fn client_tls(ca: &std::path::Path) -> Result<rustls::ClientConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
