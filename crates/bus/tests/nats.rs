//! The NATS JetStream bus against a real server: publishing, de-duplication, shared and
//! per-instance consumers, retries, bad messages, and an outage of the server itself while the
//! outbox relay runs.
//!
//! The tests read the server's URL from `EMPORIUM_TEST_NATS_URL`; each uses a stream and event
//! types of its own, so they share the server with anything else. The outage test starts (and
//! kills) a `nats-server` of its own on a free loopback port.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emporium_bus::{
    ConsumerMode, EventBus, EventHandler, HandlerError, NatsEvents, OutboxRelay, StreamSpec,
};
use emporium_db::{Arg, Db, DbOptions, Migration, Sql};
use emporium_kernel::{Envelope, Event, SystemClock, fault::CrashPoints};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The shared server's URL, or `None` after saying the test did not run.
fn nats_url(test: &str) -> Option<String> {
    match std::env::var("EMPORIUM_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_NATS").as_deref() != Ok("1"),
                "EMPORIUM_TEST_NATS_URL is not set but EMPORIUM_TEST_REQUIRE_NATS=1"
            );
            eprintln!("NOT RUN: {test} (set EMPORIUM_TEST_NATS_URL)");
            None
        }
    }
}

/// A stream of this test's own: events of type `<prefix>.<verb>` land in it.
struct TestStream {
    prefix: String,
    spec: StreamSpec,
}

impl TestStream {
    fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let prefix = format!("t{tag}");
        let spec = StreamSpec::new(
            &format!("TEST_{tag}"),
            &[format!("emporium.{prefix}.>").as_str()],
        );
        Self { prefix, spec }
    }

    fn event_type(&self, verb: &str) -> String {
        format!("{}.{verb}", self.prefix)
    }

    async fn connect(&self, url: &str) -> NatsEvents {
        NatsEvents::connect(url, std::slice::from_ref(&self.spec))
            .await
            .unwrap()
    }

    async fn stored(&self, bus: &NatsEvents) -> u64 {
        let mut stream = bus.jetstream().get_stream(&self.spec.name).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    async fn remove(&self, bus: &NatsEvents) {
        bus.jetstream()
            .delete_stream(&self.spec.name)
            .await
            .unwrap();
    }
}

fn envelope(event_type: &str, n: i64) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        version: 1,
        aggregate_id: format!("agg_{n}"),
        sequence: n,
        occurred_at: OffsetDateTime::now_utc(),
        trace: None,
        data: serde_json::json!({ "n": n }),
    }
}

/// Records the events it applies; fails its first `failures` batches.
struct Recorder {
    name: &'static str,
    accepted_type: String,
    failures: AtomicUsize,
    calls: AtomicUsize,
    // A std mutex: never held across an await.
    applied: Mutex<Vec<Envelope>>,
}

impl Recorder {
    fn new(name: &'static str, accepted_type: String, failures: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            accepted_type,
            failures: AtomicUsize::new(failures),
            calls: AtomicUsize::new(0),
            applied: Mutex::new(Vec::new()),
        })
    }

    fn ids(&self) -> Vec<Uuid> {
        self.applied.lock().unwrap().iter().map(|e| e.id).collect()
    }
}

#[async_trait::async_trait]
impl EventHandler for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == self.accepted_type
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[envelope]).await
    }

    async fn handle_batch(&self, envelopes: &[&Envelope]) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err("refused on purpose".into());
        }
        self.applied
            .lock()
            .unwrap()
            .extend(envelopes.iter().map(|e| (*e).clone()));
        Ok(())
    }
}

/// Polls `condition` every 25 ms until it holds; fails after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the consumer `name` on `stream` has nothing pending or unacknowledged.
async fn wait_drained(bus: &NatsEvents, stream: &str, name: &str) {
    wait_until(
        "the consumer is drained",
        Duration::from_secs(20),
        || async {
            let Ok(stream) = bus.jetstream().get_stream(stream).await else {
                return false;
            };
            let Ok(consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(name)
                .await
            else {
                return false;
            };
            consumer
                .get_info()
                .await
                .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_batch_reaches_a_shared_consumer_in_order_once() {
    let Some(url) = nats_url("a_published_batch_reaches_a_shared_consumer_in_order_once") else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let wanted = stream.event_type("happened");
    let other = stream.event_type("ignored");
    // Every third event is of a type the consumer does not take; it is acknowledged all the same.
    let batch: Vec<Envelope> = (1..=60)
        .map(|n| envelope(if n % 3 == 0 { &other } else { &wanted }, n))
        .collect();
    bus.publish_batch(&batch).await.unwrap();

    let recorder = Recorder::new("recorder", wanted.clone(), 0);
    let stop = CancellationToken::new();
    let run = tokio::spawn(bus.consume(
        recorder.clone(),
        &[stream.spec.name.as_str()],
        ConsumerMode::Shared,
        stop.clone(),
    ));
    wait_drained(&bus, &stream.spec.name, "recorder").await;
    stop.cancel();
    run.await.unwrap();

    let expected: Vec<Uuid> = batch
        .iter()
        .filter(|e| e.event_type == wanted)
        .map(|e| e.id)
        .collect();
    assert_eq!(recorder.ids(), expected);
    // What arrived is exactly what was published, field for field.
    assert_eq!(recorder.applied.lock().unwrap()[0], batch[0]);
    stream.remove(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_twice_is_stored_once() {
    let Some(url) = nats_url("an_event_published_twice_is_stored_once") else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let first = envelope(&stream.event_type("happened"), 1);
    let second = envelope(&stream.event_type("happened"), 2);

    bus.publish(&first).await.unwrap();
    bus.publish_batch(&[first.clone(), second.clone(), first.clone()])
        .await
        .unwrap();
    bus.publish(&second).await.unwrap();

    assert_eq!(stream.stored(&bus).await, 2);
    stream.remove(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_type_no_stream_holds_is_refused() {
    let Some(url) = nats_url("an_event_of_a_type_no_stream_holds_is_refused") else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let stray = envelope(&format!("{}x.happened", stream.prefix), 1);

    let refused = bus.publish(&stray).await.unwrap_err();

    assert!(
        matches!(refused, emporium_bus::BusError::Publish { event_id, .. } if event_id == stray.id)
    );
    stream.remove(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_consumer_split_the_events_and_separate_ones_each_get_all() {
    let Some(url) =
        nats_url("instances_sharing_a_consumer_split_the_events_and_separate_ones_each_get_all")
    else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let wanted = stream.event_type("happened");
    let stop = CancellationToken::new();
    let names = [stream.spec.name.as_str()];
    let shared: Vec<Arc<Recorder>> = (0..2)
        .map(|_| Recorder::new("projection", wanted.clone(), 0))
        .collect();
    let each: Vec<Arc<Recorder>> = (0..2)
        .map(|_| Recorder::new("cache", wanted.clone(), 0))
        .collect();
    let mut runs = Vec::new();
    for recorder in &shared {
        runs.push(tokio::spawn(bus.consume(
            recorder.clone(),
            &names,
            ConsumerMode::Shared,
            stop.clone(),
        )));
    }
    for (i, recorder) in each.iter().enumerate() {
        let mode = ConsumerMode::EachInstance {
            instance: format!("instance{i}"),
        };
        runs.push(tokio::spawn(bus.consume(
            recorder.clone(),
            &names,
            mode,
            stop.clone(),
        )));
    }
    let events: Vec<Envelope> = (1..=300).map(|n| envelope(&wanted, n)).collect();
    for chunk in events.chunks(50) {
        bus.publish_batch(chunk).await.unwrap();
    }

    wait_drained(&bus, &stream.spec.name, "projection").await;
    wait_drained(&bus, &stream.spec.name, "cache-instance0").await;
    wait_drained(&bus, &stream.spec.name, "cache-instance1").await;
    stop.cancel();
    for run in runs {
        run.await.unwrap();
    }

    let all: std::collections::BTreeSet<Uuid> = events.iter().map(|e| e.id).collect();
    let mut split: Vec<Uuid> = shared.iter().flat_map(|r| r.ids()).collect();
    assert_eq!(
        split.len(),
        all.len(),
        "each event once over the shared pair"
    );
    split.sort();
    assert!(split.iter().copied().eq(all.iter().copied()));
    for recorder in &each {
        let ids = recorder.ids();
        assert_eq!(ids.len(), all.len());
        assert!(ids.iter().all(|id| all.contains(id)));
    }
    stream.remove(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_handler_refuses_comes_again_and_nothing_is_lost() {
    let Some(url) = nats_url("a_batch_the_handler_refuses_comes_again_and_nothing_is_lost") else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let wanted = stream.event_type("happened");
    let events: Vec<Envelope> = (1..=40).map(|n| envelope(&wanted, n)).collect();
    bus.publish_batch(&events).await.unwrap();
    let recorder = Recorder::new("flaky", wanted, 2);
    let stop = CancellationToken::new();
    let run = tokio::spawn(bus.consume(
        recorder.clone(),
        &[stream.spec.name.as_str()],
        ConsumerMode::Shared,
        stop.clone(),
    ));

    wait_drained(&bus, &stream.spec.name, "flaky").await;
    stop.cancel();
    run.await.unwrap();

    assert!(recorder.calls.load(Ordering::SeqCst) >= 3);
    let expected: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(recorder.ids(), expected);
    stream.remove(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_an_envelope_is_dropped_and_does_not_block_the_stream() {
    let Some(url) =
        nats_url("a_message_that_is_not_an_envelope_is_dropped_and_does_not_block_the_stream")
    else {
        return;
    };
    let stream = TestStream::new();
    let bus = stream.connect(&url).await;
    let wanted = stream.event_type("happened");
    let before = envelope(&wanted, 1);
    let after = envelope(&wanted, 2);
    bus.publish(&before).await.unwrap();
    bus.jetstream()
        .publish(
            emporium_bus::subject_for(&wanted),
            bytes::Bytes::from_static(b"{not json"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    bus.publish(&after).await.unwrap();
    let recorder = Recorder::new("strict", wanted, 0);
    let stop = CancellationToken::new();
    let run = tokio::spawn(bus.consume(
        recorder.clone(),
        &[stream.spec.name.as_str()],
        ConsumerMode::Shared,
        stop.clone(),
    ));

    wait_drained(&bus, &stream.spec.name, "strict").await;
    stop.cancel();
    run.await.unwrap();

    assert_eq!(recorder.ids(), [before.id, after.id]);
    stream.remove(&bus).await;
}

// The outage: outbox → relay → NATS → consumer with an inbox, across a killed server.

/// A payload for the outage test; its type falls in the standard `EMPORIUM_INVENTORY` stream.
#[derive(serde::Serialize)]
struct Counted {
    n: i64,
}

impl Event for Counted {
    const TYPE: &'static str = "inventory.counted";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        format!("cnt_{}", self.n)
    }
}

/// The consumer's table: one row per application of an event. No key, so an event applied
/// twice would show as two rows.
const APPLIED: &[Migration] = &[Migration {
    version: 20990101000000,
    description: "applied events (test)",
    sqlite: "CREATE TABLE applied (event_id TEXT NOT NULL);",
    postgres: "CREATE TABLE applied (event_id UUID NOT NULL);",
}];

/// Applies each new event once: the inbox row and the effect commit together.
struct Applier {
    db: Db,
}

#[async_trait::async_trait]
impl EventHandler for Applier {
    fn name(&self) -> &'static str {
        "applier"
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == Counted::TYPE
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[envelope]).await
    }

    async fn handle_batch(&self, envelopes: &[&Envelope]) -> Result<(), HandlerError> {
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.id).collect();
        let fresh =
            emporium_db::mark_all_handled(&mut tx, self.name(), &ids, OffsetDateTime::now_utc())
                .await?;
        for (id, new) in ids.iter().zip(fresh) {
            if new {
                Sql::statement(
                    "INSERT INTO applied (event_id) VALUES ($1)",
                    vec![Arg::Uuid(*id)],
                )
                .execute(&mut tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Rows in `applied`, and distinct event ids among them.
async fn applied(db: &Db) -> (i64, i64) {
    let mut conn = db.read().await.unwrap();
    let rows: Vec<(i64, i64)> = Sql::statement(
        "SELECT count(*), count(DISTINCT event_id) FROM applied",
        vec![],
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows[0]
}

async fn record_event(db: &Db, n: i64) {
    let mut tx = db.begin_write().await.unwrap();
    tx.record(&Counted { n }, 1, OffsetDateTime::now_utc())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// A `nats-server` of the test's own, killed by its PID when dropped.
struct OwnServer {
    child: Child,
}

impl OwnServer {
    fn start(port: u16, store: &std::path::Path) -> Self {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on the PATH");
        Self { child }
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects once the server takes connections (it needs a moment to start).
async fn connect_when_up(url: &str, streams: &[StreamSpec]) -> NatsEvents {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match NatsEvents::connect(url, streams).await {
            Ok(bus) => return bus,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not come up: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_while_nats_is_down_are_delivered_and_applied_once_after_it_returns() {
    // Needs the nats-server binary rather than a URL; it follows the shared server's switch.
    if nats_url("events_written_while_nats_is_down_are_delivered_and_applied_once_after_it_returns")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("jetstream");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let server = OwnServer::start(port, &store);
    let db = Db::connect(&DbOptions {
        url: format!("sqlite:{}", dir.path().join("t.db").display()),
        max_connections: 4,
        sqlite_synchronous_full: false,
        acquire_timeout: Duration::from_secs(60),
        sqlite_writer_cache_mib: 4,
        sqlite_checkpoint_mib: 40,
    })
    .await
    .unwrap();
    db.migrate(&[emporium_db::MIGRATIONS, APPLIED])
        .await
        .unwrap();
    let streams = emporium_bus::group_streams();
    let bus = connect_when_up(&url, &streams).await;
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(
        db.clone(),
        Arc::new(bus.clone()),
        Arc::new(SystemClock),
        CrashPoints::default(),
    );
    let relay = tokio::spawn(relay.run(Duration::from_millis(200), stop.clone()));
    let consumer = tokio::spawn(bus.consume(
        Arc::new(Applier { db: db.clone() }),
        &["EMPORIUM_INVENTORY"],
        ConsumerMode::Shared,
        stop.clone(),
    ));
    for n in 1..=40 {
        record_event(&db, n).await;
    }
    wait_until(
        "the first events are applied",
        Duration::from_secs(30),
        || async { applied(&db).await.0 == 40 },
    )
    .await;

    server.kill();
    // The outage lasts as long as these writes: 50 events over about ten seconds.
    for n in 41..=90 {
        record_event(&db, n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing can be acknowledged by a dead server: every new event waits in the outbox.
    assert_eq!(emporium_db::count_pending(&db).await.unwrap(), 50);
    assert_eq!(applied(&db).await, (40, 40));

    let server = OwnServer::start(port, &store);
    wait_until(
        "every event is applied",
        Duration::from_secs(90),
        || async {
            applied(&db).await.0 >= 90 && emporium_db::count_pending(&db).await.unwrap() == 0
        },
    )
    .await;
    wait_drained(&bus, "EMPORIUM_INVENTORY", "applier").await;
    stop.cancel();
    relay.await.unwrap();
    consumer.await.unwrap();

    assert_eq!(
        applied(&db).await,
        (90, 90),
        "each event applied exactly once"
    );
    drop(server);
}
