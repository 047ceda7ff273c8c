-- Shoppers. `email` is stored normalised (trimmed, lower-case), so the unique index is the rule.
CREATE TABLE customers (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Back-office users; a role each (owner > admin > staff).
CREATE TABLE staff_users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'staff')),
    -- Bumped by every change; the sequence of the user's events.
    version       BIGINT NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Machine clients of the client-credentials grant. The secret is random (256 bits) and kept as
-- its SHA-256 only; it is shown once, at creation.
CREATE TABLE api_clients (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    -- Space-separated granted scopes.
    scopes      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- A login session: every refresh token descending from one password grant. Revoking the family
-- (logout, or reuse of a rotated token) kills every refresh token in it.
CREATE TABLE token_families (
    id         UUID PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Refresh tokens, kept as SHA-256 of the random token. A token is usable once: rotation sets
-- `used_at`, and presenting a used token revokes its family.
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    family_id  UUID NOT NULL REFERENCES token_families (id),
    subject    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
