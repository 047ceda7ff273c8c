-- Committed reservations whose units came back on hand (their order was cancelled): one row
-- each, written with the stock change, so a restock asked twice happens once.
CREATE TABLE reservation_restocks (
    reservation_id UUID PRIMARY KEY REFERENCES reservations (id),
    reference      TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
