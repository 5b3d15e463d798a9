-- Extra NATS headers to publish an event with (e.g. a redeem's reply inbox).
ALTER TABLE outbox ADD COLUMN headers TEXT;
