//! The scaled-out shape: what a process that runs only some service groups needs to reach the
//! others (clients over the network, with the service credential), to be reached by them
//! (internal routes behind the credential guard), and to run the inventory or the catalog
//! group on its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware::from_fn_with_state;
use emporium_bus::OutboxRelay;
use emporium_catalog::CatalogClient;
use emporium_db::Db;
use emporium_http::service::{ClientOptions, ServiceClient, ServiceCredentials, Upstreams};
use emporium_identity::{IdentityClient, IdentityService, Tokens};
use emporium_inventory::{InventoryClient, InventoryService};
use emporium_kernel::Clock;
use emporium_kernel::fault::CrashPoints;
use emporium_pricing::{PricingClient, ShopperPrices};
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

/// A client of the identity group, when this process does not run it.
pub fn remote_identity(
    config: &Config,
    membership: &Membership,
) -> anyhow::Result<Option<IdentityClient>> {
    if config.groups().contains(&Group::Identity) {
        return Ok(None);
    }
    Ok(Some(IdentityClient::new(client(
        config,
        membership,
        Group::Identity,
    )?)))
}

/// A client of the catalog group, when this process does not run it.
pub fn remote_catalog(
    config: &Config,
    membership: &Membership,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<CatalogClient>> {
    if config.groups().contains(&Group::Catalog) {
        return Ok(None);
    }
    let client = client(config, membership, Group::Catalog)?;
    Ok(Some(CatalogClient::new(client, clock)))
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

/// A process running one group alone (inventory or catalog): its routes, its relay to NATS,
/// its consumers, and token verification with the shared keyring and identity's revocations
/// over the network.
pub struct Node {
    pub local_addr: SocketAddr,
    pub db: Db,
    registrations: Vec<Registration>,
    draining: CancellationToken,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    drain: Duration,
}

impl Node {
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

/// What a group running alone needs from its process while it is built.
pub struct NodeContext<'a> {
    pub config: &'a Config,
    pub db: Db,
    /// The keyring this process verifies tokens with.
    pub tokens: Arc<Tokens>,
    pub clock: Arc<dyn Clock>,
    pub membership: Membership,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// What a group running alone serves and consumes.
pub struct NodeParts {
    /// Its documented routes.
    pub api: OpenApiRouter,
    /// Its internal routes (mounted behind the credential guard).
    pub internal: Router,
    /// Its event consumers, fed from NATS.
    pub handlers: Vec<(Arc<dyn emporium_bus::EventHandler>, crate::events::Delivery)>,
    /// The catalog's reads, for `/metrics`.
    pub catalog_reads: Option<Arc<emporium_catalog::CatalogReads>>,
    /// The search index, for `/metrics`.
    pub search: Option<Arc<emporium_search::SearchIndex>>,
    /// Identity, when this group is identity: revocations are then read from its database
    /// rather than asked of identity over the network.
    pub identity: Option<Arc<IdentityService>>,
}

/// Runs `group` alone: opens its database with `migrations`, lets `build` make its parts,
/// and serves them until [`Node::shutdown`].
pub async fn start_alone<'c, F, Fut>(
    config: &'c Config,
    clock: Arc<dyn Clock>,
    group: Group,
    migrations: &[&[emporium_db::Migration]],
    build: F,
) -> anyhow::Result<Node>
where
    F: FnOnce(NodeContext<'c>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<NodeParts>> + 'c,
{
    emporium_http::metrics::handle();
    let db = app::open_database_with(config, migrations).await?;
    // Tokens are verified here as anywhere, with the keyring and identity's revocations.
    let tokens = app::open_tokens(config, clock.as_ref())?;
    let membership = Membership::join(config).await?;
    let events = crate::events::connect(config).await?;

    let draining = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let parts = build(NodeContext {
        config,
        db: db.clone(),
        tokens: tokens.clone(),
        clock: clock.clone(),
        membership: membership.clone(),
        tasks: tasks.clone(),
        shutdown: shutdown.clone(),
    })
    .await?;
    // Tokens ended within the last token lifetime are refused from the first request on.
    let revocations = match parts.identity {
        Some(identity) => Revocations::Local(identity),
        None => Revocations::Remote(
            Arc::new(IdentityClient::new(client(
                config,
                &membership,
                Group::Identity,
            )?)),
            tokens.clone(),
            clock.clone(),
        ),
    };
    revocations.refresh().await;
    let revocations = Arc::new(revocations);
    let (api, doc) = OpenApiRouter::with_openapi(app::ApiDoc::openapi())
        .merge(parts.api)
        .merge(app::ops_router(OpsState {
            db: db.clone(),
            shutting_down: draining.clone(),
            catalog_reads: parts.catalog_reads,
            search: parts.search,
        }))
        .split_for_parts();
    let router = app::finish_router(
        api,
        doc,
        internal(config, parts.internal),
        None,
        config,
        tokens.clone(),
    );

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
    crate::events::consume(
        config,
        &events,
        &parts.handlers,
        &crate::events::instance_name(config),
        &tasks,
        &shutdown,
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
    app::spawn_keyring_reload(&tasks, tokens.clone(), shutdown.clone());
    app::every(&tasks, REVOCATIONS_REFRESH, shutdown.clone(), move || {
        let revocations = revocations.clone();
        async move { revocations.refresh().await }
    });
    let registrations = membership.register(config, local_addr).await?;
    tracing::info!(%local_addr, backend = ?db.backend(), groups = group.name(), "emporium is ready");
    Ok(Node {
        local_addr,
        registrations,
        db,
        draining,
        shutdown,
        tasks,
        drain: Duration::from_millis(config.cluster.drain_ms),
    })
}

/// Where a process reads the token revocations it must honour.
enum Revocations {
    /// Identity's own tables.
    Local(Arc<IdentityService>),
    /// Identity in another process.
    Remote(Arc<IdentityClient>, Arc<Tokens>, Arc<dyn Clock>),
}

impl Revocations {
    /// Brings the keyring's revocations up to date; a failure is logged and the next refresh
    /// reads from the same point.
    async fn refresh(&self) {
        let result = match self {
            Self::Local(identity) => identity
                .refresh_revocations()
                .await
                .map_err(|e| e.to_string()),
            Self::Remote(client, tokens, clock) => client
                .refresh_revocations(tokens, clock.now())
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot read token revocations; will retry");
        }
    }
}

/// The inventory group alone: inventory's staff and internal routes, and the sweeper that
/// expires reservations.
pub async fn start_inventory(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Node> {
    start_alone(
        config,
        clock,
        Group::Inventory,
        &[emporium_db::MIGRATIONS, emporium_inventory::MIGRATIONS],
        |node| async move {
            let inventory = Arc::new(InventoryService::new(node.db.clone(), node.clock.clone()));
            node.tasks.spawn(emporium_inventory::run_expiry(
                inventory.clone(),
                Duration::from_secs(5),
                node.shutdown.clone(),
            ));
            Ok(NodeParts {
                api: emporium_inventory::router(inventory.clone()),
                internal: emporium_inventory::internal_router(inventory),
                handlers: Vec::new(),
                catalog_reads: None,
                search: None,
                identity: None,
            })
        },
    )
    .await
}

/// The catalog group alone: the catalog's staff and storefront routes, media, its internal
/// route, the product cache (with Redis as its second level when configured) and the
/// consumers that keep it current; calculated prices come from the ordering group (pricing)
/// and customer groups from identity, over the network. With `--demo`, the demo catalog is
/// seeded (its stock in the inventory group) before the process serves.
pub async fn start_catalog(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Node> {
    start_alone(
        config,
        clock,
        Group::Catalog,
        &[emporium_db::MIGRATIONS, emporium_catalog::MIGRATIONS],
        |node| async move {
            let prices = remote_prices(config, &node)?;
            let catalog =
                app::CatalogParts::build(config, node.db.clone(), node.clock.clone(), prices)?;
            if config.demo {
                // Stock for the demo products goes to the inventory group.
                let inventory = remote_inventory(config, &node.membership)?
                    .context("the catalog runs alone, so inventory runs elsewhere")?;
                crate::demo::seed_catalog(&crate::import::Target {
                    catalog: catalog.service.clone(),
                    stock: Arc::new(inventory),
                })
                .await
                .context("cannot seed the demo catalog")?;
            }
            let handlers = catalog.handlers(&node.db, &node.clock);
            Ok(NodeParts {
                api: catalog.router(config),
                internal: emporium_catalog::internal_router(catalog.reads.clone()),
                handlers,
                catalog_reads: Some(catalog.reads),
                search: None,
                identity: None,
            })
        },
    )
    .await
}

/// The search group alone: the storefront search routes over an index of this process's own,
/// which follows a journal of the events in the search group's database (its NATS consumer
/// shared by the search instances; each instance's index follows the journal).
pub async fn start_search(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Node> {
    start_alone(
        config,
        clock,
        Group::Search,
        &[emporium_db::MIGRATIONS, crate::journal::MIGRATIONS],
        |node| async move {
            let prices = remote_prices(config, &node)?;
            let index = app::open_search(config)?;
            let journal = crate::journal::JournalConsumer::new(node.db.clone(), node.clock.clone())
                .named(SEARCH_JOURNAL);
            let feed = Arc::new(journal.feed());
            node.tasks.spawn(
                emporium_search::SearchProjector::new(index.clone())
                    .run(feed, node.shutdown.clone()),
            );
            Ok(NodeParts {
                api: emporium_search::router(index.clone(), Some(prices)),
                internal: Router::new(),
                handlers: vec![(Arc::new(journal), crate::events::Delivery::Shared)],
                catalog_reads: None,
                search: Some(index),
                identity: None,
            })
        },
    )
    .await
}

/// The consumer name of a search process's journal; never change it.
const SEARCH_JOURNAL: &str = "search_journal";

/// Calculated prices for a process without pricing: the calculator of the ordering group and
/// the customer groups of identity, over the network.
fn remote_prices(config: &Config, node: &NodeContext<'_>) -> anyhow::Result<Arc<ShopperPrices>> {
    let pricing = PricingClient::new(client(config, &node.membership, Group::Ordering)?);
    let identity = IdentityClient::new(client(config, &node.membership, Group::Identity)?);
    Ok(Arc::new(
        ShopperPrices::new(Arc::new(pricing), node.clock.clone())
            .with_customer_groups(Arc::new(app::IdentityGroups::Remote(Arc::new(identity)))),
    ))
}

/// The identity group alone: registration, tokens, customers, staff users and API clients,
/// and the internal routes others read revocations and customer groups from. With `--demo`
/// the demo accounts are created before the process serves.
pub async fn start_identity(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Node> {
    start_alone(
        config,
        clock,
        Group::Identity,
        &[emporium_db::MIGRATIONS, emporium_identity::MIGRATIONS],
        |node| async move {
            let identity =
                app::identity_service(config, node.db.clone(), node.clock.clone(), node.tokens);
            if config.demo {
                crate::demo::seed_accounts(&identity).await?;
            }
            Ok(NodeParts {
                api: emporium_identity::router(identity.clone()),
                internal: emporium_identity::internal_router(identity.clone()),
                handlers: Vec::new(),
                catalog_reads: None,
                search: None,
                identity: Some(identity),
            })
        },
    )
    .await
}
