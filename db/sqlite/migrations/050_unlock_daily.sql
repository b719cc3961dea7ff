-- Per-day counts of each building's unlock events (issue 14.2): the building
-- page's 30-day openings chart counted ~200k events a load at 5M events
-- (p95 ~170 ms, far more under load). unlock_daily keeps the counts up to
-- date instead: one row per building and day, the day being the date in the
-- building's time zone of each event's effective time (the date DailyCounts
-- always counted by), maintained by triggers on every insert and delete of
-- an event, so that no path (group-committed ingest, vendor batches, CSV
-- imports, the retention purge, a script) can leave it behind.
--
-- SQLite knows no time zones, so the zone's UTC offsets are a table:
-- unlock_day_offsets holds, for each time zone in use, the spans of UTC
-- time with one offset (from Go's time zone database, 1900 to 2100; the
-- first span starts at '' and the last ends at '9999', so every time falls
-- in one). An event's local date is then
-- date(its effective time to the second, the span's offset), exact: offsets
-- are whole seconds and SQLite adds them in integer milliseconds.
CREATE TABLE unlock_day_offsets (
	zone      TEXT NOT NULL,     -- IANA time zone name, as buildings.timezone
	starts_at TEXT NOT NULL,     -- UTC, written as effective_at is; '' for the first span
	ends_at   TEXT NOT NULL,     -- the next span's starts_at; '9999' for the last
	modifier  TEXT NOT NULL,     -- the offset as an SQLite date modifier: '-18000 seconds'
	PRIMARY KEY (zone, starts_at)
) WITHOUT ROWID;

-- The zone a building's counts are dated in (always its time zone: the
-- triggers below keep it so) and how far they are counted: the building's
-- events whose effective time is before counted_until are in unlock_daily,
-- the rest not yet; '9999' when all are, and only then are its counts read
-- (DailyCounts counts the events otherwise). The insert and delete triggers
-- count only the events before the mark; the portal's catch-up
-- (UnlockService.CountDays, a background job) counts the rest in small
-- transactions, moving the mark, so that a building's millions of events are
-- counted again without holding the writer more than milliseconds at a time:
-- for the events recorded before this migration (the rows below), a
-- building made around the services, and a change of time zone, which dates
-- every event again.
CREATE TABLE unlock_daily_zones (
	building_id   INTEGER PRIMARY KEY REFERENCES buildings (id),
	zone          TEXT NOT NULL,
	counted_until TEXT NOT NULL
);
INSERT INTO unlock_daily_zones (building_id, zone, counted_until) SELECT id, timezone, '' FROM buildings;

CREATE TABLE unlock_daily (
	building_id INTEGER NOT NULL,
	day         TEXT NOT NULL,    -- 2006-01-02, in the building's time zone
	granted     INTEGER NOT NULL,
	denied      INTEGER NOT NULL,
	anomalous   INTEGER NOT NULL, -- flagged with any anomaly (acknowledged or not)
	PRIMARY KEY (building_id, day)
) WITHOUT ROWID;

-- A new building has no events: its counts are current at once if its
-- zone's offsets are written, else from the catch-up's first step.
CREATE TRIGGER unlock_daily_building AFTER INSERT ON buildings
BEGIN
	INSERT INTO unlock_daily_zones (building_id, zone, counted_until) VALUES (NEW.id, NEW.timezone,
		CASE WHEN EXISTS (SELECT 1 FROM unlock_day_offsets WHERE zone = NEW.timezone) THEN '9999' ELSE '' END);
END;

CREATE TRIGGER unlock_daily_zone_change AFTER UPDATE OF timezone ON buildings
WHEN OLD.timezone IS NOT NEW.timezone
BEGIN
	UPDATE unlock_daily_zones SET zone = NEW.timezone, counted_until = '' WHERE building_id = NEW.id;
	DELETE FROM unlock_daily WHERE building_id = NEW.id;
END;

-- An event's local date: its effective time to the second (substr), moved
-- by the offset of the span it falls in (the last span of the zone starting
-- at or before it: a backward seek on the key).
--
-- A duplicate delivery (INSERT … ON CONFLICT DO NOTHING) inserts nothing and
-- fires nothing.
CREATE TRIGGER unlock_daily_insert AFTER INSERT ON unlock_events
WHEN NEW.effective_at < (SELECT counted_until FROM unlock_daily_zones WHERE building_id = NEW.building_id)
BEGIN
	INSERT INTO unlock_daily (building_id, day, granted, denied, anomalous)
	VALUES (NEW.building_id,
		date(substr(NEW.effective_at, 1, 19), (SELECT o.modifier FROM unlock_day_offsets o
			WHERE o.zone = (SELECT z.zone FROM unlock_daily_zones z WHERE z.building_id = NEW.building_id)
			AND o.starts_at <= NEW.effective_at ORDER BY o.starts_at DESC LIMIT 1)),
		NEW.result = 'granted', NEW.result = 'denied', NEW.anomalies <> 0)
	ON CONFLICT (building_id, day) DO UPDATE SET granted = granted + excluded.granted,
		denied = denied + excluded.denied, anomalous = anomalous + excluded.anomalous;
END;

-- The retention purge (the only delete the events allow) takes its events
-- out of their day's counts; a day counted down to nothing goes.
CREATE TRIGGER unlock_daily_delete AFTER DELETE ON unlock_events
WHEN OLD.effective_at < (SELECT counted_until FROM unlock_daily_zones WHERE building_id = OLD.building_id)
BEGIN
	UPDATE unlock_daily SET granted = granted - (OLD.result = 'granted'), denied = denied - (OLD.result = 'denied'),
		anomalous = anomalous - (OLD.anomalies <> 0)
	WHERE building_id = OLD.building_id AND day = date(substr(OLD.effective_at, 1, 19), (SELECT o.modifier FROM unlock_day_offsets o
			WHERE o.zone = (SELECT z.zone FROM unlock_daily_zones z WHERE z.building_id = OLD.building_id)
			AND o.starts_at <= OLD.effective_at ORDER BY o.starts_at DESC LIMIT 1));
END;

CREATE TRIGGER unlock_daily_empty AFTER UPDATE ON unlock_daily
WHEN NEW.granted = 0 AND NEW.denied = 0 AND NEW.anomalous = 0
BEGIN
	DELETE FROM unlock_daily WHERE building_id = NEW.building_id AND day = NEW.day;
END;
