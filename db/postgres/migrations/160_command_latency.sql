-- How long a command took from its request to the device's confirmation, in
-- microseconds, measured on the portal's monotonic clock (package sqlite's
-- 085_command_latency): the difference of the two recorded wall times goes
-- wrong, even negative, when the machine's clock is set in between. NULL:
-- not measured (confirmed across a restart): the recorded times'
-- difference, never below zero, stands in.
ALTER TABLE commands ADD COLUMN latency_us bigint CHECK (latency_us IS NULL OR latency_us >= 0);
