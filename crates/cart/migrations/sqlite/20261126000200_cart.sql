-- Shopping carts. A guest proves a cart is theirs with its token, of which only the SHA-256 is
-- kept; a customer's cart also names the customer (`customer_id`, the token subject `cus_…`).
-- `shipping_address` is JSON; `coupon_codes` a JSON array of codes as typed.
CREATE TABLE carts (
    id                 BLOB PRIMARY KEY,
    token_hash         TEXT NOT NULL,
    customer_id        TEXT,
    currency           TEXT NOT NULL,
    email              TEXT,
    shipping_address   TEXT,
    shipping_option_id BLOB,
    coupon_codes       TEXT NOT NULL DEFAULT '[]',
    -- Bumped by every change.
    version            INTEGER NOT NULL DEFAULT 1,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX carts_customer ON carts (customer_id, updated_at);

-- One line per variant in a cart; adding the same variant again adds to its quantity.
CREATE TABLE cart_items (
    id         BLOB PRIMARY KEY,
    cart_id    BLOB NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    variant_id BLOB NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    created_at TEXT NOT NULL,
    UNIQUE (cart_id, variant_id)
);
