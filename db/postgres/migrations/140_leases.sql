-- Background work runs once across instances (issue 15): a row per piece of
-- work (the log sequencer, the report generator, the mail dispatcher, each
-- periodic job) names the instance that holds it and until when, as package
-- sqlite's migration 100. An instance works only while it holds the lease and
-- renews it well before it runs out; a row past its time is free for any
-- instance to take. Not journalled: a lease says who does the work, not what
-- was done.
CREATE TABLE leases (
	name   text PRIMARY KEY,
	holder text NOT NULL CHECK (holder <> ''),
	until  timestamptz NOT NULL
);
