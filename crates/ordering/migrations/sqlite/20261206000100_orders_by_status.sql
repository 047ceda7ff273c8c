-- Staff list orders of one status newest first: this index serves that filter directly
-- instead of walking every order by date until enough of that status turn up.
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, created_at, id);
