//! `pgdrill serve-s3`: the embedded S3 endpoint, standalone, until Ctrl-C or SIGTERM. Parses and
//! waits; the server itself is the local backend's.

use std::net::IpAddr;
use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};

use pgdrill::backend::credentials::KeyPair;
use pgdrill::backend::local::s3server::S3Server;
use pgdrill::error::exit;

/// Arguments of `pgdrill serve-s3`.
#[derive(Debug, clap::Args)]
pub struct ServeS3Args {
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on (the live cluster serves its pods on its bridge address).
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    #[arg(long, default_value_t = 9000)]
    port: u16,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, default_value = "pgdrill")]
    bucket: Vec<String>,
}

pub async fn run(args: ServeS3Args) -> anyhow::Result<i32> {
    let creds = KeyPair {
        access_key: args.access_key,
        secret_key: args.secret_key,
    };
    let buckets: Vec<&str> = args.bucket.iter().map(String::as_str).collect();
    let s = S3Server::start_on(args.address, &args.dir, args.port, &creds, &buckets).await?;
    println!(
        "serving {} at {} (Ctrl-C or SIGTERM stops)",
        args.dir.display(),
        s.endpoint
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    s.shutdown().await;
    Ok(exit::PASSED)
}
