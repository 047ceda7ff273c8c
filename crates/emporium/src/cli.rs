//! The command line: `serve`, `migrate`, `config`, `openapi`, `admin create`, `keys rotate`,
//! `import products`, `search reindex`, `seed`, `gateway`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use emporium_identity::CreateStaffUser;
use emporium_kernel::SystemClock;
use emporium_kernel::auth::Role;

use crate::config::{Config, Overrides};

/// Emporium: a headless commerce backend in one binary.
#[derive(Debug, Parser)]
#[command(name = "emporium", version, about)]
pub struct Cli {
    /// Configuration file (default: ./emporium.toml when present).
    #[arg(long, global = true, env = "EMPORIUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (SQLite database, signing keys).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://…
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the store: all of it, or the service groups `--services` names.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Seed demo data on first start (demo owner and shopper accounts).
        #[arg(long)]
        demo: bool,
        /// The service groups to run, separated by commas (identity, catalog, search,
        /// inventory, ordering); all of them when absent.
        #[arg(long, value_delimiter = ',', value_parser = parse_group)]
        services: Vec<crate::config::Group>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets masked).
    Config,
    /// Print the OpenAPI document that `/openapi.json` serves, without a server or a database.
    Openapi,
    /// Manage staff users.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage the token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Bulk-import data.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Manage the product search index.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Manage orders.
    Orders {
        #[command(subcommand)]
        command: OrdersCommand,
    },
    /// Run the gateway (load balancer and reverse proxy) with the `--config` file (default
    /// ./emporium-gateway.toml) and `EMPORIUM_GATEWAY__*` variables; SIGHUP reloads them.
    Gateway,
    /// Add a deterministic demo catalog (categories, products, variants, prices, stock).
    Seed {
        /// How many products.
        #[arg(long, default_value_t = 1000)]
        products: usize,
        /// Write the catalog to this JSON Lines file (for `import products`) instead of the
        /// database.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Import commands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Upsert products from a CSV (`.csv`) or JSON Lines file (format: docs/IMPORT.md). Exits 1
    /// when any product failed; the others are written.
    Products {
        /// The file to import.
        file: PathBuf,
    },
}

/// Order commands.
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Rebuild the order tables the API reads from the orders' event streams.
    RebuildProjections,
}

/// Search index commands.
#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Rebuild the search index from scratch by replaying the event journal. Run it with the
    /// server stopped: the server holds the index while it runs.
    Reindex,
}

/// Staff user commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a staff user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// owner, admin or staff.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Display name (default: the e-mail address).
        #[arg(long)]
        name: Option<String>,
    },
}

/// Signing key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; tokens signed by older keys stay valid until they expire.
    Rotate,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected owner, admin or staff".to_owned())
}

fn parse_group(s: &str) -> Result<crate::config::Group, String> {
    crate::config::Group::parse(s)
        .ok_or_else(|| "expected identity, catalog, search, inventory or ordering".to_owned())
}

/// Exit code for a configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// The configuration the command runs with, or the exit code of a configuration error (said on
/// standard error).
pub fn load_config(cli: &Cli) -> Result<Config, u8> {
    let (listen, demo, services) = match &cli.command {
        Command::Serve {
            listen,
            demo,
            services,
        } => (
            *listen,
            demo.then_some(true),
            (!services.is_empty()).then(|| services.clone()),
        ),
        // `--config` names the gateway's own file, which `crate::gateway` reads.
        Command::Gateway => return Ok(Config::default()),
        _ => (None, None, None),
    };
    let overrides = Overrides {
        listen,
        demo,
        services,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
    };
    Config::load(cli.config.as_deref(), &overrides).map_err(|e| {
        eprintln!("emporium: {e}");
        EXIT_CONFIG
    })
}

/// Runs the command with `config` (see [`load_config`]); returns the process exit code.
pub async fn run(cli: Cli, config: Config, started: Instant) -> u8 {
    crate::telemetry::init(&config);
    let result = match cli.command {
        Command::Serve { .. } => serve(&config, started).await,
        Command::Migrate => migrate(&config).await,
        Command::Config => {
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Openapi => print_openapi(&config).await,
        Command::Gateway => crate::gateway::run(cli.config.as_deref()).await,
        Command::Admin {
            command: AdminCommand::Create { email, role, name },
        } => create_admin(&config, email, role, name).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(&config),
        Command::Import {
            command: ImportCommand::Products { file },
        } => match crate::import::read_file(&file) {
            Ok(records) => import(&config, records, "products").await,
            Err(e) => Err(e),
        },
        Command::Search {
            command: SearchCommand::Reindex,
        } => reindex(&config).await,
        Command::Orders {
            command: OrdersCommand::RebuildProjections,
        } => rebuild_orders(&config).await,
        Command::Seed {
            products,
            output: Some(file),
        } => crate::seed::write_jsonl(&file, products),
        Command::Seed {
            products,
            output: None,
        } => {
            import(
                &config,
                crate::seed::demo_catalog(products),
                "demo products",
            )
            .await
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("emporium: {e:#}");
            1
        }
    }
}

async fn serve(config: &Config, started: Instant) -> anyhow::Result<()> {
    type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let (address, stop): (std::net::SocketAddr, Stop) =
        if config.groups() == [crate::config::Group::Inventory] {
            let node = crate::cluster::start_inventory(config, Arc::new(SystemClock)).await?;
            (node.local_addr, Box::pin(node.shutdown()))
        } else if config.groups() == [crate::config::Group::Catalog] {
            let node = crate::cluster::start_catalog(config, Arc::new(SystemClock)).await?;
            (node.local_addr, Box::pin(node.shutdown()))
        } else if config.groups() == [crate::config::Group::Search] {
            let node = crate::cluster::start_search(config, Arc::new(SystemClock)).await?;
            (node.local_addr, Box::pin(node.shutdown()))
        } else if config.groups() == [crate::config::Group::Identity] {
            let node = crate::cluster::start_identity(config, Arc::new(SystemClock)).await?;
            (node.local_addr, Box::pin(node.shutdown()))
        } else {
            let server = crate::start(config, Arc::new(SystemClock)).await?;
            (server.local_addr, Box::pin(server.shutdown()))
        };
    tracing::info!(
        %address,
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "listening"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    stop.await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Builds the store over a throw-away data folder (the configured database, keys and media
/// are never opened) and prints its OpenAPI document as JSON.
async fn print_openapi(config: &Config) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("emporium-openapi-{}", std::process::id()));
    let mut config = config.clone();
    // The whole store's document, whichever groups this configuration runs.
    config.services = Vec::new();
    config.data_dir = scratch.clone();
    config.database_url = None;
    config.auth.signing_keys_file = None;
    config.media.s3 = None;
    let document = async {
        let db = crate::app::open_database(&config).await?;
        let store = crate::Store::build(&config, db.clone(), Arc::new(SystemClock))?;
        let document = store.openapi(&config).to_pretty_json();
        db.close().await;
        anyhow::Ok(document?)
    }
    .await;
    // Nothing of the scratch folder is worth keeping, whatever happened.
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "{}",
        document.context("cannot render the OpenAPI document")?
    );
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = crate::app::open_database(config).await?;
    db.close().await;
    println!("database is up to date");
    Ok(())
}

async fn create_admin(
    config: &Config,
    email: String,
    role: Role,
    name: Option<String>,
) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        config.groups().contains(&crate::config::Group::Identity),
        "this process does not run identity; create staff users where it runs"
    );
    let db = crate::app::open_database(config).await?;
    let clock: Arc<dyn emporium_kernel::Clock> = Arc::new(SystemClock);
    let tokens = crate::app::open_tokens(config, clock.as_ref())?;
    let identity = crate::app::identity_service(config, db.clone(), clock, tokens);
    let cmd = CreateStaffUser {
        name: name.unwrap_or_else(|| email.clone()),
        email,
        password,
        role,
    };
    let created = identity.create_staff(cmd, "cli").await;
    db.close().await;
    match created {
        Ok(user) => {
            println!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.id
            );
            Ok(())
        }
        Err(emporium_identity::IdentityError::Invalid(errors)) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer.trim_start_matches('/'), e.detail))
                .collect();
            anyhow::bail!("invalid staff user: {}", reasons.join("; "))
        }
        Err(e) => Err(e.into()),
    }
}

/// Upserts `records` with a progress bar and prints a summary; fails when any record failed.
async fn import(
    config: &Config,
    records: Vec<crate::import::Record>,
    what: &str,
) -> anyhow::Result<()> {
    // A bulk job is made safe by re-running it (it is idempotent), so its commits need not wait
    // for the disk: WAL with synchronous=NORMAL still survives a process crash.
    let mut config = config.clone();
    config.database.sqlite_synchronous = crate::config::SqliteSync::Normal;
    config.database.sqlite_writer_cache_mib = config.database.sqlite_writer_cache_mib.max(64);
    config.database.sqlite_checkpoint_mib = config.database.sqlite_checkpoint_mib.max(400);
    let db = crate::app::open_database(&config).await?;
    let store = crate::Store::build(&config, db.clone(), Arc::new(SystemClock))?;
    let started = Instant::now();
    let bar = crate::import::progress(records.len() as u64, what);
    let summary = match crate::import::Target::of(&store) {
        Ok(to) => crate::import::run(&to, records, &bar).await,
        Err(e) => Err(e),
    };
    bar.finish_and_clear();
    db.close().await;
    let summary = summary?;
    let written = summary.created + summary.updated + summary.unchanged;
    println!(
        "{written} {what} in {:.1} s: {} created, {} updated, {} unchanged, {} stock levels set, {} failed",
        started.elapsed().as_secs_f64(),
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.stock_set,
        summary.failed.len()
    );
    for (line, reason) in &summary.failed {
        eprintln!("line {line}: {reason}");
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} {what} failed", summary.failed.len())
    }
}

async fn reindex(config: &Config) -> anyhow::Result<()> {
    let db = crate::app::open_database(config).await?;
    let store = crate::Store::build(config, db.clone(), Arc::new(SystemClock))?;
    let search = store
        .search
        .clone()
        .context("this process does not run search; reindex where it runs")?;
    let started = Instant::now();
    let outcome = async {
        // Events still in the outbox reach the journal first, so the rebuild includes them.
        store
            .relay()
            .drain()
            .await
            .context("cannot deliver the pending events")?;
        let position = emporium_search::SearchProjector::new(search.clone())
            .rebuild(store.journal.as_ref())
            .await
            .context("cannot rebuild the search index (is a server using it?)")?;
        anyhow::Ok(position)
    }
    .await;
    db.close().await;
    let position = outcome?;
    println!(
        "search index rebuilt in {:.1} s: {} published products, journal position {position}",
        started.elapsed().as_secs_f64(),
        search.published_count()?,
    );
    Ok(())
}

fn rotate_keys(config: &Config) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let access_ttl =
        time::Duration::seconds(i64::try_from(config.auth.access_token_ttl_secs).unwrap_or(900));
    // Keep a superseded key until every token it signed has expired, with a margin.
    let retire_after = access_ttl + time::Duration::minutes(10);
    let kid = emporium_identity::rotate_keys(&config.signing_keys_file(), now, retire_after)?;
    println!("new signing key {kid}; running servers pick it up within seconds");
    Ok(())
}

/// Rebuilds the order projection from the event streams and says how many orders it wrote.
async fn rebuild_orders(config: &Config) -> anyhow::Result<()> {
    let db = crate::app::open_database(config).await?;
    let payments = Arc::new(emporium_payments::PaymentService::new(
        db.clone(),
        Arc::new(SystemClock),
    ));
    let orders = emporium_ordering::OrderService::new(
        db.clone(),
        Arc::new(SystemClock),
        payments,
        emporium_kernel::fault::CrashPoints::default(),
    );
    let written = orders
        .rebuild_projections()
        .await
        .context("cannot rebuild the order projection")?;
    println!("rebuilt {written} orders from their event streams");
    db.close().await;
    Ok(())
}
