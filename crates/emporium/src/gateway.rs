//! `emporium gateway`: loads the gateway's configuration (the TOML file, then
//! `EMPORIUM_GATEWAY__*` variables), runs the gateway, applies the configuration again on
//! SIGHUP and stops on SIGINT or SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use emporium_gateway::{GatewayConfig, Instance, RunningGateway};
use emporium_registry::{Directory, Registry};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use tokio_util::sync::CancellationToken;

/// The file read when `--config` is not given.
const DEFAULT_FILE: &str = "emporium-gateway.toml";

/// Loads and validates the gateway configuration; the error names the bad key.
pub fn load(file: Option<&Path>) -> anyhow::Result<GatewayConfig> {
    let file = file.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf);
    let env = Env::prefixed("EMPORIUM_GATEWAY__")
        .map(|key| key.as_str().to_ascii_lowercase().into())
        .split("__");
    let config: GatewayConfig = Figment::new()
        .merge(Toml::file(&file))
        .merge(env)
        .extract()
        .with_context(|| format!("invalid gateway configuration in {}", file.display()))?;
    config.validate()?;
    Ok(config)
}

/// The groups whose instances the file lists.
fn static_groups(file: Option<&Path>) -> anyhow::Result<BTreeSet<String>> {
    Ok(load(file)?.upstreams.into_keys().collect())
}

/// Gives each registered group without static instances its registered instances (a group
/// that vanished from the registry keeps none).
async fn follow(running: &RunningGateway, directory: &Directory, statics: &BTreeSet<String>) {
    for group in running.groups() {
        if statics.contains(&group) {
            continue;
        }
        let instances: Vec<Instance> = directory
            .get(&group)
            .map(|registered| {
                registered
                    .iter()
                    .map(|i| Instance {
                        url: i.url.clone(),
                        version: i.version.clone(),
                        weight: i.weight,
                        zone: i.zone.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Err(e) = running.set_instances(&group, instances).await {
            tracing::warn!(%group, error = %e, "registered instances not taken");
        }
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(file: Option<&Path>) -> anyhow::Result<()> {
    let config = load(file)?;
    // Installs the recorder that `/gateway/metrics` renders.
    if emporium_http::metrics::handle().is_none() {
        tracing::warn!("metrics recorder unavailable; /gateway/metrics stays empty");
    }
    let shutdown = CancellationToken::new();
    let registry = config.registry.clone();
    let running = emporium_gateway::run(config, shutdown.clone()).await?;
    tracing::info!(address = %running.local_addr(), "gateway listening");
    // Groups without static instances follow the registry.
    let mut directory = match &registry {
        Some(r) => Some(
            Registry::connect(&r.nats_url, &r.bucket, Duration::from_millis(r.ttl_ms))
                .await
                .with_context(|| format!("cannot open the registry in NATS at {}", r.nats_url))?
                .watch(),
        ),
        None => None,
    };
    let mut statics = static_groups(file)?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match load(file) {
                Ok(config) => {
                    statics = config.upstreams.keys().cloned().collect();
                    if let Err(e) = running.reload(config).await {
                        tracing::warn!(error = %e, "configuration not reloaded");
                    }
                    // The reload set the static instances; the registry's go back on top.
                    if let Some(directory) = &directory {
                        let now = directory.borrow().clone();
                        follow(&running, &now, &statics).await;
                    }
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "configuration not reloaded"),
            },
            Some(()) = async {
                match directory.as_mut() {
                    Some(d) => d.changed().await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                if let Some(directory) = &mut directory {
                    let now = directory.borrow_and_update().clone();
                    follow(&running, &now, &statics).await;
                }
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("gateway shutting down");
    shutdown.cancel();
    running.stopped().await;
    tracing::info!("gateway stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_in_the_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, "[[routes]]\nprefix = \"v1\"\ngroup = \"a\"\n").expect("write");
        let err = load(Some(&path)).expect_err("invalid");
        assert!(format!("{err:#}").contains("routes[0].prefix"), "{err:#}");
    }

    #[test]
    fn a_valid_file_loads() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:0\"\n[[routes]]\nprefix = \"/v1\"\ngroup = \"a\"\n\
             [upstreams.a]\ninstances = [{ url = \"http://127.0.0.1:1\" }]\n",
        )
        .expect("write");
        let config = load(Some(&path)).expect("valid");
        assert_eq!(config.routes[0].group, "a");
    }
}
