-- Reservations by what they are for: a checkout that resumes after a crash finds the hold it
-- made before it could record its id.
CREATE INDEX reservations_reference ON reservations (reference);
