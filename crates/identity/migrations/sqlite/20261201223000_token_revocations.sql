-- Ending a principal's access tokens before they expire (password change, demotion, deletion,
-- revocation of an API client). Each principal has a token generation, 0 until its first row
-- here; every access token and login session carries the generation it was issued under, and
-- one below the principal's generation is refused. Keyed by the token subject (`cus_…`, `usr_…`,
-- `cli_…`) rather than kept on the principal's row, so the row of a deleted staff user outlives
-- it. `revoked_at` is when the generation last moved: verifiers re-read the rows it says changed.
CREATE TABLE token_revocations (
    subject    TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    revoked_at TEXT NOT NULL
);
CREATE INDEX token_revocations_revoked_at ON token_revocations (revoked_at);

-- The generation a login session was opened under: a refresh refuses a session older than its
-- principal's generation (one opened while the generation moved).
ALTER TABLE token_families ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
-- Ending every session of a principal at once.
CREATE INDEX token_families_subject ON token_families (subject);
