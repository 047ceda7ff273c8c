-- Money movements on an intent (capture, void, refund), each recorded before its provider call
-- and settled after it. `key` is the caller's idempotency key, sent to the provider: a call
-- retried after a lost answer or a crash moves the money once. An intent has at most one
-- operation in flight (`payment_intents.operation`), claimed by a conditional update, so two
-- concurrent captures or refunds never both reach the provider.
-- status: pending -> succeeded | refused.
CREATE TABLE payment_operations (
    key        TEXT PRIMARY KEY,
    payment_id UUID NOT NULL REFERENCES payment_intents (id),
    kind       TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    status     TEXT NOT NULL,
    failure    TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_operations_pending ON payment_operations (created_at)
    WHERE status = 'pending';

-- The key of the operation in flight, if any.
ALTER TABLE payment_intents ADD COLUMN operation TEXT;
