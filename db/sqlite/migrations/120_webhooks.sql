-- Outbound events (issue 16): admins subscribe other systems to event types;
-- each event is queued as one delivery per subscription in the same
-- transaction as the change it reports (the journal entry, or the anomalous
-- unlock event), and the dispatcher posts it, signed, retrying with backoff.
--
-- event_types holds the chosen types separated by spaces, with a space before
-- the first and after the last, so that one instr() finds a type.
-- secret_sealed is the signing secret sealed (seal.go, the data directory's
-- vendor.key) and bound to the row's id: HMAC needs the secret itself, so it
-- cannot be hashed, and a copy of the database alone must not sign as the
-- portal. It is written right after the row, whose id it needs.
CREATE TABLE webhook_subscriptions (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL,
	url           TEXT NOT NULL,
	event_types   TEXT NOT NULL,
	secret_sealed BLOB,
	secret_fp     TEXT NOT NULL,
	created_at    TEXT NOT NULL,
	created_by    TEXT NOT NULL,
	disabled_at   TEXT
);

-- One event on its way to one subscription. payload is the request body,
-- fixed when queued: every attempt and replay sends the same bytes with the
-- same event_id. next_attempt_at is kept here, not in the dispatcher's memory,
-- so that a portal restarted during a receiver's outage keeps to the backoff;
-- NULL is due now. give_up_at is when a failure becomes final (queued or
-- replayed + 24 h). The response columns are the last attempt's.
CREATE TABLE webhook_deliveries (
	id               INTEGER PRIMARY KEY,
	subscription_id  INTEGER NOT NULL REFERENCES webhook_subscriptions (id),
	event_id         TEXT NOT NULL,
	event_type       TEXT NOT NULL,
	building_id      INTEGER NOT NULL DEFAULT 0,
	created_at       TEXT NOT NULL,
	payload          TEXT NOT NULL,
	attempts         INTEGER NOT NULL DEFAULT 0,
	give_up_at       TEXT NOT NULL,
	next_attempt_at  TEXT,
	last_attempt_at  TEXT,
	delivered_at     TEXT,
	failed_at        TEXT,
	response_status  INTEGER NOT NULL DEFAULT 0,
	response_excerpt TEXT NOT NULL DEFAULT '',
	last_error       TEXT NOT NULL DEFAULT '',
	UNIQUE (subscription_id, event_id)
);

-- The dispatcher's query: what is still to deliver, by when it is due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
	WHERE delivered_at IS NULL AND failed_at IS NULL;
-- The admins' list of one subscription's deliveries.
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id);
