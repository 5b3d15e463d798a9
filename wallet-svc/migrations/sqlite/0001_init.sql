-- wallet-svc schema (SQLite): a double-entry ledger after TigerBeetle.
-- Every transfer adds its amount to one account's debits and another's
-- credits, so the sum of (credits - debits) over all accounts is always zero.
CREATE TABLE accounts (
    -- 'user:+15551234567', 'group:<uuid>', 'admin_adjustments', 'spend'
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'group_funding', 'admin_adjustments', 'spend')),
    phone      TEXT UNIQUE,
    currency   TEXT NOT NULL,
    debits     BIGINT NOT NULL DEFAULT 0 CHECK (debits >= 0),
    credits    BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- A user's balance never goes negative.
    CHECK (kind <> 'user' OR credits >= debits)
);

-- Immutable. idempotency_key is permanent: 'redemption:<id>' for a credit
-- caused by an event, 'admin:<Idempotency-Key>' for an admin credit or debit.
CREATE TABLE transfers (
    id                   TEXT PRIMARY KEY,
    debit_account        TEXT NOT NULL REFERENCES accounts (id),
    credit_account       TEXT NOT NULL REFERENCES accounts (id),
    amount               BIGINT NOT NULL CHECK (amount > 0),
    kind                 TEXT NOT NULL,
    reference            TEXT NOT NULL,
    description          TEXT,
    idempotency_key      TEXT NOT NULL UNIQUE,
    -- The request as first made; a replay must match it.
    request_fingerprint  TEXT NOT NULL,
    debit_balance_after  BIGINT NOT NULL,
    credit_balance_after BIGINT NOT NULL,
    created_at           BIGINT NOT NULL
);
CREATE INDEX transfers_by_debit ON transfers (debit_account, id);
CREATE INDEX transfers_by_credit ON transfers (credit_account, id);

-- Events whose effect is committed (recorded in the effect's transaction).
CREATE TABLE processed_events (
    event_id     TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    headers    TEXT,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
