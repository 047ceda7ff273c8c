//! The event journal: a consumer that records every delivered event once, and the staff route
//! that reads it (`GET /v1/admin/events`). It is the first consumer of the bus and the audit trail
//! of the store.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use emporium_bus::{EventHandler, HandlerError};
use emporium_db::{Arg, Db, run};
use emporium_http::admin::AdminRule;
use emporium_http::{ApiError, Query};
use emporium_kernel::auth::Role;
use emporium_kernel::{Clock, Cursor, Envelope};
use emporium_search::{EventFeed, FeedError};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The journal's schema.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261123000200,
        description: "event journal",
        sqlite: include_str!("../migrations/sqlite/20261123000200_event_journal.sql"),
        postgres: include_str!("../migrations/postgres/20261123000200_event_journal.sql"),
    },
    emporium_db::Migration {
        version: 20261125000100,
        description: "event journal positions",
        sqlite: include_str!("../migrations/sqlite/20261125000100_event_journal_position.sql"),
        postgres: include_str!("../migrations/postgres/20261125000100_event_journal_position.sql"),
    },
];

/// Who may read the journal.
pub const ADMIN_RULES: &[AdminRule] = &[AdminRule::staff_or_client(
    "GET",
    "/v1/admin/events",
    Role::Admin,
    "events:read",
)];

/// Consumer name in the inbox; never change it.
const CONSUMER: &str = "event_journal";

/// Records each event in `event_journal`, exactly once per event id, at the next position.
pub struct JournalConsumer {
    db: Db,
    clock: Arc<dyn Clock>,
    recorded: Arc<Notify>,
    name: &'static str,
}

impl JournalConsumer {
    /// A consumer writing to `db`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            recorded: Arc::new(Notify::new()),
            name: CONSUMER,
        }
    }

    /// The same consumer under another name: a journal of its own beside the store's (the one
    /// a search process keeps in its database), which must not share the store's NATS
    /// consumer. Never change a name once used.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// A feed over the journal this consumer writes, woken by each event it records.
    pub fn feed(&self) -> JournalFeed {
        JournalFeed {
            db: self.db.clone(),
            recorded: self.recorded.clone(),
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for JournalConsumer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[e]).await
    }

    /// Records the batch in one transaction, in order, skipping events recorded before: a few
    /// multi-row statements whatever the batch's size.
    async fn handle_batch(&self, events: &[&Envelope]) -> Result<(), HandlerError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let fresh = emporium_db::mark_all_handled(&mut tx, self.name, &ids, now).await?;
        let mut rows = Vec::with_capacity(events.len());
        // Handled before: a redelivery has no second effect.
        for (e, _) in events.iter().zip(fresh).filter(|(_, new)| *new) {
            rows.push(vec![
                Arg::Uuid(e.id),
                Arg::Text(e.event_type.clone()),
                Arg::Int32(e.version),
                Arg::Text(e.aggregate_id.clone()),
                Arg::Int(e.sequence),
                Arg::Time(e.occurred_at),
                Arg::OptText(e.trace.clone()),
                Arg::Text(serde_json::to_string(&e.data)?),
                Arg::Time(now),
            ]);
        }
        emporium_db::insert_rows(
            &mut tx,
            "INSERT INTO event_journal (event_id, event_type, version, aggregate_id, sequence, \
             occurred_at, trace, data, recorded_at) VALUES",
            "",
            rows,
        )
        .await?;
        tx.commit().await?;
        // One stored permit: a reader that was not waiting yet still sees it on its next wait.
        self.recorded.notify_one();
        Ok(())
    }
}

/// The journal read in position order: the feed the search index is projected from.
///
/// Positions follow the order the consumer recorded events in. The consumer records one batch
/// at a time per process (its rows numbered in order by one statement), so a position is never
/// committed after a higher one.
pub struct JournalFeed {
    db: Db,
    recorded: Arc<Notify>,
}

impl JournalFeed {
    /// A feed over `db`'s journal that learns of new events only by its `wait` timeout (for
    /// tools that run without the consumer).
    pub fn polling(db: Db) -> Self {
        Self {
            db,
            recorded: Arc::new(Notify::new()),
        }
    }
}

#[async_trait::async_trait]
impl EventFeed for JournalFeed {
    async fn read_after(
        &self,
        position: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Envelope)>, FeedError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read_positioned(&self.db, position, limit)
            .await
            .map_err(FeedError::new)
    }

    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.recorded.notified()).await;
    }
}

/// Query of the journal.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JournalQuery {
    /// Only events of this type, e.g. `customer.registered`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only events of this aggregate, e.g. `cus_…`.
    pub aggregate_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// One recorded event.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JournalEntry {
    /// The event envelope as delivered.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub event: Envelope,
}

/// A page of journal entries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JournalPage {
    pub items: Vec<JournalEntry>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Lists delivered events, newest first.
#[utoipa::path(get, path = "/v1/admin/events", operation_id = "listAdminEvents", tag = "admin", params(JournalQuery),
    responses(
        (status = 200, description = "A page of events", body = JournalPage),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
async fn list_events(
    State(db): State<Db>,
    Query(q): Query<JournalQuery>,
) -> Result<axum::Json<JournalPage>, ApiError> {
    let limit = emporium_kernel::cursor::page_limit(q.limit, 50, 200)
        .map_err(|e| ApiError::validation(vec![e]))?;
    let before = match q.cursor.as_deref() {
        Some(c) => Cursor::decode::<Uuid>(c).map_err(|e| ApiError::validation(vec![e]))?,
        None => Uuid::max(),
    };
    let rows = read_journal(
        &db,
        before,
        q.event_type.as_deref().unwrap_or_default(),
        q.aggregate_id.as_deref().unwrap_or_default(),
        limit,
    )
    .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| Cursor::encode(&e.id).into_string()))
        .flatten();
    Ok(axum::Json(JournalPage {
        items: rows
            .into_iter()
            .map(|event| JournalEntry { event })
            .collect(),
        next_cursor,
    }))
}

/// Up to `limit` journal entries above `position`, in position order.
async fn read_positioned(
    db: &Db,
    position: i64,
    limit: i64,
) -> Result<Vec<(i64, Envelope)>, emporium_db::DbError> {
    let mut conn = db.read().await?;
    run!(&mut conn, |c| {
        let rows = sqlx::query(
            "SELECT position, event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data \
             FROM event_journal WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(position)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("position")?, emporium_db::envelope_from_row(r)?)))
            .collect()
    })
}

/// Journal entries older than `before`, newest first; empty filters match everything.
///
/// Each combination of filters has a statement of its own, so that each can use its index: an
/// `($n = '' OR column = $n)` condition would make both engines scan the whole journal.
async fn read_journal(
    db: &Db,
    before: Uuid,
    event_type: &str,
    aggregate_id: &str,
    limit: i64,
) -> Result<Vec<Envelope>, emporium_db::DbError> {
    // The aggregate's own events (a few) through `event_journal_aggregate`, a type's through
    // `event_journal_type`, everything through the event id's index.
    let sql = match (aggregate_id.is_empty(), event_type.is_empty()) {
        (true, true) => concat!(
            "SELECT event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data ",
            "FROM event_journal WHERE event_id < $1 ORDER BY event_id DESC LIMIT $2"
        ),
        (false, true) => concat!(
            "SELECT event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data ",
            "FROM event_journal WHERE event_id < $1 AND aggregate_id = $3 ",
            "ORDER BY event_id DESC LIMIT $2"
        ),
        (true, false) => concat!(
            "SELECT event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data ",
            "FROM event_journal WHERE event_id < $1 AND event_type = $3 ",
            "ORDER BY event_id DESC LIMIT $2"
        ),
        (false, false) => concat!(
            "SELECT event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data ",
            // `|| ''` keeps the planner on the aggregate's index, not the whole type's.
            "FROM event_journal WHERE event_id < $1 AND aggregate_id = $3 AND event_type || '' = $4 ",
            "ORDER BY event_id DESC LIMIT $2"
        ),
    };
    let mut conn = db.read().await?;
    run!(&mut conn, |c| {
        let mut query = sqlx::query(sql).bind(before).bind(limit);
        for filter in [aggregate_id, event_type] {
            if !filter.is_empty() {
                query = query.bind(filter);
            }
        }
        let rows = query.fetch_all(c).await?;
        rows.iter().map(emporium_db::envelope_from_row).collect()
    })
}

/// The journal route, bound to `db`.
pub fn router(db: Db) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .with_state(db)
}
