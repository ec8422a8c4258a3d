//! Wiring of one node: opens the stores, starts consensus and the actor directories, builds the
//! facade and serves HTTP until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gati_blob::{BlobError, BlobStore, FsBlobStore};
use gati_meta::{MetaError, MetaStore};
use metrics_exporter_prometheus::PrometheusHandle;
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::actors::{NamespaceDirectory, UploadDirectory};
use crate::config::Config;
use crate::raft::{RaftError, RaftNode};
use crate::registry::Registry;

/// Why a node could not start or serve.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The metadata store could not be opened.
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    /// The blob store could not be opened.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// Consensus could not start.
    #[error("consensus: {0}")]
    Raft(#[from] RaftError),
    /// The listener failed.
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
}

/// A started node: stores open, consensus running, facade ready.
pub struct Node {
    registry: Registry,
    raft: Arc<RaftNode>,
    meta: MetaStore,
    purger: tokio::task::JoinHandle<()>,
    shutdown_grace: Duration,
}

/// Discards abandoned upload sessions a few times per expiry period (at most hourly).
async fn purge_expired_uploads(uploads: UploadDirectory, expiry: Duration) {
    let mut every = tokio::time::interval((expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600)));
    loop {
        every.tick().await;
        match uploads.purge_expired(expiry).await {
            Ok(0) => {}
            Ok(purged) => info!(purged, "discarded expired upload sessions"),
            Err(e) => warn!(error = %e, "purging expired upload sessions failed"),
        }
    }
}

impl Node {
    /// Opens the node's stores under `config.data_dir` and starts consensus.
    pub async fn start(config: &Config) -> Result<Node, NodeError> {
        let meta = MetaStore::open(&config.data_dir.join("meta"))?;
        let state = meta.state_machine()?;
        let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(config.data_dir.join("blobs")).await?);
        let raft = Arc::new(RaftNode::start(config.node_id, meta.db(), state.clone()).await?);
        let namespaces = NamespaceDirectory::new(state.clone(), raft.clone(), config.namespace_idle());
        let uploads = UploadDirectory::new(blobs.clone(), config.upload_idle());
        let purger = tokio::spawn(purge_expired_uploads(uploads.clone(), config.upload_expiry()));
        let registry = Registry::new(state, raft.clone(), blobs, namespaces, uploads, config.manifest_cache_bytes);
        Ok(Node { registry, raft, meta, purger, shutdown_grace: Duration::from_secs(config.shutdown_grace_secs) })
    }

    /// Returns the facade.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then lets in-flight requests finish
    /// (up to the grace period) and stops consensus cleanly.
    pub async fn serve(
        self,
        listener: TcpListener,
        metrics: Option<PrometheusHandle>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let app = crate::http::router(self.registry.clone(), metrics);
        let (stop_tx, mut server_stopped) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let grace = self.shutdown_grace;
        let outcome = tokio::select! {
            outcome = server.into_future() => outcome,
            _ = async {
                let _ = server_stopped.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the grace period");
                Ok(())
            }
        };
        self.close().await;
        outcome.map_err(NodeError::Serve)
    }

    /// Stops consensus and flushes the stores.
    pub async fn close(&self) {
        self.purger.abort();
        self.raft.shutdown().await;
        if let Err(e) = self.meta.state_machine().and_then(|s| s.flush()) {
            warn!(error = %e, "final metadata flush failed");
        }
        info!("node stopped");
    }
}
