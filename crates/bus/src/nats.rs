//! Events over NATS JetStream: the bus of the scaled-out shape.
//!
//! The outbox relay publishes each event to the subject `emporium.<type>`; JetStream stores it in
//! the stream of its service group (see [`group_streams`]), de-duplicated on the event id within
//! the stream's duplicate window. Consumers read through durable pull consumers: one shared by
//! every instance of a group ([`ConsumerMode::Shared`]), or one per process
//! ([`ConsumerMode::EachInstance`]). Delivery is at least once; consumers remove duplicates
//! through the inbox, as with the in-process bus.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{Message, PublishMessage};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use emporium_kernel::Envelope;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::{BusError, EventBus, EventHandler};

/// How long a publish waits for JetStream's acknowledgement, and a JetStream API call for its
/// answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Within this window a second publish with the same event id is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);
/// Most messages a consumer takes per fetch.
const FETCH_BATCH: usize = 256;
/// How long a fetch waits for messages when the stream has none.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// How long a delivered message may stay unacknowledged before JetStream delivers it again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Most unacknowledged messages per consumer, over all the instances sharing it.
const MAX_ACK_PENDING: i64 = 1024;
/// A per-instance consumer unused this long is removed by the server.
const INSTANCE_INACTIVE_THRESHOLD: Duration = Duration::from_secs(3600);
/// A new per-instance consumer starts this far back, so events committed while the process was
/// starting (after it read its initial state) still reach it.
const INSTANCE_LOOK_BACK: time::Duration = time::Duration::minutes(1);
/// How often a consume loop refreshes its lag gauge.
const LAG_REFRESH: Duration = Duration::from_secs(5);
/// Longest wait between two attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A JetStream stream and the subjects it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name, e.g. `EMPORIUM_ORDERING`.
    pub name: String,
    /// Subjects captured, e.g. `emporium.order.>`.
    pub subjects: Vec<String>,
}

impl StreamSpec {
    /// A stream named `name` capturing `subjects`.
    pub fn new(name: &str, subjects: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// The namespace of a store's streams and subjects unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "emporium";

/// The standard layout in the default namespace: see [`group_streams_in`].
pub fn group_streams() -> Vec<StreamSpec> {
    group_streams_in(DEFAULT_NAMESPACE)
}

/// The standard layout: one stream per service group, holding the events its contexts emit,
/// named `<NAMESPACE>_<GROUP>` over subjects `<namespace>.<aggregate>.>`, so that two stores
/// sharing a NATS server never see each other's events.
pub fn group_streams_in(namespace: &str) -> Vec<StreamSpec> {
    let stream = |group: &str| format!("{}_{group}", namespace.to_ascii_uppercase());
    let subjects = |aggregates: &[&str]| -> Vec<String> {
        aggregates
            .iter()
            .map(|a| format!("{namespace}.{a}.>"))
            .collect()
    };
    [
        ("IDENTITY", &["customer", "staff_user", "api_client"][..]),
        ("CATALOG", &["product", "category", "collection"][..]),
        ("INVENTORY", &["inventory"][..]),
        ("ORDERING", &["pricing", "payment", "order"][..]),
    ]
    .into_iter()
    .map(|(group, aggregates)| StreamSpec {
        name: stream(group),
        subjects: subjects(aggregates),
    })
    .collect()
}

/// The subject an event of `event_type` is published to in the default namespace:
/// `emporium.<event_type>`.
pub fn subject_for(event_type: &str) -> String {
    subject_in(DEFAULT_NAMESPACE, event_type)
}

/// The subject an event of `event_type` is published to: `<namespace>.<event_type>`.
pub fn subject_in(namespace: &str, event_type: &str) -> String {
    format!("{namespace}.{event_type}")
}

/// Why the NATS bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to nats at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot create or find stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
}

/// Which instances of a consumer get an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerMode {
    /// One durable consumer named after the handler, shared by every process running it: each
    /// event goes to one of them. For projections that write a shared database.
    Shared,
    /// A durable consumer of this process alone, named `<handler>-<instance>`: every process
    /// gets every event. For per-process state (a local cache, a local index). The server
    /// removes it after an hour without a fetch; a new one starts a minute back in the stream.
    EachInstance {
        /// This process's instance id (characters other than letters, digits, `-` and `_`
        /// become `_`).
        instance: String,
    },
}

/// The event bus over NATS JetStream. Cheap to clone.
#[derive(Clone)]
pub struct NatsEvents {
    jetstream: jetstream::Context,
    namespace: String,
}

impl NatsEvents {
    /// Connects to `url` and makes sure each of `streams` exists (an existing stream is kept as
    /// it is). The first connection must succeed within a few seconds; after that the client
    /// reconnects for ever.
    pub async fn connect(url: &str, streams: &[StreamSpec]) -> Result<Self, NatsError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move {
                tracing::info!(event = %event, "nats connection event");
            })
            .connect(url)
            .await
            .map_err(|source| NatsError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .ack_timeout(REQUEST_TIMEOUT)
            .build(client);
        let events = Self {
            jetstream,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        };
        events.ensure_streams(streams).await?;
        Ok(events)
    }

    /// Publishes under `namespace` (`<namespace>.<event type>`), which must match the
    /// subjects of the streams (see [`group_streams_in`]).
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// Creates each of `streams` that does not exist; existing ones are left unchanged.
    pub async fn ensure_streams(&self, streams: &[StreamSpec]) -> Result<(), NatsError> {
        for spec in streams {
            self.jetstream
                .get_or_create_stream(stream_config(spec))
                .await
                .map_err(|source| NatsError::Stream {
                    stream: spec.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// The JetStream context, for administration and tests.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Delivers the events of `streams` to `handler` until `stop` fires.
    ///
    /// Each stream is read through a durable pull consumer (named as [`ConsumerMode`] says), a
    /// batch at a time: the events the handler accepts go to [`EventHandler::handle_batch`] in
    /// stream order, and the whole batch is acknowledged once it returns `Ok`. On `Err` the batch
    /// is kept and retried with backoff (its acknowledgement deadline extended), so this instance
    /// never moves past an event its handler has not applied; at `stop` a batch still failing is
    /// handed back to the server for another instance. A message that is not an envelope is
    /// logged and terminated so it cannot block the stream. When NATS is unreachable, the loop
    /// retries with backoff and resumes by itself; it returns only after `stop`.
    pub fn consume(
        &self,
        handler: Arc<dyn EventHandler>,
        streams: &[&str],
        mode: ConsumerMode,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let loops: Vec<_> = streams
            .iter()
            .map(|stream| {
                ConsumeLoop {
                    jetstream: self.jetstream.clone(),
                    handler: handler.clone(),
                    stream: (*stream).to_owned(),
                    name: consumer_name(handler.name(), &mode),
                    mode: mode.clone(),
                    stop: stop.clone(),
                }
                .run()
            })
            .collect();
        async move {
            futures_util::future::join_all(loops).await;
        }
    }

    /// Publishes `envelope` without waiting for its acknowledgement; the returned future
    /// resolves when JetStream stored it (or found it a duplicate).
    async fn start_publish(
        &self,
        envelope: &Envelope,
    ) -> Result<jetstream::context::PublishAckFuture, BusError> {
        let body = serde_json::to_vec(envelope).map_err(|e| publish_error(envelope, e))?;
        let message = PublishMessage::build()
            .payload(body.into())
            .message_id(envelope.id.to_string());
        self.jetstream
            .send_publish(subject_in(&self.namespace, &envelope.event_type), message)
            .await
            .map_err(|e| publish_error(envelope, e))
    }
}

fn publish_error(
    envelope: &Envelope,
    source: impl std::error::Error + Send + Sync + 'static,
) -> BusError {
    BusError::Publish {
        event_id: envelope.id,
        event_type: envelope.event_type.clone(),
        source: Box::new(source),
    }
}

#[async_trait::async_trait]
impl EventBus for NatsEvents {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let ack = self.start_publish(envelope).await?;
        ack.await.map_err(|e| publish_error(envelope, e))?;
        Ok(())
    }

    /// Sends every event before awaiting the acknowledgements, in order. `Ok` only when each
    /// was stored. After a failure the relay sends the whole batch again; the events stored the
    /// first time are then dropped as duplicates, so one of them may precede in the stream an
    /// earlier event whose first publish failed.
    async fn publish_batch(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        let mut acks = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            acks.push((envelope, self.start_publish(envelope).await?));
        }
        for (envelope, ack) in acks {
            ack.await.map_err(|e| publish_error(envelope, e))?;
        }
        Ok(())
    }
}

/// The configuration of a stream created from `spec`: file storage, limits retention, a
/// duplicate window for the relay's re-publishes.
fn stream_config(spec: &StreamSpec) -> stream::Config {
    stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: 1,
        ..Default::default()
    }
}

/// The wait before the `attempts`-th reconnection: 100 ms doubling to 5 s.
fn reconnect_delay(attempts: usize) -> Duration {
    backoff(attempts as u32)
}

/// 100 ms doubling with each failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.min(10);
    (Duration::from_millis(100) * factor).min(MAX_BACKOFF)
}

/// The durable consumer name for `handler` in `mode`.
fn consumer_name(handler: &str, mode: &ConsumerMode) -> String {
    let raw = match mode {
        ConsumerMode::Shared => handler.to_owned(),
        ConsumerMode::EachInstance { instance } => format!("{handler}-{instance}"),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One handler reading one stream.
struct ConsumeLoop {
    jetstream: jetstream::Context,
    handler: Arc<dyn EventHandler>,
    stream: String,
    name: String,
    mode: ConsumerMode,
    stop: CancellationToken,
}

/// What a fetch brought: the messages received, and the error that ended it early, if any.
type Fetched = (Vec<Message>, Option<String>);

impl ConsumeLoop {
    async fn run(self) {
        let mut failures = 0u32;
        while !self.stop.is_cancelled() {
            let consumer = tokio::select! {
                consumer = self.consumer() => consumer,
                () = self.stop.cancelled() => return,
            };
            match consumer {
                Ok(consumer) => {
                    failures = 0;
                    self.fetch_until_failure(&consumer).await;
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.name, stream = %self.stream, error = %e, "cannot open event consumer");
                }
            }
            failures += 1;
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Finds the durable consumer, or creates it.
    async fn consumer(&self) -> Result<PullConsumer, async_nats::Error> {
        let stream = self.jetstream.get_stream(&self.stream).await?;
        let config = match &self.mode {
            ConsumerMode::Shared => pull::Config {
                durable_name: Some(self.name.clone()),
                deliver_policy: DeliverPolicy::All,
                ..consumer_defaults()
            },
            ConsumerMode::EachInstance { .. } => pull::Config {
                durable_name: Some(self.name.clone()),
                deliver_policy: DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::now_utc() - INSTANCE_LOOK_BACK,
                },
                inactive_threshold: INSTANCE_INACTIVE_THRESHOLD,
                ..consumer_defaults()
            },
        };
        Ok(stream.get_or_create_consumer(&self.name, config).await?)
    }

    /// Fetches and handles batches until a fetch fails or `stop` fires.
    async fn fetch_until_failure(&self, consumer: &PullConsumer) {
        let mut lag_refreshed: Option<tokio::time::Instant> = None;
        loop {
            if lag_refreshed.is_none_or(|t| t.elapsed() >= LAG_REFRESH) {
                lag_refreshed = Some(tokio::time::Instant::now());
                self.refresh_lag(consumer).await;
            }
            let (messages, failure) = tokio::select! {
                fetched = fetch(consumer) => fetched,
                () = self.stop.cancelled() => return,
            };
            if !messages.is_empty() {
                self.handle(messages).await;
            }
            if let Some(error) = failure {
                tracing::warn!(consumer = %self.name, stream = %self.stream, %error, "event fetch failed");
                return;
            }
            if self.stop.is_cancelled() {
                return;
            }
        }
    }

    /// Sets `emporium_event_consumer_pending` to the events not yet acknowledged.
    async fn refresh_lag(&self, consumer: &PullConsumer) {
        match consumer.get_info().await {
            Ok(info) => {
                let pending = info.num_pending + info.num_ack_pending as u64;
                metrics::gauge!(
                    "emporium_event_consumer_pending",
                    "consumer" => self.name.clone(),
                    "stream" => self.stream.clone(),
                )
                .set(pending as f64);
            }
            Err(e) => {
                tracing::debug!(consumer = %self.name, stream = %self.stream, error = %e, "consumer info unavailable");
            }
        }
    }

    /// Handles one fetched batch: decodes, applies (retrying until it succeeds or `stop`),
    /// acknowledges.
    async fn handle(&self, messages: Vec<Message>) {
        let mut decoded = Vec::with_capacity(messages.len());
        for message in messages {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => decoded.push((message, envelope)),
                Err(e) => {
                    tracing::error!(consumer = %self.name, stream = %self.stream, subject = %message.subject, error = %e, "undecodable event terminated");
                    metrics::counter!("emporium_event_consumer_undecodable_total", "consumer" => self.name.clone())
                        .increment(1);
                    send_ack(&message, AckKind::Term, &self.name).await;
                }
            }
        }
        let accepted: Vec<&Envelope> = decoded
            .iter()
            .map(|(_, envelope)| envelope)
            .filter(|envelope| self.handler.accepts(&envelope.event_type))
            .collect();
        let mut failures = 0u32;
        while !accepted.is_empty() {
            let Err(e) = self.handler.handle_batch(&accepted).await else {
                break;
            };
            failures += 1;
            metrics::counter!("emporium_event_consumer_failures_total", "consumer" => self.name.clone())
                .increment(1);
            tracing::warn!(consumer = %self.name, stream = %self.stream, events = accepted.len(), attempt = failures, error = %e, "consumer failed on a batch; retrying");
            // Keeps the batch ours while we retry, so it is not delivered to another instance
            // at the same time.
            for (message, _) in &decoded {
                send_ack(message, AckKind::Progress, &self.name).await;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                () = self.stop.cancelled() => {
                    for (message, _) in &decoded {
                        send_ack(message, AckKind::Nak(None), &self.name).await;
                    }
                    return;
                }
            }
        }
        for (message, _) in &decoded {
            send_ack(message, AckKind::Ack, &self.name).await;
        }
    }
}

/// The settings every consumer shares: explicit acknowledgement, a long acknowledgement wait
/// for slow batches, a bound on unacknowledged messages.
fn consumer_defaults() -> pull::Config {
    pull::Config {
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// One fetch: up to [`FETCH_BATCH`] messages, waiting at most [`FETCH_WAIT`] for the first.
async fn fetch(consumer: &PullConsumer) -> Fetched {
    // A fetch ends by itself after FETCH_WAIT; the bound covers a connection lost meanwhile.
    let bound = FETCH_WAIT + REQUEST_TIMEOUT;
    match tokio::time::timeout(bound, fetch_unbounded(consumer)).await {
        Ok(fetched) => fetched,
        Err(_) => (Vec::new(), Some("fetch timed out".to_owned())),
    }
}

async fn fetch_unbounded(consumer: &PullConsumer) -> Fetched {
    let mut batch = match consumer
        .fetch()
        .max_messages(FETCH_BATCH)
        .expires(FETCH_WAIT)
        .messages()
        .await
    {
        Ok(batch) => batch,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut messages = Vec::new();
    while let Some(message) = batch.next().await {
        match message {
            Ok(message) => messages.push(message),
            // The messages received so far are handled; the rest come again after their ack
            // wait.
            Err(e) => return (messages, Some(e.to_string())),
        }
    }
    (messages, None)
}

/// Sends an acknowledgement of `kind`. A lost one is harmless: the message is delivered again
/// and the inbox skips it.
async fn send_ack(message: &Message, kind: AckKind, consumer: &str) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::debug!(%consumer, error = %e, "acknowledgement not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_prefix_has_one_stream() {
        let streams = group_streams();
        for aggregate in [
            "customer",
            "staff_user",
            "api_client",
            "product",
            "category",
            "collection",
            "inventory",
            "pricing",
            "payment",
            "order",
        ] {
            let subject = format!("emporium.{aggregate}.>");
            let holders = streams
                .iter()
                .filter(|s| s.subjects.contains(&subject))
                .count();
            assert_eq!(holders, 1, "{aggregate}");
        }
    }

    #[test]
    fn consumer_names_are_valid_nats_tokens() {
        assert_eq!(consumer_name("search", &ConsumerMode::Shared), "search");
        let mode = ConsumerMode::EachInstance {
            instance: "host.a b>*".to_owned(),
        };
        assert_eq!(consumer_name("cache", &mode), "cache-host_a_b__");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
