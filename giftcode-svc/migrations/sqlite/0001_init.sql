-- giftcode-svc schema (SQLite). Times are microseconds since the epoch; ids are
-- UUID v7 text; codes are stored only as HMAC-SHA256 digests plus a hint.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE groups (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('unique', 'shared')),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    total_codes     BIGINT NOT NULL,
    max_redemptions BIGINT,
    per_phone_limit BIGINT,
    prefix          TEXT,
    starts_at       BIGINT,
    expires_at      BIGINT,
    active          BIGINT NOT NULL CHECK (active IN (0, 1)),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One row per code. redemption_count is the guard: a unique code moves 0 -> 1
-- once; a shared code counts up to its group's max_redemptions.
CREATE TABLE codes (
    group_id         TEXT NOT NULL REFERENCES groups (id),
    id               TEXT NOT NULL,
    digest           BLOB NOT NULL UNIQUE,
    hint             TEXT NOT NULL,
    redemption_count BIGINT NOT NULL DEFAULT 0,
    redeemed_by      TEXT,
    redeemed_at      BIGINT,
    PRIMARY KEY (group_id, id)
) WITHOUT ROWID;

CREATE TABLE redemptions (
    id             TEXT PRIMARY KEY,
    group_id       TEXT NOT NULL REFERENCES groups (id),
    code_id        TEXT NOT NULL,
    code_hint      TEXT NOT NULL,
    phone          TEXT NOT NULL,
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'credited')),
    redeemed_at    BIGINT NOT NULL,
    credited_at    BIGINT,
    transaction_id TEXT,
    correlation_id TEXT,
    UNIQUE (code_id, phone)
);
CREATE INDEX redemptions_by_group ON redemptions (group_id, id);

-- Per-phone redemption counts in groups with a per_phone_limit (the guard).
CREATE TABLE phone_counts (
    group_id TEXT NOT NULL,
    phone    TEXT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (group_id, phone)
) WITHOUT ROWID;

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
