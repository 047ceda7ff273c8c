-- Journal positions: a number that only grows, in the order events were recorded, so a reader
-- (the search projection) can follow the journal from where it left off.
CREATE TABLE event_journal_positioned (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     BLOB NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    aggregate_id TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    occurred_at  TEXT NOT NULL,
    trace        TEXT,
    data         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
INSERT INTO event_journal_positioned
    (event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data, recorded_at)
SELECT event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data, recorded_at
FROM event_journal ORDER BY rowid;
DROP TABLE event_journal;
ALTER TABLE event_journal_positioned RENAME TO event_journal;
CREATE INDEX event_journal_aggregate ON event_journal (aggregate_id, sequence);
CREATE INDEX event_journal_type ON event_journal (event_type, event_id);
