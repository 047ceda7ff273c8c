-- One row per checkout attempt: the saga's state, persisted after each step, and the answer
-- given, so the same Idempotency-Key gets the same answer. `request_hash` is the SHA-256 of the
-- request body: the same key with another body is refused.
-- States: started -> reserved -> redeemed -> authorized -> placed -> completed, or -> failed
-- after compensation.
CREATE TABLE checkouts (
    id              UUID PRIMARY KEY,
    cart_id         UUID NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    -- Who ran it: the SHA-256 of the cart token, or `customer:` and the customer's id. A
    -- replay must come from the same caller.
    caller          TEXT NOT NULL,
    state           TEXT NOT NULL,
    reservation_id  UUID,
    coupon_ids      TEXT NOT NULL DEFAULT '[]',
    payment_id      UUID,
    order_id        UUID,
    response_status BIGINT,
    response_body   TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (cart_id, idempotency_key)
);
CREATE INDEX checkouts_unfinished ON checkouts (created_at)
    WHERE state NOT IN ('completed', 'failed');

-- The truth about orders: an append-only stream of events per order.
CREATE TABLE order_events (
    order_id    UUID NOT NULL,
    sequence    BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    data        TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, sequence)
);

-- The SHA-256 of each order's token, with which a guest reads their order. Written once at
-- placement and never derived, so a rebuild of the projection keeps it.
CREATE TABLE order_access (
    order_id   UUID PRIMARY KEY,
    token_hash TEXT NOT NULL
);

-- The order as the API reads it: a projection of `order_events`, rebuilt by
-- `emporium orders rebuild-projections`. `document` is the order as shown.
CREATE TABLE orders (
    id          UUID PRIMARY KEY,
    customer_id TEXT,
    status      TEXT NOT NULL,
    document    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_created ON orders (created_at, id);
