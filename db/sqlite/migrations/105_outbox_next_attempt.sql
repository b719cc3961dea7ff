-- When a failed mail is next due (issue 19, mail server down for hours): set
-- by MarkFailed from the dispatcher's backoff, read by PendingMessages, which
-- returns only mail due by the portal's clock, and cleared by an admin's
-- Retry. Kept here rather than in the dispatcher's memory so that a portal
-- restarted during an outage keeps to the backoff instead of trying every
-- queued mail at once. NULL: due now (new mail, and mail that failed before
-- this column existed, whose last attempt time is not known).
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT;
