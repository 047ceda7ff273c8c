//! Wiring: opens the database, builds every context, assembles the HTTP router with its shared
//! middleware, and runs the server, the outbox relay and the housekeeping tasks until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use emporium_bus::{EventHandler, InProcessBus, OutboxRelay};
use emporium_cache::{RedisLevel, RedisOptions, SecondLevel};
use emporium_cart::CartService;
use emporium_catalog::ReadCacheConfig;
use emporium_catalog::{CacheInvalidator, StockProjection};
use emporium_catalog::{
    CatalogApi, CatalogReads, CatalogService, CatalogState, MediaS3Config, MediaStore,
};
use emporium_db::{Db, DbOptions};
use emporium_http::admin::AdminPolicy;
use emporium_http::middleware::Limits;
use emporium_http::{ApiError, TokenVerifier};
use emporium_identity::{
    Hasher, IdentityClient, IdentityService, LoginThrottle, ThrottleLimits, TokenLifetimes, Tokens,
};
use emporium_inventory::{InventoryApi, InventoryService, StockImport};
use emporium_kernel::fault::CrashPoints;
use emporium_kernel::{Clock, ErrorKind};
use emporium_notify::{
    Deliverer, Handoff, MailComposer, Mailer, WebhookFanout, WebhookService, WebhookState,
};
use emporium_ordering::{CheckoutService, OrderService, OrderingState};
use emporium_payments::PaymentService;
use emporium_pricing::{PricingError, PricingService, RulesCalculator, ShopperPrices};
use emporium_registry::Registration;
use emporium_search::{SearchIndex, SearchProjector};

use crate::cluster::Membership;
use crate::events::Delivery;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{Config, SqliteSync};
use crate::journal;

/// Every context's migrations, in the order they were introduced.
pub const MIGRATIONS: &[&[emporium_db::Migration]] = &[
    emporium_db::MIGRATIONS,
    emporium_identity::MIGRATIONS,
    journal::MIGRATIONS,
    emporium_catalog::MIGRATIONS,
    emporium_inventory::MIGRATIONS,
    emporium_pricing::MIGRATIONS,
    emporium_cart::MIGRATIONS,
    emporium_payments::MIGRATIONS,
    emporium_ordering::MIGRATIONS,
    emporium_notify::MIGRATIONS,
];

/// How often each process re-reads the token revocations that other processes wrote.
pub const REVOCATIONS_REFRESH: Duration = Duration::from_secs(2);

/// Every context's admin access rules: the one table the admin guard consults.
pub const ADMIN_RULES: &[&[emporium_http::admin::AdminRule]] = &[
    emporium_identity::ADMIN_RULES,
    journal::ADMIN_RULES,
    emporium_catalog::ADMIN_RULES,
    emporium_inventory::ADMIN_RULES,
    emporium_pricing::ADMIN_RULES,
    emporium_ordering::ADMIN_RULES,
    emporium_notify::ADMIN_RULES,
];

/// The documented paths whose handlers never touch the database (the search index has its own
/// files): they answer no `database_unavailable`. A search with a `currency` reads pricing's
/// rules and the customer's groups, so it is not one of them.
const WITHOUT_DATABASE: &[&str] = &[
    "/healthz",
    "/metrics",
    "/.well-known/jwks.json",
    "/v1/store/search/suggest",
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Emporium",
        description = "Headless commerce backend. Storefront routes under `/v1/store`, staff routes under \
            `/v1/admin` (staff or API-client tokens), tokens under `/v1/auth`. Errors are RFC 9457 \
            `application/problem+json` with a stable `code`."
    ),
    tags(
        (name = "auth", description = "Registration and OAuth2 tokens"),
        (name = "store", description = "Storefront"),
        (name = "admin", description = "Back office (staff and API clients)"),
        (name = "ops", description = "Health, readiness and metrics"),
    ),
    components(schemas(emporium_http::Problem))
)]
pub(crate) struct ApiDoc;

/// The `(method, route template)` pairs the router serves, read off the OpenAPI document (every
/// `/v1` route is declared through `routes!`, so it is there with its template).
fn served_operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ];
        for (method, operation) in operations {
            if operation.is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// Creates a folder (and any missing parent) readable by its owner only (0700); an existing
/// folder keeps its mode.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens the configured database and applies the pending migrations of the groups this
/// process runs.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let migrations = migrations_of(&config.groups());
    open_database_with(config, &migrations).await
}

/// The migrations of the tables `groups` own: the outbox and inbox always, the journal where
/// ordering or search runs, each context's where its group runs.
pub fn migrations_of(groups: &[crate::config::Group]) -> Vec<&'static [emporium_db::Migration]> {
    use crate::config::Group;
    let owner = |m: &[emporium_db::Migration]| -> Option<&[Group]> {
        let by_group: [(&[emporium_db::Migration], &[Group]); 9] = [
            (emporium_identity::MIGRATIONS, &[Group::Identity]),
            (journal::MIGRATIONS, &[Group::Ordering, Group::Search]),
            (emporium_catalog::MIGRATIONS, &[Group::Catalog]),
            (emporium_inventory::MIGRATIONS, &[Group::Inventory]),
            (emporium_pricing::MIGRATIONS, &[Group::Ordering]),
            (emporium_cart::MIGRATIONS, &[Group::Ordering]),
            (emporium_payments::MIGRATIONS, &[Group::Ordering]),
            (emporium_ordering::MIGRATIONS, &[Group::Ordering]),
            (emporium_notify::MIGRATIONS, &[Group::Ordering]),
        ];
        by_group
            .into_iter()
            .find(|(list, _)| std::ptr::eq(*list, m))
            .map(|(_, owners)| owners)
    };
    MIGRATIONS
        .iter()
        .copied()
        .filter(|m| owner(m).is_none_or(|owners| owners.iter().any(|g| groups.contains(g))))
        .collect()
}

/// Opens the configured database and applies the pending ones of `migrations`.
pub async fn open_database_with(
    config: &Config,
    migrations: &[&[emporium_db::Migration]],
) -> anyhow::Result<Db> {
    let url = config.effective_database_url();
    if url.starts_with("sqlite:") {
        create_private_dir(&config.data_dir)
            .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    }
    let db = Db::connect(&DbOptions {
        url,
        max_connections: config.database.max_connections,
        sqlite_synchronous_full: config.database.sqlite_synchronous == SqliteSync::Full,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
        sqlite_writer_cache_mib: config.database.sqlite_writer_cache_mib,
        sqlite_checkpoint_mib: config.database.sqlite_checkpoint_mib,
    })
    .await
    .context("cannot open the database")?;
    db.migrate(migrations)
        .await
        .context("cannot migrate the database")?;
    Ok(db)
}

/// Opens the search index in `<data_dir>/search`.
pub(crate) fn open_search(config: &Config) -> anyhow::Result<Arc<SearchIndex>> {
    Ok(Arc::new(
        SearchIndex::open(config.search_dir()).with_context(|| {
            format!(
                "cannot open the search index in {}",
                config.search_dir().display()
            )
        })?,
    ))
}

/// The product cache's shared second level: Redis when `cache.redis_url` is set. Connects on
/// first use, so a Redis that is down at start only means misses.
fn product_second_level(config: &Config) -> anyhow::Result<Option<Arc<dyn SecondLevel>>> {
    let Some(url) = &config.cache.redis_url else {
        return Ok(None);
    };
    let level = RedisLevel::open(url.expose(), "product", RedisOptions::default())
        .context("cache.redis_url")?;
    Ok(Some(Arc::new(level)))
}

/// Opens the configured media storage: the S3-compatible bucket, or `<data_dir>/media`.
fn open_media(config: &Config) -> anyhow::Result<MediaStore> {
    match &config.media.s3 {
        Some(s3) => MediaStore::s3(&MediaS3Config {
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.as_ref().map(|s| s.expose().to_owned()),
            allow_http: s3.allow_http,
        })
        .context("cannot open the media bucket"),
        None => MediaStore::local(&config.media_dir()).with_context(|| {
            format!(
                "cannot open the media folder {}",
                config.media_dir().display()
            )
        }),
    }
}

/// The catalog context of a process that runs it: the service, its cached reads and media.
#[derive(Clone)]
pub struct CatalogParts {
    pub service: Arc<CatalogService>,
    pub reads: Arc<CatalogReads>,
    pub media: MediaStore,
}

impl CatalogParts {
    /// Builds the catalog over `db`, its storefront reads priced by `prices`.
    pub fn build(
        config: &Config,
        db: Db,
        clock: Arc<dyn Clock>,
        prices: Arc<ShopperPrices>,
    ) -> anyhow::Result<Self> {
        let service = Arc::new(CatalogService::new(db.clone(), clock));
        let media = open_media(config)?;
        let reads = Arc::new(
            CatalogReads::new(
                db,
                &ReadCacheConfig {
                    product_bytes: config.cache.product_mib << 20,
                    second_level: product_second_level(config)?,
                    ..ReadCacheConfig::default()
                },
            )
            .with_prices(prices),
        );
        Ok(Self {
            service,
            reads,
            media,
        })
    }

    /// The consumers that keep the catalog's reads current: the cache invalidator (in every
    /// instance) and the stock projection (in one).
    pub fn handlers(
        &self,
        db: &Db,
        clock: &Arc<dyn Clock>,
    ) -> Vec<(Arc<dyn EventHandler>, Delivery)> {
        vec![
            (
                Arc::new(CacheInvalidator::new(self.reads.clone())),
                Delivery::EachInstance,
            ),
            (
                Arc::new(StockProjection::new(
                    db.clone(),
                    self.reads.clone(),
                    clock.clone(),
                )),
                Delivery::Shared,
            ),
        ]
    }

    /// The catalog's staff and storefront routes.
    pub fn router(&self, config: &Config) -> OpenApiRouter {
        emporium_catalog::router(CatalogState {
            service: self.service.clone(),
            reads: self.reads.clone(),
            media: self.media.clone(),
            media_max_bytes: config.media.max_bytes,
        })
    }
}

/// New webhook deliveries a process keeps in memory for its own deliverer; more wait in the
/// table.
const HANDOFF_CAPACITY: usize = 4096;

/// Webhooks and e-mail: the service staff call, the consumers that turn events into
/// deliveries and messages, and the workers that send them (started by `start`).
#[derive(Clone)]
pub struct NotifyParts {
    pub webhooks: Arc<WebhookService>,
    /// Sends due webhook deliveries.
    pub deliverer: Arc<Deliverer>,
    /// Wakes the deliverer when deliveries were made or replayed in this process.
    pub deliveries: Arc<tokio::sync::Notify>,
    /// Sends composed e-mails, when `notify.email.smtp_url` is set.
    pub mailer: Option<Arc<Mailer>>,
}

impl NotifyParts {
    /// Builds notify over the store's database and adds its consumers to `handlers`.
    fn build(
        config: &Config,
        db: &Db,
        clock: &Arc<dyn Clock>,
        handlers: &mut Vec<(Arc<dyn EventHandler>, Delivery)>,
    ) -> anyhow::Result<Self> {
        let settings = config.webhook_settings();
        let deliveries = Arc::new(tokio::sync::Notify::new());
        let handoff = Arc::new(Handoff::new(HANDOFF_CAPACITY, deliveries.clone()));
        let webhooks = Arc::new(WebhookService::new(
            db.clone(),
            clock.clone(),
            settings.clone(),
        ));
        let deliverer = Arc::new(
            Deliverer::new(db.clone(), clock.clone(), settings, handoff.clone())
                .context("cannot build the webhook client")?,
        );
        handlers.push((
            Arc::new(WebhookFanout::new(db.clone(), clock.clone(), handoff)),
            Delivery::Shared,
        ));
        let mailer = match &config.notify.email.smtp_url {
            Some(url) => {
                let composed = Arc::new(tokio::sync::Notify::new());
                let mail = config.mail_settings();
                let mailer = Mailer::new(
                    db.clone(),
                    clock.clone(),
                    url.expose(),
                    &mail,
                    composed.clone(),
                )
                .context("notify.email")?;
                handlers.push((
                    Arc::new(MailComposer::new(db.clone(), clock.clone(), mail, composed)),
                    Delivery::Shared,
                ));
                Some(Arc::new(mailer))
            }
            None => None,
        };
        Ok(Self {
            webhooks,
            deliverer,
            deliveries,
            mailer,
        })
    }
}

/// The parts of a running store that tests and the CLI reach into.
#[derive(Clone)]
pub struct Store {
    pub db: Db,
    /// Identity, when this process runs it.
    pub identity: Option<Arc<IdentityService>>,
    /// Identity over the network, when it runs elsewhere.
    pub identity_client: Option<Arc<IdentityClient>>,
    /// The keyring every token is verified with (and, where identity runs, signed with).
    pub tokens: Arc<Tokens>,
    /// The catalog, when this process runs it.
    pub catalog: Option<CatalogParts>,
    /// The catalog as carts reach it: the local reads, or a client of the catalog group's
    /// processes.
    pub catalog_api: Arc<dyn CatalogApi>,
    /// Inventory, when this process runs it.
    pub inventory: Option<Arc<InventoryService>>,
    /// Inventory as the other contexts reach it: the local service, or a client of the
    /// inventory group's processes.
    pub inventory_api: Arc<dyn InventoryApi>,
    /// What an import asks of inventory, wherever it runs.
    pub stock_import: Arc<dyn StockImport>,
    pub pricing: Arc<PricingService>,
    pub cart: Arc<CartService>,
    pub payments: Arc<PaymentService>,
    pub checkout: Arc<CheckoutService>,
    pub orders: Arc<OrderService>,
    /// The search index, when this process runs search.
    pub search: Option<Arc<SearchIndex>>,
    /// Calculated prices for storefront reads (catalog and search), from pricing.
    pub shopper_prices: Arc<ShopperPrices>,
    /// The journal in position order, which the search index follows.
    pub journal: Arc<journal::JournalFeed>,
    pub bus: Arc<InProcessBus>,
    /// Every event consumer of this process, each subscribed to `bus`; in the scaled-out
    /// shape they consume from NATS instead.
    pub handlers: Vec<(Arc<dyn EventHandler>, Delivery)>,
    /// Webhooks and e-mail, which run with ordering.
    pub notify: NotifyParts,
    pub clock: Arc<dyn Clock>,
    pub crash_points: CrashPoints,
}

impl Store {
    /// Builds every context over an open database; other groups, if any, are found at the
    /// configured `cluster.upstreams`.
    pub fn build(config: &Config, db: Db, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_in(config, db, clock, &Membership::fixed(config))
    }

    /// Builds the contexts of this process's groups over an open database, reaching the other
    /// groups through `membership`.
    pub fn build_in(
        config: &Config,
        db: Db,
        clock: Arc<dyn Clock>,
        membership: &Membership,
    ) -> anyhow::Result<Self> {
        let tokens = open_tokens(config, clock.as_ref())?;
        let (identity, identity_client, groups) =
            match crate::cluster::remote_identity(config, membership)? {
                Some(client) => {
                    let client = Arc::new(client);
                    (None, Some(client.clone()), IdentityGroups::Remote(client))
                }
                None => {
                    let local = identity_service(config, db.clone(), clock.clone(), tokens.clone());
                    (Some(local.clone()), None, IdentityGroups::Local(local))
                }
            };
        let groups = Arc::new(groups);
        let bus = Arc::new(InProcessBus::new());
        let journal_consumer = journal::JournalConsumer::new(db.clone(), clock.clone());
        let journal = Arc::new(journal_consumer.feed());
        let mut handlers: Vec<(Arc<dyn EventHandler>, Delivery)> = Vec::new();
        handlers.push((Arc::new(journal_consumer), Delivery::Shared));
        let search = if config.groups().contains(&crate::config::Group::Search) {
            Some(open_search(config)?)
        } else {
            None
        };
        let pricing = Arc::new(PricingService::new(db.clone(), clock.clone()));
        // Storefront reads ask pricing through its calculator trait, with identity's groups.
        let shopper_prices = Arc::new(
            ShopperPrices::new(
                Arc::new(RulesCalculator::new(pricing.clone())),
                clock.clone(),
            )
            .with_customer_groups(groups.clone()),
        );
        let (catalog, catalog_api): (_, Arc<dyn CatalogApi>) =
            match crate::cluster::remote_catalog(config, membership, clock.clone())? {
                Some(client) => (None, Arc::new(client)),
                None => {
                    let local = CatalogParts::build(
                        config,
                        db.clone(),
                        clock.clone(),
                        shopper_prices.clone(),
                    )?;
                    handlers.extend(local.handlers(&db, &clock));
                    let reads = local.reads.clone();
                    (Some(local), reads)
                }
            };
        let (inventory, inventory_api, stock_import): (
            _,
            Arc<dyn InventoryApi>,
            Arc<dyn StockImport>,
        ) = match crate::cluster::remote_inventory(config, membership)? {
            Some(client) => {
                let client = Arc::new(client);
                (None, client.clone(), client)
            }
            None => {
                let local = Arc::new(InventoryService::new(db.clone(), clock.clone()));
                (Some(local.clone()), local.clone(), local)
            }
        };
        let payments = Arc::new(
            PaymentService::new(db.clone(), clock.clone())
                .with_breakers(
                    config.payments.breaker_failures,
                    Duration::from_millis(config.payments.breaker_open_ms),
                )
                .with_enabled(&config.payment_providers())
                .context("payments.providers")?,
        );
        let cart = Arc::new(
            CartService::new(
                db.clone(),
                clock.clone(),
                catalog_api.clone(),
                inventory_api.clone(),
                pricing.clone(),
            )
            .with_customer_groups(groups),
        );
        let crash_points = CrashPoints::new(config.crash_points.iter().cloned());
        let checkout = Arc::new(
            CheckoutService::new(
                db.clone(),
                clock.clone(),
                cart.clone(),
                inventory_api.clone(),
                pricing.clone(),
                payments.clone(),
                crash_points.clone(),
            )
            .with_abandoned_after(Duration::from_millis(config.recovery.idle_after_ms))
            .with_catalog_stale_limit(Duration::from_millis(config.cluster.catalog_stale_limit_ms)),
        );
        // A cancelled order's stock goes back on hand.
        handlers.push((
            Arc::new(emporium_ordering::Restocker::new(
                db.clone(),
                checkout.clone(),
                inventory_api.clone(),
            )),
            Delivery::Shared,
        ));
        let notify = NotifyParts::build(config, &db, &clock, &mut handlers)?;
        for (handler, _) in &handlers {
            bus.subscribe(handler.clone());
        }
        let orders = Arc::new(OrderService::new(
            db.clone(),
            clock.clone(),
            payments.clone(),
            crash_points.clone(),
        ));
        Ok(Self {
            db,
            identity,
            identity_client,
            tokens,
            catalog,
            catalog_api,
            inventory,
            inventory_api,
            stock_import,
            pricing,
            cart,
            payments,
            checkout,
            orders,
            search,
            shopper_prices,
            journal,
            bus,
            handlers,
            notify,
            clock,
            crash_points,
        })
    }

    /// A relay from this store's outbox to its bus.
    pub fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            self.db.clone(),
            self.bus.clone(),
            self.clock.clone(),
            self.crash_points.clone(),
        )
    }

    /// The whole HTTP application, serving its OpenAPI document at `/openapi.json`.
    /// `admin`, when given, is the staff web UI, served under the same outer layers.
    pub fn router(
        &self,
        config: &Config,
        shutting_down: CancellationToken,
        admin: Option<Router>,
    ) -> Router {
        let (api, doc) = self.api(config, shutting_down);
        let mut internal = Router::new();
        if let Some(inventory) = &self.inventory {
            internal = internal.merge(emporium_inventory::internal_router(inventory.clone()));
        }
        if let Some(catalog) = &self.catalog {
            internal = internal.merge(emporium_catalog::internal_router(catalog.reads.clone()));
        }
        if let Some(identity) = &self.identity {
            internal = internal.merge(emporium_identity::internal_router(identity.clone()));
        }
        internal = internal.merge(emporium_pricing::internal_router(Arc::new(
            RulesCalculator::new(self.pricing.clone()),
        )));
        let internal = crate::cluster::internal(config, internal);
        finish_router(api, doc, internal, admin, config, self.tokens.clone())
    }

    /// The OpenAPI document of the HTTP API, as `/openapi.json` serves it.
    pub fn openapi(&self, config: &Config) -> utoipa::openapi::OpenApi {
        self.api(config, CancellationToken::new()).1
    }

    /// Every documented route and the OpenAPI document they make.
    fn api(
        &self,
        config: &Config,
        shutting_down: CancellationToken,
    ) -> (Router, utoipa::openapi::OpenApi) {
        let ops = ops_router(OpsState {
            db: self.db.clone(),
            shutting_down,
            catalog_reads: self.catalog.as_ref().map(|c| c.reads.clone()),
            search: self.search.clone(),
        });
        let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(journal::router(self.db.clone()))
            .merge(emporium_pricing::router(self.pricing.clone()))
            .merge(emporium_cart::router(self.cart.clone()))
            .merge(emporium_notify::router(WebhookState {
                service: self.notify.webhooks.clone(),
                wake: self.notify.deliveries.clone(),
            }))
            .merge(emporium_ordering::router(OrderingState {
                checkout: self.checkout.clone(),
                orders: self.orders.clone(),
            }))
            .merge(ops);
        // Identity's, the catalog's, search's and inventory's routes are served where they run.
        let api = match &self.identity {
            Some(identity) => api.merge(emporium_identity::router(identity.clone())),
            None => api,
        };
        let api = match &self.search {
            Some(search) => api.merge(emporium_search::router(
                search.clone(),
                Some(self.shopper_prices.clone()),
            )),
            None => api,
        };
        let api = match &self.catalog {
            Some(catalog) => api.merge(catalog.router(config)),
            None => api,
        };
        let api = match &self.inventory {
            Some(inventory) => api.merge(emporium_inventory::router(inventory.clone())),
            None => api,
        };
        let (api, mut doc) = api.split_for_parts();
        emporium_http::openapi::add_shared_errors(&mut doc, WITHOUT_DATABASE);
        (api, doc)
    }
}

/// The documented routes (`api`, with their OpenAPI `doc`) and the internal ones, under the
/// middleware every route shares: security headers, request context, panic catching,
/// compression, body limit, bearer authentication (`verifier`), the admin guard. `admin` is the
/// staff web UI (`/admin`), when this process serves it.
pub(crate) fn finish_router(
    api: Router,
    doc: utoipa::openapi::OpenApi,
    internal: Router,
    admin: Option<Router>,
    config: &Config,
    verifier: Arc<dyn TokenVerifier>,
) -> Router {
    let policy =
        Arc::new(AdminPolicy::new(ADMIN_RULES.iter().copied()).serving(served_operations(&doc)));
    let limits = Limits {
        request_timeout: Duration::from_millis(config.http.request_timeout_ms),
        trusted_proxies: config.http.trusted_proxies.clone().into(),
    };
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .merge(internal)
        .merge(admin.unwrap_or_default())
        .fallback(emporium_http::middleware::not_found)
        .method_not_allowed_fallback(emporium_http::middleware::method_not_allowed)
        .route_layer(from_fn_with_state(policy, emporium_http::admin::guard))
        .route_layer(from_fn(emporium_http::middleware::mark_route))
        .layer(from_fn_with_state(
            verifier,
            emporium_http::auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes))
        .layer(CompressionLayer::new())
        .layer(CatchPanicLayer::custom(
            emporium_http::middleware::panic_response,
        ))
        .layer(from_fn_with_state(
            limits,
            emporium_http::middleware::request_context,
        ))
        .layer(from_fn(emporium_http::headers::security_headers))
}

/// What the health, readiness and metrics routes look at.
#[derive(Clone)]
pub(crate) struct OpsState {
    pub(crate) db: Db,
    /// Cancelled once the process drains: readiness then fails.
    pub(crate) shutting_down: CancellationToken,
    pub(crate) catalog_reads: Option<Arc<CatalogReads>>,
    pub(crate) search: Option<Arc<SearchIndex>>,
}

/// `/healthz`, `/readyz` and `/metrics`.
pub(crate) fn ops_router(state: OpsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .with_state(state)
}

/// The answer of `/healthz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Health {
    status: Alive,
}

/// A live process's status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Alive {
    Ok,
}

/// The answer of `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    status: Ready,
}

/// A ready process's status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Ready {
    Ready,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "ops",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(Health { status: Alive::Ok }),
    )
        .into_response()
}

/// Readiness: the database answers and the process is not shutting down.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (`database_unavailable`, `shutting_down`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State(ops): State<OpsState>) -> Result<Response, ApiError> {
    if ops.shutting_down.is_cancelled() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "shutting_down",
            "the process is shutting down",
        ));
    }
    if let Err(e) = ops.db.ping().await {
        tracing::warn!(error = %e, "readiness check: database unreachable");
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "database_unavailable",
            "the database does not answer",
        ));
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(Readiness {
            status: Ready::Ready,
        }),
    )
        .into_response())
}

/// Prometheus metrics: requests by route and status, latency histograms, pool and outbox gauges.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(ops): State<OpsState>) -> Response {
    for pool in ops.db.pool_stats() {
        metrics::gauge!("emporium_db_pool_connections", "pool" => pool.name, "state" => "idle")
            .set(f64::from(pool.idle));
        metrics::gauge!("emporium_db_pool_connections", "pool" => pool.name, "state" => "in_use")
            .set(f64::from(pool.size.saturating_sub(pool.idle)));
    }
    if let Some(reads) = &ops.catalog_reads {
        reads.publish_gauges();
    }
    if let Some(search) = &ops.search {
        metrics::gauge!("emporium_search_checkpoint").set(search.checkpoint() as f64);
    }
    if let Ok(pending) = emporium_db::count_pending(&ops.db).await {
        metrics::gauge!("emporium_outbox_pending_events").set(pending as f64);
    }
    let body = emporium_http::metrics::handle()
        .map(|h| h.render())
        .unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A running server: its address, and the handle that stops it.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The store behind it.
    pub store: Store,
    registrations: Vec<Registration>,
    draining: CancellationToken,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    drain: Duration,
}

impl RunningServer {
    /// Reports not ready, leaves the registry and keeps serving for the drain period
    /// (`cluster.drain_ms`), so that balancers stop sending requests first; then stops accepting, lets in-flight requests
    /// finish (bounded), flushes the outbox, closes the database.
    pub async fn shutdown(self) {
        self.draining.cancel();
        crate::cluster::deregister(self.registrations).await;
        tokio::time::sleep(self.drain).await;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.store.db.close().await;
    }

    /// A token that fires when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Binds `config.listen`, opens and migrates the database, and starts serving, relaying and
/// housekeeping. Returns once the server accepts connections.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<RunningServer> {
    emporium_http::metrics::handle();
    let db = open_database(config).await?;
    let membership = if config.all_in_one() {
        Membership::fixed(config)
    } else {
        Membership::join(config).await?
    };
    let store = Store::build_in(config, db, clock, &membership)?;
    // Tokens ended within the last token lifetime are refused from the first request on.
    match &store.identity {
        Some(identity) => {
            identity
                .refresh_revocations()
                .await
                .context("cannot read token revocations")?;
        }
        None => refresh_remote_revocations(&store).await,
    }
    if config.demo {
        crate::demo::seed(&store).await?;
    }
    // Checkouts a stopped process left mid-way are finished or compensated, and money actions
    // it left unsettled are settled, before serving.
    match store.checkout.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(checkouts = n, "recovered unfinished checkouts"),
        Err(e) => {
            tracing::error!(error = %e, "cannot recover unfinished checkouts; recovery retries while serving")
        }
    }
    match store.orders.settle_pending(Duration::ZERO).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(orders = n, "settled pending order payments"),
        Err(e) => {
            tracing::error!(error = %e, "cannot settle pending order payments; recovery retries while serving")
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let draining = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let admin = admin_ui(config, local_addr)?;
    let app = store.router(config, draining.clone(), admin);
    let server_done = serve_until(
        &tasks,
        listener,
        app,
        shutdown.clone(),
        Duration::from_millis(config.http.shutdown_grace_ms),
        Some(store.checkout.clone()),
    );

    // The relay runs until the server has stopped, then flushes what the last requests wrote:
    // to the in-process bus, or to NATS when the groups run apart (the consumers then read
    // from there).
    let relay = if config.all_in_one() {
        store.relay()
    } else {
        let events = crate::events::connect(config).await?;
        let instance = crate::events::instance_name(config);
        crate::events::consume(
            config,
            &events,
            &store.handlers,
            &instance,
            &tasks,
            &shutdown,
        );
        OutboxRelay::new(
            store.db.clone(),
            Arc::new(events),
            store.clock.clone(),
            store.crash_points.clone(),
        )
    };
    let relay = with_retention(relay, config);
    let poll = Duration::from_millis(config.outbox.poll_interval_ms);
    tasks.spawn(relay.run(poll, server_done.clone()));

    // Placed checkouts are completed (stock committed, cart closed) behind the answer, until
    // the last request has been answered.
    tasks.spawn(store.checkout.clone().run_completions(server_done));

    // What a dropped request, a failed compensation or a provider that did not answer left
    // unfinished is taken over once idle, while serving.
    let (checkout, orders) = (store.checkout.clone(), store.orders.clone());
    let sweep_every = Duration::from_millis(config.recovery.sweep_interval_ms);
    let idle = Duration::from_millis(config.recovery.idle_after_ms);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(sweep_every) => {}
                () = stop.cancelled() => break,
            }
            if let Err(e) = checkout.recover_idle(idle).await {
                tracing::warn!(error = %e, "recovering abandoned checkouts failed; retried at the next pass");
            }
            if let Err(e) = orders.settle_pending(idle).await {
                tracing::warn!(error = %e, "settling pending order payments failed; retried at the next pass");
            }
        }
    });

    // Webhook deliveries and e-mails go out behind the events that made them.
    tasks.spawn(store.notify.deliverer.clone().run(shutdown.clone()));
    if let Some(mailer) = &store.notify.mailer {
        tasks.spawn(mailer.clone().run(shutdown.clone()));
    }

    // The search index follows the journal from its last checkpoint.
    if let Some(search) = &store.search {
        tasks.spawn(
            SearchProjector::new(search.clone()).run(store.journal.clone(), shutdown.clone()),
        );
    }

    // Reservations past their expiry give their stock back.
    if let Some(inventory) = &store.inventory {
        tasks.spawn(emporium_inventory::run_expiry(
            inventory.clone(),
            Duration::from_secs(5),
            shutdown.clone(),
        ));
    }

    spawn_keyring_reload(&tasks, store.tokens.clone(), shutdown.clone());

    // Tokens ended by another process (over the same database, or in identity's process) are
    // refused here within about one interval.
    let refreshing = store.clone();
    every(&tasks, REVOCATIONS_REFRESH, shutdown.clone(), move || {
        let store = refreshing.clone();
        async move {
            match &store.identity {
                Some(identity) => {
                    if let Err(e) = identity.refresh_revocations().await {
                        tracing::warn!(error = %e, "cannot read token revocations; will retry");
                    }
                }
                None => refresh_remote_revocations(&store).await,
            }
        }
    });

    let registrations = membership.register(config, local_addr).await?;
    tracing::info!(%local_addr, backend = ?store.db.backend(), "emporium is ready");
    Ok(RunningServer {
        local_addr,
        store,
        registrations,
        draining,
        shutdown,
        tasks,
        drain: Duration::from_millis(config.cluster.drain_ms),
    })
}

/// The staff web UI, when enabled: it calls the API at `admin.api_url`, by default this
/// process's own address (a wildcard listen address is reached over loopback).
fn admin_ui(config: &Config, local_addr: SocketAddr) -> anyhow::Result<Option<Router>> {
    if !config.admin.enabled {
        return Ok(None);
    }
    let api_url = match &config.admin.api_url {
        Some(url) => url.clone(),
        None => {
            let mut own = local_addr;
            if own.ip().is_unspecified() {
                own.set_ip(match own {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{own}")
        }
    };
    let router = emporium_admin::router(emporium_admin::AdminConfig {
        api_url,
        call_timeout: Duration::from_millis(config.http.request_timeout_ms),
        media_max_bytes: config.media.max_bytes,
    })
    .context("cannot build the admin UI's HTTP client")?;
    Ok(Some(router))
}

/// Serves `app` on `listener` until `stop`; in-flight requests then get `grace`, and so do
/// the `checkouts` whose callers went away. The token returned fires once all that is over.
pub(crate) fn serve_until(
    tasks: &TaskTracker,
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    grace: Duration,
    checkouts: Option<Arc<CheckoutService>>,
) -> CancellationToken {
    let server_done = CancellationToken::new();
    let server_done_signal = server_done.clone();
    tasks.spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let serve = async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "server failed");
            }
        };
        tokio::pin!(serve);
        tokio::select! {
            () = &mut serve => {}
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight requests did not finish in time; closing them");
            }
        }
        // Checkouts whose callers went away still reach their answer, within the grace.
        if let Some(checkouts) = checkouts {
            checkouts.drain(grace).await;
        }
        server_done_signal.cancel();
    });
    server_done
}

/// `relay` with the configured retention of delivered events.
pub(crate) fn with_retention(relay: OutboxRelay, config: &Config) -> OutboxRelay {
    if config.outbox.retention_hours == 0 {
        return relay;
    }
    let hours = i64::try_from(config.outbox.retention_hours).unwrap_or(i64::MAX / 3600);
    relay.with_retention(time::Duration::hours(hours))
}

/// Re-reads the signing keyring every 5 s when its file changed (`emporium keys rotate`).
pub(crate) fn spawn_keyring_reload(
    tasks: &TaskTracker,
    tokens: Arc<Tokens>,
    stop: CancellationToken,
) {
    every(tasks, Duration::from_secs(5), stop, move || {
        tokens.reload_if_changed();
        std::future::ready(())
    });
}

/// Runs `work` at once and then every `period` (a late tick waits a whole period) until
/// `stop`, which also ends a run of `work` still under way: a process stopping never waits
/// for a periodic call (say, to a group that has already gone).
pub(crate) fn every<F, Fut>(tasks: &TaskTracker, period: Duration, stop: CancellationToken, work: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = work() => {}
            }
        }
    });
}

/// Brings the keyring's revocations up to date with identity's, in another process; a
/// failure is logged and the next refresh tries again.
async fn refresh_remote_revocations(store: &Store) {
    if let Some(client) = &store.identity_client
        && let Err(e) = client
            .refresh_revocations(&store.tokens, store.clock.now())
            .await
    {
        tracing::warn!(error = %e, "cannot read token revocations from identity; will retry");
    }
}

/// Opens the token keyring (created when missing).
pub(crate) fn open_tokens(config: &Config, clock: &dyn Clock) -> anyhow::Result<Arc<Tokens>> {
    Ok(Arc::new(
        Tokens::open(
            config.signing_keys_file(),
            time::Duration::seconds(
                i64::try_from(config.auth.access_token_ttl_secs).unwrap_or(900),
            ),
            clock.now(),
        )
        .context("cannot open the signing keys")?,
    ))
}

/// Identity over `db`, signing with `tokens`.
pub(crate) fn identity_service(
    config: &Config,
    db: Db,
    clock: Arc<dyn Clock>,
    tokens: Arc<Tokens>,
) -> Arc<IdentityService> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let throttle = LoginThrottle::new(ThrottleLimits {
        account_burst: config.auth.login_failures_per_account,
        account_refill: Duration::from_secs(config.auth.account_refill_secs),
        address_burst: config.auth.login_failures_per_address,
        address_refill: Duration::from_secs(config.auth.address_refill_secs),
    });
    Arc::new(IdentityService::new(
        db,
        Hasher::new(cores),
        tokens,
        throttle,
        clock,
        TokenLifetimes {
            refresh: time::Duration::days(
                i64::try_from(config.auth.refresh_token_ttl_days).unwrap_or(30),
            ),
        },
    ))
}

/// A customer's groups, from identity: in this process (whose customer cache serves them) or
/// in another. For a cart's quote and for the calculated prices of storefront reads.
pub(crate) enum IdentityGroups {
    Local(Arc<IdentityService>),
    Remote(Arc<IdentityClient>),
}

impl IdentityGroups {
    async fn of(&self, customer: &str) -> Result<Vec<String>, PricingError> {
        use emporium_identity::IdentityError;
        match self {
            Self::Local(identity) => {
                let Ok(id) = customer.parse() else {
                    return Ok(Vec::new());
                };
                match identity.get_customer(id).await {
                    Ok(c) => Ok(c.groups),
                    Err(IdentityError::CustomerNotFound) => Ok(Vec::new()),
                    Err(IdentityError::Storage(e)) => Err(PricingError::Storage(e)),
                    Err(e) => Err(PricingError::Corrupt(e.to_string())),
                }
            }
            Self::Remote(client) => client
                .groups_of(customer)
                .await
                .map_err(PricingError::Remote),
        }
    }
}

#[async_trait::async_trait]
impl emporium_pricing::CustomerGroups for IdentityGroups {
    async fn groups_of(&self, customer: &str) -> Result<Vec<String>, PricingError> {
        self.of(customer).await
    }
}

#[async_trait::async_trait]
impl emporium_cart::CustomerGroups for IdentityGroups {
    async fn groups_of(&self, customer: &str) -> Result<Vec<String>, emporium_cart::CartError> {
        self.of(customer).await.map_err(|e| match e {
            PricingError::Storage(e) => emporium_cart::CartError::Storage(e),
            e => emporium_cart::CartError::Pricing(e),
        })
    }
}
