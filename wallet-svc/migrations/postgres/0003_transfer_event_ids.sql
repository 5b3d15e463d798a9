-- The id of the event that announced each transfer (wallet.credited for a
-- redemption's credit), so that wallet-svc can publish it again with the same
-- id when it sees the redemption again (issue 11). Older transfers have
-- none; their event is published again under a new id.
ALTER TABLE transfers ADD COLUMN event_id TEXT;
