-- A cart is checked out once. At most one checkout per cart may be anything but failed: a
-- second Idempotency-Key for a cart that is being (or was) checked out is refused, where it
-- used to reserve, charge and place a second order. A failed checkout was undone, so the
-- shopper may try again under a new key.
CREATE UNIQUE INDEX checkouts_one_per_cart ON checkouts (cart_id) WHERE state <> 'failed';
