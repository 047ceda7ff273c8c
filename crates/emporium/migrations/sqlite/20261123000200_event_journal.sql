-- The event journal: every domain event delivered by the bus, recorded once (inbox-deduplicated)
-- for audit and replay. A projection: rebuildable from the outbox.
CREATE TABLE event_journal (
    event_id     BLOB PRIMARY KEY,
    event_type   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    aggregate_id TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    occurred_at  TEXT NOT NULL,
    trace        TEXT,
    data         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX event_journal_aggregate ON event_journal (aggregate_id, sequence);
CREATE INDEX event_journal_type ON event_journal (event_type, event_id);
