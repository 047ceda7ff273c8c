-- Journal positions: a number that only grows, in the order events were recorded, so a reader
-- (the search projection) can follow the journal from where it left off.
ALTER TABLE event_journal ADD COLUMN position BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX event_journal_position ON event_journal (position);
