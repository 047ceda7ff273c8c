-- When the order's capture, cancellation or refund was requested and not yet settled with the
-- payment (`order.payment_requested` without its outcome); NULL otherwise. Part of the
-- projection: what the settler looks for after a crash or a lost answer.
ALTER TABLE orders ADD COLUMN payment_pending_since TIMESTAMPTZ;
CREATE INDEX orders_payment_pending ON orders (payment_pending_since)
    WHERE payment_pending_since IS NOT NULL;
