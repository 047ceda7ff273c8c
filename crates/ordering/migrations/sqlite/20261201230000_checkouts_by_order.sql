-- The checkout of an order: what restocks a cancelled one. A database migrated while this index
-- sat in 20261126000600_one_checkout_per_cart has it already, hence IF NOT EXISTS.
CREATE INDEX IF NOT EXISTS checkouts_order ON checkouts (order_id);
