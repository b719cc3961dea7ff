-- When the dispatcher gave up on a mail (issue 19, mail server down or
-- refusing): its retry budget spent, or the server refused it for good (an
-- SMTP 5xx). A mail with failed_at set is not tried again until an admin
-- retries it, which clears it. Mail given up on before this column existed
-- (tried the dispatcher's former maximum of 8 times, unsent) counts as given
-- up at its creation.
ALTER TABLE outbox ADD COLUMN failed_at TEXT;
UPDATE outbox SET failed_at = created_at WHERE sent_at IS NULL AND attempts >= 8;
