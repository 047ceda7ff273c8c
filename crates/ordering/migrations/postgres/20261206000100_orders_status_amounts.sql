-- Staff list orders of one status newest first: this index serves that filter directly
-- instead of walking every order by date until enough of that status turn up.
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, created_at, id);

-- The order's currency and what it took net of refunds, beside its document, so the staff's
-- summary of a period sums them from an index without reading any document.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS currency TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS net_total BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET
    currency = COALESCE(document::jsonb ->> 'currency', ''),
    net_total = COALESCE((document::jsonb ->> 'total')::BIGINT, 0)
        - COALESCE((document::jsonb ->> 'refunded_amount')::BIGINT, 0);
CREATE INDEX IF NOT EXISTS orders_summary ON orders (created_at, status, currency, net_total);
