-- Payment intents: one amount a checkout asks a provider to authorise, then captures, voids or
-- refunds. `reference` names what it pays for (a checkout); one intent per reference, so a
-- retried authorisation finds the first. Status moves only by conditional updates:
-- pending -> authorized | declined | failed; authorized -> captured | voided;
-- captured -> refunded (by parts). `failed` means the provider's answer was lost: the intent may
-- be authorised at the provider, so compensation voids it.
CREATE TABLE payment_intents (
    id                 BLOB PRIMARY KEY,
    reference          TEXT NOT NULL UNIQUE,
    provider           TEXT NOT NULL,
    amount             INTEGER NOT NULL CHECK (amount >= 0),
    currency           TEXT NOT NULL,
    status             TEXT NOT NULL,
    provider_reference TEXT,
    failure_code       TEXT,
    captured_amount    INTEGER NOT NULL DEFAULT 0 CHECK (captured_amount >= 0),
    refunded_amount    INTEGER NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    version            INTEGER NOT NULL DEFAULT 1,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK (captured_amount <= amount),
    CHECK (refunded_amount <= captured_amount)
);
