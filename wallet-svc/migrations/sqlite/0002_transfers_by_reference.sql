-- Reconciliation walks redemption credits in redemption-id order
-- (wallet.reconciliation.page); a redemption credited twice would sit adjacent.
CREATE INDEX transfers_by_reference ON transfers (kind, reference, id);
