-- Reversals and disabled codes (DESIGN.md §12, issue 14).
--
-- A reversal with release_code frees the code for the same phone again, so
-- "a phone redeems a code at most once" holds only among redemptions not
-- released: UNIQUE (code_id, phone) becomes a partial unique index. SQLite
-- cannot drop a table constraint, so the table is rebuilt with its rows.
CREATE TABLE redemptions_new (
    id                      TEXT PRIMARY KEY,
    group_id                TEXT NOT NULL REFERENCES groups (id),
    code_id                 TEXT NOT NULL,
    code_hint               TEXT NOT NULL,
    phone                   TEXT NOT NULL,
    amount                  BIGINT NOT NULL,
    currency                TEXT NOT NULL,
    status                  TEXT NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'credited', 'reversed')),
    redeemed_at             BIGINT NOT NULL,
    credited_at             BIGINT,
    transaction_id          TEXT,
    correlation_id          TEXT,
    event_id                TEXT,
    -- The latest reversal attempt: its id (also its event's id), state,
    -- request, and outcome.
    reversal_attempt        TEXT,
    reversal_status         TEXT CHECK (reversal_status IN ('pending', 'done', 'refused')),
    reversal_reason         TEXT,
    reversal_release        BIGINT,
    reversal_requested_at   BIGINT,
    reversal_completed_at   BIGINT,
    reversal_transaction_id TEXT,
    -- Set when a reversal released the code: the redemption no longer holds it.
    released_at             BIGINT
);
INSERT INTO redemptions_new (id, group_id, code_id, code_hint, phone, amount, currency, status,
    redeemed_at, credited_at, transaction_id, correlation_id, event_id)
SELECT id, group_id, code_id, code_hint, phone, amount, currency, status,
    redeemed_at, credited_at, transaction_id, correlation_id, event_id FROM redemptions;
DROP TABLE redemptions;
ALTER TABLE redemptions_new RENAME TO redemptions;
CREATE UNIQUE INDEX redemptions_held ON redemptions (code_id, phone) WHERE released_at IS NULL;
CREATE INDEX redemptions_by_group ON redemptions (group_id, id);
CREATE INDEX redemptions_pending ON redemptions (redeemed_at) WHERE status = 'pending';
CREATE INDEX redemptions_reversing ON redemptions (reversal_requested_at)
    WHERE reversal_status = 'pending';

-- Reversed redemptions, and those of them that released their code: the
-- group's stats count them out.
ALTER TABLE groups ADD COLUMN reversed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN released BIGINT NOT NULL DEFAULT 0;

-- One code disabled on its own.
ALTER TABLE codes ADD COLUMN active BIGINT NOT NULL DEFAULT 1;

-- The Idempotency-Key of each reversal request: the same key with another
-- body is a conflict.
CREATE TABLE reversal_keys (
    key           TEXT PRIMARY KEY,
    redemption_id TEXT NOT NULL,
    fingerprint   TEXT NOT NULL
);
