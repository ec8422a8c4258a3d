//! The `gati-registry` binary: command-line parsing, configuration, logging, metrics, signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gati_registry::Node;
use gati_registry::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "gati-registry", version, about = "Gati Registry: a unified, replicated OCI registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a registry node.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags and GATI_* variables override it.
    #[arg(long, env = "GATI_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:5000.
    #[arg(long, env = "GATI_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Directory for metadata, blobs and uploads.
    #[arg(long, env = "GATI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log line format.
    #[arg(long, env = "GATI_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `gati_registry=debug`.
    #[arg(long, env = "GATI_LOG_LEVEL")]
    log_level: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(level) = self.log_level {
            config.log.level = level;
        }
        config.validate()?;
        Ok(config)
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log.level).context("invalid log level")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested, finishing in-flight requests");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    let config = args.into_config()?;
    init_logging(&config)?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let node = Node::start(&config).await.context("starting node")?;
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, data_dir = %config.data_dir.display(), "gati registry serving");
    node.serve(listener, Some(metrics), shutdown_signal()).await?;
    Ok(())
}
