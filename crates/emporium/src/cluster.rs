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
use emporium_registry::{Directory, Discovery, Instance, Registration, Registry};
use tokio::net::TcpListener;
use tokio::sync::watch;
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

/// Where this process finds the instances of the groups it calls: the registry in NATS, or
/// the static lists of `cluster.upstreams` alone.
#[derive(Clone)]
pub struct Membership {
    registry: Option<Arc<Registry>>,
    directory: watch::Receiver<Directory>,
}

impl Membership {
    /// The static lists of `cluster.upstreams`, without a registry.
    pub fn fixed(config: &Config) -> Self {
        let directory = config
            .cluster
            .upstreams
            .iter()
            .map(|(group, urls)| {
                let instances = urls
                    .iter()
                    .enumerate()
                    .map(|(n, url)| Instance {
                        group: group.name().to_owned(),
                        id: n.to_string(),
                        url: url.trim_end_matches('/').to_owned(),
                        version: String::new(),
                        weight: 100,
                        zone: String::new(),
                    })
                    .collect();
                (group.name().to_owned(), instances)
            })
            .collect();
        Self {
            registry: None,
            directory: Discovery::Static(directory).watch(),
        }
    }

    /// The registry of the configured NATS, watched; the static lists when there is no NATS.
    pub async fn join(config: &Config) -> anyhow::Result<Self> {
        let Some(url) = &config.cluster.nats_url else {
            return Ok(Self::fixed(config));
        };
        let registry = Registry::connect(
            url,
            &config.cluster.registry_bucket,
            Duration::from_millis(config.cluster.registry_ttl_ms),
        )
        .await
        .with_context(|| format!("cannot open the registry in NATS at {url}"))?;
        let directory = registry.watch();
        Ok(Self {
            registry: Some(Arc::new(registry)),
            directory,
        })
    }

    /// The instances of `group` a client calls: the configured list when there is one, else
    /// those registered, followed as they come and go.
    pub fn upstreams(&self, config: &Config, group: Group) -> Upstreams {
        if config
            .cluster
            .upstreams
            .get(&group)
            .is_some_and(|urls| !urls.is_empty())
        {
            return follow(Self::fixed(config).directory, group);
        }
        follow(self.directory.clone(), group)
    }

    /// Registers this process, once it listens on `local_addr`, under each group it runs.
    pub async fn register(
        &self,
        config: &Config,
        local_addr: SocketAddr,
    ) -> anyhow::Result<Vec<Registration>> {
        let Some(registry) = &self.registry else {
            return Ok(Vec::new());
        };
        let url = config
            .cluster
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let id: String = crate::events::instance_name(config)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut registrations = Vec::new();
        for group in config.groups() {
            let instance = Instance {
                group: group.name().to_owned(),
                id: id.clone(),
                url: url.clone(),
                version: config.cluster.version.clone(),
                weight: config.cluster.weight,
                zone: config.cluster.zone.clone(),
            };
            registrations.push(
                registry
                    .register(instance)
                    .await
                    .context("cannot register in the registry")?,
            );
        }
        Ok(registrations)
    }
}

/// Takes this process out of the registry (before it drains).
pub async fn deregister(registrations: Vec<Registration>) {
    for registration in registrations {
        if let Err(e) = registration.deregister().await {
            tracing::warn!(error = %e, "cannot deregister; the entry expires by itself");
        }
    }
}

/// The base URLs of `group`'s instances in `directory`, kept current.
fn follow(mut directory: watch::Receiver<Directory>, group: Group) -> Upstreams {
    let urls = move |d: &Directory| -> Vec<String> {
        d.get(group.name())
            .map(|instances| instances.iter().map(|i| i.url.clone()).collect())
            .unwrap_or_default()
    };
    let (tx, rx) = watch::channel(urls(&directory.borrow()));
    tokio::spawn(async move {
        while directory.changed().await.is_ok() {
            let now = urls(&directory.borrow_and_update());
            tx.send_if_modified(|known| {
                let changed = *known != now;
                if changed {
                    *known = now;
                }
                changed
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    rx
}

/// A client of `group`'s instances.
fn client(config: &Config, membership: &Membership, group: Group) -> anyhow::Result<ServiceClient> {
    let credentials = credentials(config).context("cluster.service_secret is not set")?;
    Ok(ServiceClient::new(
        group.name(),
        membership.upstreams(config, group),
        credentials,
        ClientOptions {
            timeout: Duration::from_millis(config.cluster.call_timeout_ms),
            retries: config.cluster.call_retries,
            ..ClientOptions::default()
        },
    ))
}

/// A client of the inventory group, when this process does not run it.
pub fn remote_inventory(
    config: &Config,
    membership: &Membership,
) -> anyhow::Result<Option<InventoryClient>> {
    if config.groups().contains(&Group::Inventory) {
        return Ok(None);
    }
    let client = client(config, membership, Group::Inventory)?;
    Ok(Some(InventoryClient::new(client)))
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
    registrations: Vec<Registration>,
    draining: CancellationToken,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    drain: Duration,
}

impl InventoryNode {
    /// Reports not ready, leaves the registry, keeps serving for the drain period, then stops
    /// as a store does.
    pub async fn shutdown(self) {
        self.draining.cancel();
        deregister(self.registrations).await;
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
    let membership = Membership::join(config).await?;
    let identity = IdentityClient::new(client(config, &membership, Group::Identity)?);
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
    let verifier = tokens.clone();
    let identity = Arc::new(identity);
    app::every(&tasks, REVOCATIONS_REFRESH, shutdown.clone(), move || {
        let (identity, verifier, clock) = (identity.clone(), verifier.clone(), clock.clone());
        async move {
            if let Err(e) = identity.refresh_revocations(&verifier, clock.now()).await {
                tracing::warn!(error = %e, "cannot read token revocations from identity; will retry");
            }
        }
    });
    let registrations = membership.register(config, local_addr).await?;
    tracing::info!(%local_addr, backend = ?db.backend(), groups = "inventory", "emporium is ready");
    Ok(InventoryNode {
        local_addr,
        registrations,
        db,
        inventory,
        draining,
        shutdown,
        tasks,
        drain: Duration::from_millis(config.cluster.drain_ms),
    })
}
