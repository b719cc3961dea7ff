-- When a failed mail is next due: set by MarkFailed from the dispatcher's
-- backoff, read by PendingMessages (only mail due by the portal's clock),
-- cleared by an admin's Retry; NULL: due now. Translated from
-- db/sqlite/migrations/105_outbox_next_attempt.sql.
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
