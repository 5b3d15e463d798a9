-- The id of each redemption's code.redeemed event, so that the event can be
-- published again with the same id while its credit is overdue (issue 11:
-- a broker that lost its store). Redemptions recorded before this migration
-- have none; a re-drive gives them a new one.
ALTER TABLE redemptions ADD COLUMN event_id TEXT;
-- The re-drive looks for pending redemptions by age.
CREATE INDEX redemptions_pending ON redemptions (redeemed_at) WHERE status = 'pending';
