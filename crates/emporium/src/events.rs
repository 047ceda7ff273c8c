//! Events between processes: in the scaled-out shape a process relays its outbox to NATS
//! JetStream (a stream per service group) and its consumers read from there, instead of the
//! in-process bus of the all-in-one store.

use std::sync::Arc;

use anyhow::Context;
use emporium_bus::{ConsumerMode, EventHandler, NatsEvents};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// Which processes get an event a consumer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One of the processes running the consumer: for effects on a database they share.
    Shared,
    /// Every process running the consumer: for state each keeps in memory (its caches).
    EachInstance,
}

/// Connects to the configured NATS and makes sure every group's stream exists.
pub async fn connect(config: &Config) -> anyhow::Result<NatsEvents> {
    let url = config
        .cluster
        .nats_url
        .as_deref()
        .context("cluster.nats_url is not set")?;
    let namespace = &config.cluster.namespace;
    Ok(
        NatsEvents::connect(url, &emporium_bus::group_streams_in(namespace))
            .await
            .with_context(|| format!("cannot reach NATS at {url}"))?
            .in_namespace(namespace),
    )
}

/// This process's name among the instances of its groups: the host name and the listening
/// port, stable across restarts of the same instance.
pub fn instance_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "local".to_owned()
    } else {
        host
    };
    format!("{host}-{}", config.listen.port())
}

/// Runs each of `handlers` as a consumer of every group's stream until `stop`.
pub fn consume(
    config: &Config,
    events: &NatsEvents,
    handlers: &[(Arc<dyn EventHandler>, Delivery)],
    instance: &str,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    let streams: Vec<String> = emporium_bus::group_streams_in(&config.cluster.namespace)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
    for (handler, delivery) in handlers {
        let mode = match delivery {
            Delivery::Shared => ConsumerMode::Shared,
            Delivery::EachInstance => ConsumerMode::EachInstance {
                instance: instance.to_owned(),
            },
        };
        tasks.spawn(events.consume(handler.clone(), &streams, mode, stop.clone()));
    }
}
