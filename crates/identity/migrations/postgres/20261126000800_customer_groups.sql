-- A customer's groups (price lists and promotions may be for a group): a JSON array of names,
-- sorted and unique. `version` is bumped by every change: the sequence of the customer's events
-- (`customer.registered` is 1).
ALTER TABLE customers ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE customers ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
