-- Places stock is kept: warehouses, shops, a supplier's drop-ship stock. `code` is the short,
-- unique name staff type (`main-warehouse`).
CREATE TABLE stock_locations (
    id         UUID PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    -- Bumped by every change; the sequence of the location's events.
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Stock of one variant at one location. `variant_id` is the catalog's id: inventory keeps no copy
-- of the catalog. Available = on_hand - reserved; the CHECKs make overselling impossible even for a
-- statement that forgets its condition.
CREATE TABLE stock_levels (
    variant_id  UUID NOT NULL,
    location_id UUID NOT NULL REFERENCES stock_locations (id),
    on_hand     BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- Bumped by every change; the sequence of the level's `inventory.stock_changed` events.
    version     BIGINT NOT NULL DEFAULT 1,
    updated_at  TIMESTAMPTZ NOT NULL,
    CHECK (reserved <= on_hand),
    PRIMARY KEY (variant_id, location_id)
);

-- Every change of a stock level, append-only: what changed, by how much, why and by whom.
CREATE TABLE stock_ledger (
    id             UUID PRIMARY KEY,
    variant_id     UUID NOT NULL,
    location_id    UUID NOT NULL,
    delta_on_hand  BIGINT NOT NULL,
    delta_reserved BIGINT NOT NULL,
    on_hand_after  BIGINT NOT NULL,
    reserved_after BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    -- A staff subject (`usr_…`), `system`, or the reference of the reservation.
    actor          TEXT NOT NULL,
    reservation_id UUID,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_ledger_variant ON stock_ledger (variant_id, id);

-- Holds on stock for a checkout. Only an `active` reservation holds stock; the other states are
-- final. `expires_at` is stored in whole seconds (see the service).
CREATE TABLE reservations (
    id         UUID PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('active', 'committed', 'released', 'expired')),
    -- What the hold is for: a cart or order id.
    reference  TEXT NOT NULL,
    -- Bumped by every change; the sequence of the reservation's events.
    version    BIGINT NOT NULL DEFAULT 1,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- The expiry sweeper looks only at active reservations past their time.
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE status = 'active';

-- One line per variant of a reservation, with the location it was taken from.
CREATE TABLE reservation_lines (
    reservation_id UUID NOT NULL REFERENCES reservations (id),
    variant_id     UUID NOT NULL,
    location_id    UUID NOT NULL REFERENCES stock_locations (id),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, variant_id)
);
