-- Shoppers. `email` is stored normalised (trimmed, lower-case), so the unique index is the rule.
CREATE TABLE customers (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Back-office users; a role each (owner > admin > staff).
CREATE TABLE staff_users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'staff')),
    -- Bumped by every change; the sequence of the user's events.
    version       BIGINT NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Machine clients of the client-credentials grant. The secret is random (256 bits) and kept as
-- its SHA-256 only; it is shown once, at creation.
CREATE TABLE api_clients (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    -- Space-separated granted scopes.
    scopes      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- A login session: every refresh token descending from one password grant. Revoking the family
-- (logout, or reuse of a rotated token) kills every refresh token in it.
CREATE TABLE token_families (
    id         BLOB PRIMARY KEY,
    subject    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Refresh tokens, kept as SHA-256 of the random token. A token is usable once: rotation sets
-- `used_at`, and presenting a used token revokes its family.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    family_id  BLOB NOT NULL REFERENCES token_families (id),
    subject    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
