-- The category tree. `path` lists the ids from the root down to the category itself, as
-- '/<hex>/<hex>/', so a subtree is one indexed prefix match.
CREATE TABLE categories (
    id          UUID PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parent_id   UUID REFERENCES categories (id),
    position    BIGINT NOT NULL DEFAULT 0,
    path        TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX categories_path ON categories (path);
CREATE INDEX categories_parent ON categories (parent_id, position);

CREATE TABLE collections (
    id          UUID PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version     BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Products. The normalised tables below hold the rules (unique SKUs, links, prices); `document`
-- is the whole product as the API shows it, rewritten in the same transaction as every change,
-- so a read is one row.
CREATE TABLE products (
    id           UUID PRIMARY KEY,
    handle       TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    options      TEXT NOT NULL DEFAULT '[]',
    attributes   TEXT NOT NULL DEFAULT '{}',
    -- Projected from inventory events: some variant has stock available.
    in_stock     BOOLEAN NOT NULL DEFAULT FALSE,
    document     TEXT NOT NULL DEFAULT '{}',
    version      BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX products_newest ON products (status, published_at DESC, id DESC);
CREATE INDEX products_title ON products (status, title, id);
CREATE INDEX products_admin ON products (id DESC);

CREATE TABLE product_variants (
    id           UUID PRIMARY KEY,
    product_id   UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku          TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    options      TEXT NOT NULL DEFAULT '{}',
    weight_grams BIGINT NOT NULL DEFAULT 0 CHECK (weight_grams >= 0),
    position     BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX product_variants_product ON product_variants (product_id, position);

CREATE TABLE variant_prices (
    variant_id UUID NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    currency   TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (variant_id, currency)
);

-- The cheapest and dearest variant of each product per currency: the price filter and sort.
CREATE TABLE product_prices (
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    currency   TEXT NOT NULL,
    min_amount BIGINT NOT NULL,
    max_amount BIGINT NOT NULL,
    PRIMARY KEY (product_id, currency)
);
CREATE INDEX product_prices_sort ON product_prices (currency, min_amount, product_id);

CREATE TABLE product_categories (
    product_id  UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    category_id UUID NOT NULL REFERENCES categories (id),
    PRIMARY KEY (product_id, category_id)
);
CREATE INDEX product_categories_category ON product_categories (category_id, product_id);

CREATE TABLE product_collections (
    product_id    UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    collection_id UUID NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    PRIMARY KEY (product_id, collection_id)
);
CREATE INDEX product_collections_collection ON product_collections (collection_id, product_id);

-- Files in object storage attached to a product.
CREATE TABLE product_media (
    id           UUID PRIMARY KEY,
    product_id   UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    object_key   TEXT NOT NULL UNIQUE,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    alt          TEXT NOT NULL DEFAULT '',
    position     BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX product_media_product ON product_media (product_id, position);

-- Availability per variant, projected from `inventory.stock_changed`; no link to the variant
-- table because stock may be reported before (or after) the variant exists here.
CREATE TABLE catalog_variant_stock (
    variant_id UUID PRIMARY KEY,
    available  BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
