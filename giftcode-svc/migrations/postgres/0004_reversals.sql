-- Reversals and disabled codes (DESIGN.md §12, issue 14). A reversal with
-- release_code frees the code for the same phone again, so "a phone redeems
-- a code at most once" holds only among redemptions not released.
ALTER TABLE redemptions DROP CONSTRAINT redemptions_code_id_phone_key;
ALTER TABLE redemptions DROP CONSTRAINT IF EXISTS redemptions_status_check;
ALTER TABLE redemptions ADD CONSTRAINT redemptions_status_check
    CHECK (status IN ('pending', 'credited', 'reversed'));
ALTER TABLE redemptions
    ADD COLUMN reversal_attempt        TEXT,
    ADD COLUMN reversal_status         TEXT CHECK (reversal_status IN ('pending', 'done', 'refused')),
    ADD COLUMN reversal_reason         TEXT,
    ADD COLUMN reversal_release        BIGINT,
    ADD COLUMN reversal_requested_at   BIGINT,
    ADD COLUMN reversal_completed_at   BIGINT,
    ADD COLUMN reversal_transaction_id TEXT,
    ADD COLUMN released_at             BIGINT;
CREATE UNIQUE INDEX redemptions_held ON redemptions (code_id, phone) WHERE released_at IS NULL;
CREATE INDEX redemptions_reversing ON redemptions (reversal_requested_at)
    WHERE reversal_status = 'pending';

ALTER TABLE groups ADD COLUMN reversed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN released BIGINT NOT NULL DEFAULT 0;
ALTER TABLE codes ADD COLUMN active BIGINT NOT NULL DEFAULT 1;

CREATE TABLE reversal_keys (
    key           TEXT PRIMARY KEY,
    redemption_id TEXT NOT NULL,
    fingerprint   TEXT NOT NULL
);
