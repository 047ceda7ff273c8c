//! `emporium gateway`: loads the gateway's configuration (the TOML file, then
//! `EMPORIUM_GATEWAY__*` variables), runs the gateway, applies the configuration again on
//! SIGHUP and stops on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};

use anyhow::Context;
use emporium_gateway::GatewayConfig;
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

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(file: Option<&Path>) -> anyhow::Result<()> {
    let config = load(file)?;
    // Installs the recorder that `/gateway/metrics` renders.
    if emporium_http::metrics::handle().is_none() {
        tracing::warn!("metrics recorder unavailable; /gateway/metrics stays empty");
    }
    let shutdown = CancellationToken::new();
    let running = emporium_gateway::run(config, shutdown.clone()).await?;
    tracing::info!(address = %running.local_addr(), "gateway listening");
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match load(file) {
                Ok(config) => {
                    if let Err(e) = running.reload(config).await {
                        tracing::warn!(error = %e, "configuration not reloaded");
                    }
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "configuration not reloaded"),
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
