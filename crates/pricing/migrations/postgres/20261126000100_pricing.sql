-- Pricing rules other than coupons: price lists, promotions, tax rates and shipping options, one
-- row each. `body` is the rule as JSON (the shapes of `emporium_pricing::rules`): a quote reads
-- them all at once, and nothing queries inside them. `unique_key` is what must be unique within a
-- kind (a tax rate's region), NULL where nothing is.
CREATE TABLE pricing_rules (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL,
    unique_key TEXT,
    body       TEXT NOT NULL,
    -- Bumped by every change; the ETag and the sequence of the rule's events.
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (kind, unique_key)
);
CREATE INDEX pricing_rules_kind ON pricing_rules (kind, id);

-- Coupon codes, each unlocking one promotion. `code` is stored upper-case (codes match whatever
-- the case typed). `used` counts redemptions; the CHECK makes over-redeeming impossible even for
-- a statement that forgets its condition.
CREATE TABLE pricing_coupons (
    id                 UUID PRIMARY KEY,
    code               TEXT NOT NULL UNIQUE,
    promotion_id       UUID NOT NULL,
    usage_limit        BIGINT CHECK (usage_limit IS NULL OR usage_limit >= 0),
    per_customer_limit BIGINT CHECK (per_customer_limit IS NULL OR per_customer_limit >= 0),
    used               BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CHECK (usage_limit IS NULL OR used <= usage_limit)
);

-- One row per redemption: which checkout (`reference`) used the coupon, and for whom
-- (`customer_key`: a customer id, or a guest's e-mail), for the per-customer limit.
CREATE TABLE pricing_coupon_redemptions (
    coupon_id    UUID NOT NULL REFERENCES pricing_coupons (id) ON DELETE CASCADE,
    reference    TEXT NOT NULL,
    customer_key TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (coupon_id, reference)
);
CREATE INDEX pricing_coupon_redemptions_customer
    ON pricing_coupon_redemptions (coupon_id, customer_key);
