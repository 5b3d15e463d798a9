-- The tables of svc-kit's outbox and consumers, defined once for every
-- service (DESIGN.md §6). svc-kit's migrations run after the service's own,
-- and are numbered from 10001 so they never collide with them. Services made
-- before svc-kit shipped these created the same tables in their first
-- migrations (which, having run, are never edited): IF NOT EXISTS keeps those.

-- Events committed with the state change that caused them; the publisher
-- sends them with Nats-Msg-Id = event_id and sets sent_at on JetStream's ack.
CREATE TABLE IF NOT EXISTS outbox (
    seq        BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    headers    TEXT,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

-- Events whose effect is committed, recorded in the effect's transaction.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id     TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
);
