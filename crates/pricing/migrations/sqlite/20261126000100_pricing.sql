-- Pricing rules other than coupons: price lists, promotions, tax rates and shipping options, one
-- row each. `body` is the rule as JSON (the shapes of `emporium_pricing::rules`): a quote reads
-- them all at once, and nothing queries inside them. `unique_key` is what must be unique within a
-- kind (a tax rate's region), NULL where nothing is.
CREATE TABLE pricing_rules (
    id         BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    unique_key TEXT,
    body       TEXT NOT NULL,
    -- Bumped by every change; the ETag and the sequence of the rule's events.
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (kind, unique_key)
);
CREATE INDEX pricing_rules_kind ON pricing_rules (kind, id);

-- Coupon codes, each unlocking one promotion. `code` is stored upper-case (codes match whatever
-- the case typed). `used` counts redemptions; the CHECK makes over-redeeming impossible even for
-- a statement that forgets its condition.
CREATE TABLE pricing_coupons (
    id                 BLOB PRIMARY KEY,
    code               TEXT NOT NULL UNIQUE,
    promotion_id       BLOB NOT NULL,
    usage_limit        INTEGER CHECK (usage_limit IS NULL OR usage_limit >= 0),
    per_customer_limit INTEGER CHECK (per_customer_limit IS NULL OR per_customer_limit >= 0),
    used               INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    version            INTEGER NOT NULL DEFAULT 1,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK (usage_limit IS NULL OR used <= usage_limit)
);

-- One row per redemption: which checkout (`reference`) used the coupon, and for whom
-- (`customer_key`: a customer id, or a guest's e-mail), for the per-customer limit.
CREATE TABLE pricing_coupon_redemptions (
    coupon_id    BLOB NOT NULL REFERENCES pricing_coupons (id) ON DELETE CASCADE,
    reference    TEXT NOT NULL,
    customer_key TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (coupon_id, reference)
);
CREATE INDEX pricing_coupon_redemptions_customer
    ON pricing_coupon_redemptions (coupon_id, customer_key);
