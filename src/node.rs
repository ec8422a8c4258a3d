//! Wiring of one node: opens the stores, starts the node-to-node gRPC server and consensus, the
//! actor directories, builds the facade and serves HTTP until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gati_blob::{BlobError, BlobStore, FsBlobStore};
use gati_core::NodeId;
use gati_meta::{MetaError, MetaStore};
use metrics_exporter_prometheus::PrometheusHandle;
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::actors::{NamespaceDirectory, UploadDirectory};
use crate::cluster::admin::AdminService;
use crate::cluster::forward::ForwardingService;
use crate::cluster::{Cluster, ClusterError, Membership};
use crate::config::{BlobBackend, Config, ConfigError};
use crate::http::limits::RequestLimits;
use crate::identity::Identity;
use crate::raft::{RaftShared, RaftTuning};
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
    Cluster(#[from] ClusterError),
    /// The configuration does not fit the stored data.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener failed.
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
    /// A part of the node could not start.
    #[error("{0}")]
    Start(String),
}

/// A started node: stores open, consensus running, facade ready.
pub struct Node {
    registry: Registry,
    identity: Identity,
    /// Request budgets, when enforced.
    request_limits: Option<Arc<RequestLimits>>,
    cluster: Cluster,
    meta: MetaStore,
    rpc: Option<RpcServer>,
    /// The S3 store, when blobs live there: its upload-session claims are released at shutdown.
    s3: Option<Arc<gati_blob_s3::S3BlobStore>>,
    purger: tokio::task::JoinHandle<()>,
    /// Tasks that run for the node's lifetime (gauges, shard reconciler, joining).
    background: Vec<tokio::task::JoinHandle<()>>,
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

/// The node-to-node gRPC server, running in its own task.
struct RpcServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RpcServer {
    /// Serves the Raft transport and forwarding on `listener`. Started before consensus, so that
    /// founding members can reach each other while their groups bootstrap.
    fn start(
        listener: TcpListener,
        transport: &RaftShared,
        forwarding: &ForwardingService,
        admin: &AdminService,
        require: crate::raft::RequireSecret,
    ) -> RpcServer {
        use tonic::service::interceptor::InterceptedService;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(InterceptedService::new(transport.table.service(), require.clone()))
            .add_service(InterceptedService::new(forwarding.server(), require.clone()))
            .add_service(InterceptedService::new(admin.server(), require));
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        RpcServer { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "node-to-node rpc server failed"),
            Err(e) => warn!(error = %e, "node-to-node rpc server task failed"),
        }
    }
}

/// Asks the configured members to add this node, until the cluster agrees or refuses.
async fn join_cluster(cluster: Cluster, settings: crate::config::ClusterConfig, node_id: NodeId) {
    let seeds: Vec<String> = settings.members.iter().map(|m| m.rpc.clone()).collect();
    let rpc = settings.advertised_rpc();
    loop {
        match crate::cluster::admin::join(
            &cluster.transport().peers,
            &seeds,
            node_id,
            &rpc,
            cluster.shard_count().get(),
        )
        .await
        {
            Ok(()) => {
                info!(node_id = node_id.0, "joined the cluster");
                return;
            }
            Err(crate::cluster::admin::AdminError::Refused(why)) => {
                tracing::error!(%why, "the cluster refused this node; it will not serve");
                return;
            }
            Err(e) => warn!(error = %e, "joining the cluster failed; retrying"),
        }
    }
}

impl Node {
    /// Opens the node's stores under `config.data_dir`, starts the node-to-node server (in a
    /// cluster) and consensus.
    pub async fn start(config: &Config) -> Result<Node, NodeError> {
        let meta = MetaStore::open(&config.data_dir.join("meta"))?;
        let wanted = config.shard_count()?;
        let stored = meta.pin_shard_count(wanted.get())?;
        if stored != wanted.get() {
            return Err(ConfigError::Invalid(format!(
                "this data directory was created with {stored} shards, the configuration asks for {wanted}; \
                 the shard count cannot change"
            ))
            .into());
        }
        let (blobs, s3): (Arc<dyn BlobStore>, _) = match (&config.blobs.backend, &config.blobs.s3) {
            (BlobBackend::S3, Some(settings)) => {
                info!(endpoint = %settings.endpoint, bucket = %settings.bucket, "blobs in S3");
                let store = Arc::new(gati_blob_s3::S3BlobStore::connect(settings).await?);
                (store.clone(), Some(store))
            }
            _ => (Arc::new(FsBlobStore::open(config.blob_dir()).await?), None),
        };
        let secret = config.cluster.as_ref().and_then(|c| c.secret.as_deref());
        if config.cluster.is_some() && secret.is_none() {
            warn!("cluster.secret is not set: node-to-node calls are not authenticated");
        }
        let peers = crate::raft::Peers::with_secret(secret).map_err(|e| NodeError::Config(ConfigError::Invalid(e)))?;
        let transport = RaftShared {
            peers,
            tuning: RaftTuning {
                snapshot_entries: config.snapshot_entries,
                proposal_pipeline: config.proposal_pipeline,
            },
            ..RaftShared::default()
        };
        let forwarding = ForwardingService::default();
        let admin = AdminService::default();
        let node_id = NodeId(config.node_id);
        // A node missing from the configured member list joins the cluster those members form.
        let joining = config.cluster.as_ref().is_some_and(|c| !c.members.iter().any(|m| m.id == node_id.0));
        let (membership, rpc) = match &config.cluster {
            None => (Membership::Solo, None),
            Some(cluster) => {
                let listener = TcpListener::bind(cluster.rpc_listen).await?;
                info!(rpc = %cluster.rpc_listen, "node-to-node rpc listening");
                let require = crate::raft::RequireSecret::new(cluster.secret.as_deref());
                let rpc = RpcServer::start(listener, &transport, &forwarding, &admin, require);
                let membership = if !joining {
                    let members = cluster.members.iter().map(|m| (NodeId(m.id), m.rpc.clone())).collect();
                    Membership::Founder { members, replicas: cluster.replicas }
                } else {
                    Membership::Joiner
                };
                (membership, Some(rpc))
            }
        };
        let cluster = match Cluster::start(node_id, wanted, &meta, transport, membership).await {
            Ok(cluster) => cluster,
            Err(e) => {
                if let Some(rpc) = rpc {
                    rpc.stop().await;
                }
                return Err(e.into());
            }
        };
        if let Some(crate::config::PlantedBug::StaleTagReads) = config.debug.planted_bug {
            tracing::warn!("PLANTED BUG: linearizable tag reads are served without a read index");
            cluster.plant_stale_tag_reads();
        }
        let namespaces = NamespaceDirectory::new(cluster.clone(), config.namespace_idle());
        forwarding.attach(cluster.clone(), namespaces.clone());
        admin.attach(cluster.clone());
        let mut background = Vec::new();
        if let Some(settings) = &config.cluster {
            background.push(tokio::spawn(crate::cluster::reconcile::run(cluster.clone(), settings.replicas)));
            if joining {
                background.push(tokio::spawn(join_cluster(cluster.clone(), settings.clone(), node_id)));
            }
        }
        let uploads = UploadDirectory::new(blobs.clone(), config.upload_idle(), config.cluster.is_some());
        let purger = tokio::spawn(purge_expired_uploads(uploads.clone(), config.upload_expiry()));
        let registry = Registry::new(cluster.clone(), blobs, namespaces, uploads, config.manifest_cache_bytes);
        let epoch = crate::workers::downloads::next_epoch(&config.data_dir.join("downloads.epoch"))?;
        registry.start_workers(epoch).await.map_err(|e| NodeError::Start(format!("starting worker actors: {e}")))?;
        let limits = &config.limits;
        let login_guard = config.limits_enabled().then(|| {
            crate::limits::LoginGuard::new(
                limits.failed_logins_before_lockout,
                Duration::from_secs(limits.failure_window_secs),
                Duration::from_secs(limits.lockout_secs),
                Duration::from_secs(limits.max_lockout_secs),
            )
        });
        let request_limits = config.limits_enabled().then(|| Arc::new(RequestLimits::new(limits)));
        let mailer = crate::identity::Mailer {
            outbox: config.auth.mail_outbox.clone().unwrap_or_else(|| config.data_dir.join("outbox")),
            from: config.auth.mail_from.clone(),
            public_url: config.auth.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen)),
        };
        let identity = Identity::new(cluster.clone(), config.auth.clone(), login_guard, Some(mailer))
            .map_err(|why| NodeError::Config(ConfigError::Invalid(format!("auth.oidc: {why}"))))?;
        if identity.enabled() {
            background.push(tokio::spawn(identity.clone().run_key_maintenance()));
            background.push(tokio::spawn(identity.clone().run_key_use_writer()));
        } else {
            warn!("authentication is disabled: anyone who can reach this registry may push, pull and delete");
        }
        background.push(tokio::spawn(crate::cluster::status::publish_gauges(cluster.clone())));
        Ok(Node {
            background,
            registry,
            identity,
            request_limits,
            cluster,
            meta,
            rpc,
            s3,
            purger,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    /// Returns this node's consensus groups.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Returns the facade.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns the identity facade.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then lets in-flight requests finish
    /// (up to the grace period) and stops consensus cleanly.
    pub async fn serve(
        self,
        listener: TcpListener,
        metrics: Option<PrometheusHandle>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let app =
            crate::http::router(self.registry.clone(), self.identity.clone(), self.request_limits.clone(), metrics)
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
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

    /// Stops consensus and the node-to-node server, and flushes the stores.
    pub async fn close(mut self) {
        self.purger.abort();
        self.registry.stop_workers();
        for task in &self.background {
            task.abort();
        }
        self.cluster.shutdown().await;
        if let Some(s3) = &self.s3 {
            // Hands parked upload sessions back at once, so other nodes need not wait out a lease.
            s3.settle_lease_releases().await;
        }
        if let Some(rpc) = self.rpc.take() {
            rpc.stop().await;
        }
        if let Err(e) = self.meta.flush() {
            warn!(error = %e, "final metadata flush failed");
        }
        info!("node stopped");
    }
}
