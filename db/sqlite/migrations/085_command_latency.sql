-- How long a command took from its request to the device's confirmation, in
-- microseconds, measured on the portal's monotonic clock (issue 19, clock
-- jump): the difference of the two recorded wall times goes wrong, even
-- negative, when the machine's clock is set in between. NULL: not measured
-- (confirmed across a restart, or before this column): the recorded times'
-- difference, never below zero, stands in.
ALTER TABLE commands ADD COLUMN latency_us INTEGER;
