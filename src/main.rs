//! The `gati-registry` binary: command-line parsing, configuration, logging, metrics, signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gati_registry::Node;
use gati_registry::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc malloc: the request and consensus paths allocate many small,
/// short-lived buffers across threads, where glibc's arenas cost measurably more CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Administers a running cluster through any of its nodes. Calls carry the cluster secret
    /// from the environment variable `GATI_CLUSTER_SECRET` when the cluster has one.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Prints a node's view of every consensus group: role, leader, term, log and apply
    /// positions, members and replication lag.
    Status {
        /// Node-to-node (gRPC) address of the node to ask.
        #[arg(long, default_value = "127.0.0.1:7101")]
        rpc: String,
        /// Prints JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Adds a running node to the cluster (a node started with a config that does not list it
    /// among the members asks to join by itself).
    Join {
        /// Node-to-node address of any member.
        #[arg(long)]
        via: String,
        /// The new node's id.
        #[arg(long)]
        node_id: u64,
        /// The new node's node-to-node address.
        #[arg(long)]
        rpc: String,
        /// The cluster's shard count.
        #[arg(long, default_value_t = gati_core::ShardCount::DEFAULT.get())]
        shards: u16,
    },
    /// Removes a node from the cluster; its shard replicas move to the remaining nodes.
    Leave {
        /// Node-to-node address of any member other than the leaving one.
        #[arg(long)]
        via: String,
        /// The leaving node's id.
        #[arg(long)]
        node_id: u64,
        /// Returns only once no shard lists the node any more (bounded by two minutes).
        #[arg(long)]
        wait: bool,
    },
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

/// Runs one `cluster` administration command.
async fn cluster_command(command: ClusterCommand) -> anyhow::Result<()> {
    use gati_registry::cluster::{admin, status};
    let secret = std::env::var("GATI_CLUSTER_SECRET").ok();
    let peers = gati_registry::raft::Peers::with_secret(secret.as_deref()).map_err(anyhow::Error::msg)?;
    match command {
        ClusterCommand::Status { rpc, json } => {
            let node = admin::status(&peers, &rpc).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&node)?);
            } else {
                print!("{}", status::render_table(&node));
            }
        }
        ClusterCommand::Join { via, node_id, rpc, shards } => {
            admin::join(&peers, &[via], gati_core::NodeId(node_id), &rpc, shards).await?;
            println!("node {node_id} is a member");
        }
        ClusterCommand::Leave { via, node_id, wait } => {
            admin::leave(&peers, std::slice::from_ref(&via), gati_core::NodeId(node_id)).await?;
            println!("node {node_id} removed from the cluster's membership");
            if wait {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                loop {
                    let node = admin::status(&peers, &via).await?;
                    let holding = node
                        .groups
                        .iter()
                        .filter(|g| g.voters.contains(&node_id) || g.learners.contains(&node_id))
                        .count();
                    if holding == 0 {
                        println!("no group lists node {node_id} any more");
                        break;
                    }
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "{holding} groups still list node {node_id} after two minutes"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Cluster(command) => return cluster_command(command).await,
    };
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
