//! The service registry: where the instances of each service group say they are, and how
//! callers and the gateway find them.
//!
//! Each instance puts an [`Instance`] record under `<group>.<id>` in a NATS JetStream key-value
//! bucket and puts it again every third of the TTL ([`Registry::register`]); it deletes the key
//! when it stops ([`Registration::deregister`]). A watcher ([`Registry::watch`]) keeps the live
//! instances per group in a `tokio::sync::watch` channel, from a key-value watch plus a full read
//! of the keys every half TTL. A key whose heartbeat stopped expires from the bucket after the
//! TTL; the server says nothing when it does, so the watcher drops entries it has not heard
//! from for a TTL by itself. [`Discovery`] puts a static list from
//! configuration behind the same channel, for deployments without NATS.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, kv, stream};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long the first connection attempt, and each JetStream request, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The live instances, by group; each group's list is sorted by instance id.
pub type Directory = BTreeMap<String, Vec<Instance>>;

/// One running instance of a service group, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The service group, e.g. `catalog` (letters, digits, `-`, `_`).
    pub group: String,
    /// Unique within the group (letters, digits, `-`, `_`, `=`).
    pub id: String,
    /// Where it takes requests, e.g. `http://10.0.0.5:8080`.
    pub url: String,
    /// The version it runs, for gray releases.
    pub version: String,
    /// Relative share of the group's traffic.
    pub weight: u32,
    /// Where it runs (availability zone, rack), for zone-aware routing.
    pub zone: String,
}

impl Instance {
    /// The bucket key: `<group>.<id>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.group, self.id)
    }

    /// Checks that `group` and `id` make a valid key.
    fn validate(&self) -> Result<(), RegistryError> {
        let token = |s: &str, extra: &[char]| {
            !s.is_empty()
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c)
                })
        };
        if token(&self.group, &[]) && token(&self.id, &['=']) {
            Ok(())
        } else {
            Err(RegistryError::InvalidInstance {
                group: self.group.clone(),
                id: self.id.clone(),
            })
        }
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot connect to nats at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot open registry bucket {bucket}")]
    Bucket {
        bucket: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("group {group:?} and id {id:?} do not make a registry key")]
    InvalidInstance { group: String, id: String },
    #[error("cannot write registry key {key}")]
    Write {
        key: String,
        #[source]
        source: async_nats::Error,
    },
}

/// A handle on the registry bucket. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    client: async_nats::Client,
    store: Arc<kv::Store>,
    stream: Arc<stream::Stream>,
    bucket: String,
    ttl: Duration,
}

impl Registry {
    /// Connects to `url` and opens the bucket `bucket` whose keys live `ttl` after their last
    /// put, creating it if missing. The first connection must succeed within a few seconds;
    /// after that the client reconnects for ever.
    pub async fn connect(url: &str, bucket: &str, ttl: Duration) -> Result<Self, RegistryError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|source| RegistryError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        let bucket_error = |source: async_nats::Error| RegistryError::Bucket {
            bucket: bucket.to_owned(),
            source,
        };
        // The client's own bucket creation asks the server for account fields that NATS 2.9
        // lacks, so the bucket's stream is created directly, as a key-value bucket's stream is.
        let stream = jetstream
            .get_or_create_stream(bucket_stream(bucket, ttl))
            .await
            .map_err(|e| bucket_error(e.into()))?;
        let store = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|e| bucket_error(e.into()))?;
        Ok(Self {
            client,
            store: Arc::new(store),
            stream: Arc::new(stream),
            bucket: bucket.to_owned(),
            ttl,
        })
    }

    /// How long a key lives after its last put.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Puts `instance` now, then again every third of the TTL until the [`Registration`] is
    /// deregistered or dropped. Registering the same group and id again replaces the record.
    /// Fails when the first put fails; a later failed heartbeat is logged and retried at the
    /// next beat.
    pub async fn register(&self, instance: Instance) -> Result<Registration, RegistryError> {
        instance.validate()?;
        let key = instance.key();
        let value = bytes::Bytes::from(serde_json::to_vec(&instance).map_err(|e| {
            RegistryError::Write {
                key: key.clone(),
                source: e.into(),
            }
        })?);
        self.store
            .put(&key, value.clone())
            .await
            .map_err(|e| RegistryError::Write {
                key: key.clone(),
                source: e.into(),
            })?;
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            key.clone(),
            value,
            (self.ttl / 3).max(Duration::from_millis(100)),
        ));
        Ok(Registration {
            store: self.store.clone(),
            key,
            instance,
            heartbeat,
        })
    }

    /// The live instances by group, kept current by a task that runs while a receiver exists.
    ///
    /// It starts empty and fills as the bucket is read. Puts and deletes arrive through a watch
    /// as they happen, and every half TTL the task also reads each key's latest record (the
    /// watch of NATS 2.9 can miss a put made while it starts). An instance not heard from for
    /// a TTL is dropped (the bucket lets such keys expire without a word). The task re-watches
    /// after a NATS failure; while the connection is down it drops nobody, and after it is back
    /// it gives every instance a TTL to be heard from again.
    pub fn watch(&self) -> watch::Receiver<Directory> {
        let (tx, rx) = watch::channel(Directory::new());
        tokio::spawn(
            Watcher {
                client: self.client.clone(),
                store: self.store.clone(),
                stream: self.stream.clone(),
                bucket: self.bucket.clone(),
                ttl: self.ttl,
                tx,
                seen: HashMap::new(),
                gone: HashMap::new(),
                connected_since: Instant::now(),
                was_connected: true,
            }
            .run(),
        );
        rx
    }
}

/// The stream behind bucket `bucket`: the latest value per key, each kept `ttl`.
fn bucket_stream(bucket: &str, ttl: Duration) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..Default::default()
    }
}

async fn heartbeat(store: Arc<kv::Store>, key: String, value: bytes::Bytes, every: Duration) {
    let mut beat = tokio::time::interval_at(Instant::now() + every, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        if let Err(e) = store.put(&key, value.clone()).await {
            tracing::warn!(%key, error = %e, "registry heartbeat failed");
        }
    }
}

/// A live registration: its heartbeat runs until [`Registration::deregister`] or drop.
pub struct Registration {
    store: Arc<kv::Store>,
    key: String,
    instance: Instance,
    heartbeat: JoinHandle<()>,
}

impl Registration {
    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Stops the heartbeat and deletes the key, so watchers drop the instance at once. Called
    /// when the instance starts to drain, before it stops taking requests. On failure the key
    /// still expires after the TTL.
    pub async fn deregister(self) -> Result<(), RegistryError> {
        self.heartbeat.abort();
        self.store
            .delete(&self.key)
            .await
            .map_err(|e| RegistryError::Write {
                key: self.key.clone(),
                source: e.into(),
            })
    }
}

impl Drop for Registration {
    /// Stops the heartbeat; the key expires after the TTL.
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// What the watcher knows of one live key.
struct Seen {
    instance: Instance,
    /// The bucket revision it came from (0 after a re-watch: anything read again is newer).
    revision: u64,
    /// When this revision reached the watcher.
    heard: Instant,
}

/// The task behind [`Registry::watch`].
struct Watcher {
    client: async_nats::Client,
    store: Arc<kv::Store>,
    stream: Arc<stream::Stream>,
    bucket: String,
    ttl: Duration,
    tx: watch::Sender<Directory>,
    seen: HashMap<String, Seen>,
    /// Deleted keys and the revision of their deletion, so an older put read late (by a
    /// resync racing the delete) does not bring an instance back.
    gone: HashMap<String, u64>,
    /// When the connection last came back (or the watcher started).
    connected_since: Instant,
    was_connected: bool,
}

impl Watcher {
    async fn run(mut self) {
        let mut failures = 0u32;
        let mut sweep = tokio::time::interval(
            (self.ttl / 8).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        );
        // The watch alone is not enough: NATS 2.9 can miss a key put while the watch starts,
        // so the keys are also read in full now and then.
        let mut resync = tokio::time::interval(
            (self.ttl / 2).clamp(Duration::from_millis(200), Duration::from_secs(10)),
        );
        loop {
            let watch = tokio::select! {
                watch = self.store.watch_all() => watch,
                () = self.tx.closed() => return,
            };
            match watch {
                Ok(mut entries) => {
                    self.forget_revisions();
                    resync.reset_immediately();
                    loop {
                        tokio::select! {
                            entry = entries.next() => match entry {
                                Some(Ok(entry)) => {
                                    failures = 0;
                                    self.apply(entry);
                                }
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "registry watch failed");
                                    break;
                                }
                                None => break,
                            },
                            _ = sweep.tick() => self.sweep(),
                            _ = resync.tick() => {
                                if let Err(e) = self.resync().await {
                                    tracing::debug!(error = %e, "registry resync failed");
                                }
                            }
                            () = self.tx.closed() => return,
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch the registry"),
            }
            failures += 1;
            let pause =
                (Duration::from_millis(100) * (1 << failures.min(6))).min(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.tx.closed() => return,
            }
        }
    }

    /// After a re-watch every key is read again: whatever comes is taken as news. A key still
    /// in the bucket was put less than a TTL ago, so this keeps a silent instance at most one
    /// TTL longer.
    fn forget_revisions(&mut self) {
        for seen in self.seen.values_mut() {
            seen.revision = 0;
        }
        self.gone.clear();
    }

    /// Reads the latest record of every key in the bucket.
    async fn resync(&mut self) -> Result<(), async_nats::Error> {
        let prefix = format!("$KV.{}.", self.bucket);
        let mut subjects = self.stream.info_with_subjects(format!("{prefix}>")).await?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject?;
            if let Some(key) = subject.strip_prefix(&prefix) {
                keys.push(key.to_owned());
            }
        }
        for key in keys {
            if let Some(entry) = self.store.entry(key).await? {
                self.apply(entry);
            }
        }
        Ok(())
    }

    fn apply(&mut self, entry: kv::Entry) {
        let known = self
            .seen
            .get(&entry.key)
            .map(|s| s.revision)
            .into_iter()
            .chain(self.gone.get(&entry.key).copied())
            .max();
        if known.is_some_and(|r| r >= entry.revision) {
            return;
        }
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<Instance>(&entry.value) {
                Ok(instance) if instance.key() == entry.key => {
                    self.gone.remove(&entry.key);
                    let seen = Seen {
                        instance,
                        revision: entry.revision,
                        heard: Instant::now(),
                    };
                    self.seen.insert(entry.key, seen);
                }
                Ok(_) => {
                    tracing::warn!(key = %entry.key, "registry record does not match its key; ignored");
                }
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "undecodable registry record ignored");
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.seen.remove(&entry.key);
                self.gone.insert(entry.key, entry.revision);
            }
        }
        self.publish();
    }

    /// Drops the instances not heard from for a TTL, counting from the later of their last put
    /// and the connection's return. Nobody is dropped while the connection is down.
    fn sweep(&mut self) {
        let connected = self.client.connection_state() == State::Connected;
        if !connected {
            self.was_connected = false;
            return;
        }
        if !self.was_connected {
            self.was_connected = true;
            self.connected_since = Instant::now();
        }
        let floor = self.connected_since;
        let ttl = self.ttl;
        let before = self.seen.len();
        self.seen.retain(|_, s| s.heard.max(floor).elapsed() <= ttl);
        if self.seen.len() != before {
            self.publish();
        }
    }

    fn publish(&self) {
        let mut directory = Directory::new();
        for seen in self.seen.values() {
            directory
                .entry(seen.instance.group.clone())
                .or_default()
                .push(seen.instance.clone());
        }
        for instances in directory.values_mut() {
            instances.sort_by(|a, b| a.id.cmp(&b.id));
        }
        self.tx.send_if_modified(|current| {
            if *current == directory {
                false
            } else {
                *current = directory;
                true
            }
        });
    }
}

/// Where the instances of each group come from.
pub enum Discovery {
    /// A fixed list from configuration; no NATS.
    Static(Directory),
    /// The registry bucket, watched.
    Registry(Registry),
}

impl Discovery {
    /// The live instances by group. A static list never changes; its sender lives as long as a
    /// receiver does (when called inside a Tokio runtime), so `changed()` just waits.
    pub fn watch(&self) -> watch::Receiver<Directory> {
        match self {
            Self::Static(directory) => {
                let mut directory = directory.clone();
                for instances in directory.values_mut() {
                    instances.sort_by(|a, b| a.id.cmp(&b.id));
                }
                let (tx, rx) = watch::channel(directory);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { tx.closed().await });
                }
                rx
            }
            Self::Registry(registry) => registry.watch(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(group: &str, id: &str) -> Instance {
        Instance {
            group: group.to_owned(),
            id: id.to_owned(),
            url: "http://127.0.0.1:1".to_owned(),
            version: "1".to_owned(),
            weight: 1,
            zone: "a".to_owned(),
        }
    }

    #[test]
    fn keys_are_group_dot_id_and_bad_tokens_are_refused() {
        assert_eq!(instance("catalog", "c-1").key(), "catalog.c-1");
        assert!(instance("catalog", "c_1=").validate().is_ok());
        for (group, id) in [
            ("", "a"),
            ("a", ""),
            ("a.b", "c"),
            ("a", "b.c"),
            ("a", "b c"),
            ("a", ">"),
            ("a*", "b"),
        ] {
            assert!(instance(group, id).validate().is_err(), "{group:?} {id:?}");
        }
    }

    #[tokio::test]
    async fn a_static_list_is_sorted_and_stays_open() {
        let mut directory = Directory::new();
        directory.insert(
            "catalog".to_owned(),
            vec![instance("catalog", "b"), instance("catalog", "a")],
        );
        let mut rx = Discovery::Static(directory).watch();
        let ids: Vec<String> = rx.borrow()["catalog"]
            .iter()
            .map(|i| i.id.clone())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        // The sender is alive: `changed` waits instead of failing at once.
        let changed = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
        assert!(
            changed.is_err(),
            "a static list must not report a change or a closed channel"
        );
    }
}
