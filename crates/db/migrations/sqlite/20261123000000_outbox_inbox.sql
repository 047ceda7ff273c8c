-- The transactional outbox: a domain event is inserted here in the same transaction as the change
-- it describes, and a relay moves committed rows to the bus. `position` orders delivery.
CREATE TABLE outbox (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     BLOB NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    aggregate_id TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    occurred_at  TEXT NOT NULL,
    trace        TEXT,
    data         TEXT NOT NULL,
    -- NULL until the bus has accepted the event.
    published_at TEXT
);
CREATE INDEX outbox_pending ON outbox (position) WHERE published_at IS NULL;

-- The inbox: one row per (consumer, event) handled, written in the consumer's own transaction, so
-- a redelivered event has no second effect.
CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    event_id   BLOB NOT NULL,
    handled_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
