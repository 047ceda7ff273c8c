-- Webhook endpoints staff register. The secret signs deliveries, so it is kept as given (a
-- `whsec_` string); during a rotation the previous one signs too until `previous_expires_at`.
CREATE TABLE webhook_endpoints (
    id                  UUID PRIMARY KEY,
    url                 TEXT NOT NULL,
    description         TEXT NOT NULL,
    -- JSON array of event types or patterns (`order.*`, `*`).
    event_types         TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL,
    -- Why the store turned it off (`failing`), or NULL.
    disabled_reason     TEXT,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_expires_at TIMESTAMPTZ,
    -- First failure since the last success; NULL while it succeeds.
    failing_since       TIMESTAMPTZ,
    version             BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- The body of each event's deliveries, written once however many endpoints receive it.
CREATE TABLE webhook_messages (
    event_id   UUID PRIMARY KEY,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- One event for one endpoint: its state, and its last attempt. The id is the
-- `webhook-id` every attempt of it carries.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    aggregate_id     TEXT NOT NULL,
    -- `pending`, `succeeded` or `failed` (every attempt spent: the dead letter).
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    -- `attempts` when it was last replayed: the retry schedule starts again from there.
    replayed_after   BIGINT NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    -- A worker holds it until then; another may take it after.
    lease_until      TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    last_status_code BIGINT,
    last_duration_ms BIGINT,
    last_error       TEXT,
    last_response    TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

-- Every failed attempt, for the staff's view of a delivery (a success is the delivery's last
-- attempt, kept on its row).
CREATE TABLE webhook_attempts (
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    status_code  BIGINT,
    duration_ms  BIGINT NOT NULL,
    error        TEXT,
    response     TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- E-mails composed from events, sent by the mailer with retries.
CREATE TABLE email_messages (
    id              UUID PRIMARY KEY,
    event_id        UUID NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    -- `pending`, `sent` or `failed`.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, kind, recipient)
);
CREATE INDEX email_messages_due ON email_messages (status, next_attempt_at);

-- Variants known to be below the low-stock threshold, so staff hear of each crossing once.
CREATE TABLE notify_low_stock (
    variant_id UUID PRIMARY KEY,
    since      TIMESTAMPTZ NOT NULL
);
