//! The scaled-out shape: what a process that runs only some service groups needs to reach the
//! others (clients over the network, with the service credential), to be reached by them
//! (internal routes behind the credential guard), and to run the inventory group on its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware::from_fn_with_state;
use emporium_bus::OutboxRelay;
use emporium_db::Db;
use emporium_http::service::{ClientOptions, ServiceClient, ServiceCredentials, Upstreams};
use emporium_identity::{IdentityClient, Tokens};
use emporium_inventory::{InventoryClient, InventoryService};
use emporium_kernel::Clock;
use emporium_kernel::fault::CrashPoints;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::{self, OpsState, REVOCATIONS_REFRESH};
use crate::config::{Config, Group};

/// The credential this process signs its calls with and checks callers' against; `None` in an
/// all-in-one store without a configured secret (it serves no internal route).
pub fn credentials(config: &Config) -> Option<Arc<ServiceCredentials>> {
    let secret = config.cluster.service_secret.as_ref()?;
    let caller = config
        .groups()
        .iter()
        .map(|g| g.name())
        .collect::<Vec<_>>()
        .join(",");
    Some(Arc::new(ServiceCredentials::new(
        caller,
        secret.expose().as_bytes(),
        config
            .cluster
            .previous_service_secret
            .as_ref()
            .map(|s| s.expose().as_bytes()),
    )))
}

/// The configured instances of `group`, as a client follows them.
fn static_upstreams(config: &Config, group: Group) -> Upstreams {
    let urls = config
        .cluster
        .upstreams
        .get(&group)
        .map(|urls| {
            urls.iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect()
        })
        .unwrap_or_default();
    // The sender is dropped: a static list never changes, and the receiver keeps its value.
    tokio::sync::watch::channel(urls).1
}

/// A client of `group`'s instances.
fn client(config: &Config, group: Group) -> anyhow::Result<ServiceClient> {
    let credentials = credentials(config).context("cluster.service_secret is not set")?;
    Ok(ServiceClient::new(
        group.name(),
        static_upstreams(config, group),
        credentials,
        ClientOptions {
            timeout: Duration::from_millis(config.cluster.call_timeout_ms),
            retries: config.cluster.call_retries,
            ..ClientOptions::default()
        },
    ))
}

/// A client of the inventory group, when this process does not run it.
pub fn remote_inventory(config: &Config) -> anyhow::Result<Option<InventoryClient>> {
    if config.groups().contains(&Group::Inventory) {
        return Ok(None);
    }
    Ok(Some(InventoryClient::new(client(
        config,
        Group::Inventory,
    )?)))
}

/// `routes` behind the service credential guard; nothing when there is no credential.
pub fn internal(config: &Config, routes: Router) -> Router {
    match credentials(config) {
        Some(credentials) => routes.layer(from_fn_with_state(
            credentials,
            emporium_http::service::guard,
        )),
        None => Router::new(),
    }
}

/// A process running only the inventory group.
pub struct InventoryNode {
    pub local_addr: SocketAddr,
    pub db: Db,
    pub inventory: Arc<InventoryService>,
    draining: CancellationToken,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    drain: Duration,
}

impl InventoryNode {
    /// Reports not ready, keeps serving for the drain period, then stops as a store does.
    pub async fn shutdown(self) {
        self.draining.cancel();
        tokio::time::sleep(self.drain).await;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.db.close().await;
    }
}

/// Opens inventory's database and serves inventory's staff and internal routes, relaying its
/// events to NATS and expiring its reservations.
pub async fn start_inventory(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<InventoryNode> {
    emporium_http::metrics::handle();
    let db = app::open_database_with(
        config,
        &[emporium_db::MIGRATIONS, emporium_inventory::MIGRATIONS],
    )
    .await?;
    let inventory = Arc::new(InventoryService::new(db.clone(), clock.clone()));
    // Tokens are verified here as anywhere, with the keyring and identity's revocations.
    let tokens = Arc::new(
        Tokens::open(
            config.signing_keys_file(),
            time::Duration::seconds(
                i64::try_from(config.auth.access_token_ttl_secs).unwrap_or(900),
            ),
            clock.now(),
        )
        .context("cannot open the signing keys")?,
    );
    let identity = IdentityClient::new(client(config, Group::Identity)?);
    if let Err(e) = identity.refresh_revocations(&tokens, clock.now()).await {
        tracing::warn!(error = %e, "cannot read token revocations from identity; will retry");
    }
    let events = crate::events::connect(config).await?;

    let draining = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (api, doc) = OpenApiRouter::with_openapi(app::ApiDoc::openapi())
        .merge(emporium_inventory::router(inventory.clone()))
        .merge(app::ops_router(OpsState {
            db: db.clone(),
            shutting_down: draining.clone(),
            catalog_reads: None,
            search: None,
        }))
        .split_for_parts();
    let internal = internal(
        config,
        emporium_inventory::internal_router(inventory.clone()),
    );
    let router = app::finish_router(api, doc, internal, config, tokens.clone());

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let server_done = app::serve_until(
        &tasks,
        listener,
        router,
        shutdown.clone(),
        Duration::from_millis(config.http.shutdown_grace_ms),
        None,
    );
    let relay = OutboxRelay::new(
        db.clone(),
        Arc::new(events),
        clock.clone(),
        CrashPoints::new(config.crash_points.iter().cloned()),
    );
    tasks.spawn(app::with_retention(relay, config).run(
        Duration::from_millis(config.outbox.poll_interval_ms),
        server_done,
    ));
    tasks.spawn(emporium_inventory::run_expiry(
        inventory.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    app::spawn_keyring_reload(&tasks, tokens.clone(), shutdown.clone());
    let stop = shutdown.clone();
    let verifier = tokens.clone();
    tasks.spawn(async move {
        let mut every = tokio::time::interval(REVOCATIONS_REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = identity.refresh_revocations(&verifier, clock.now()).await {
                        tracing::warn!(error = %e, "cannot read token revocations from identity; will retry");
                    }
                }
                () = stop.cancelled() => break,
            }
        }
    });
    tracing::info!(%local_addr, backend = ?db.backend(), groups = "inventory", "emporium is ready");
    Ok(InventoryNode {
        local_addr,
        db,
        inventory,
        draining,
        shutdown,
        tasks,
        drain: Duration::from_millis(config.cluster.drain_ms),
    })
}
