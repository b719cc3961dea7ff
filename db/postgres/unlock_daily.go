package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The per-day counts of unlock events (migrations/005): unlock_daily holds a
// building's granted, denied and flagged events by the date, in the
// building's time zone, of their effective time, kept by triggers at every
// insert and delete of an event. PostgreSQL knows time zones, so package
// sqlite's table of offsets has no counterpart here. What the triggers
// cannot do alone is this file's: counting a building's events again when
// its zone changes (unlock_daily_zones.counted_until set to -infinity), or
// when they were never counted.

// countDaysChunk is how many events one catch-up transaction counts: tens of
// milliseconds during which ingest waits (countDaysStep says why).
var countDaysChunk = 5000

// CountDays brings every building's daily counts up to date (the system's
// background job; admins may run it too): each building whose events are
// not all counted (counted_until) gets them counted in effective-time
// order, countDaysChunk at a time, each chunk a transaction of its own that
// moves the mark, until none is left or ctx ends. Returns how many events
// it counted. Nothing to do costs one read. A building in a zone PostgreSQL
// does not know (only Go does) stays uncounted: DailyCounts counts its
// events each time.
func (s *UnlockService) CountDays(ctx context.Context) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	type pending struct {
		id   int64
		zone string
	}
	list, err := queryAll(ctx, s.db.pool, func(r interface{ Scan(...any) error }) (pending, error) {
		var p pending
		return p, r.Scan(&p.id, &p.zone)
	}, `SELECT z.building_id, z.zone FROM unlock_daily_zones z WHERE z.counted_until <> 'infinity'
		AND EXISTS (SELECT 1 FROM pg_timezone_names n WHERE n.name = z.zone) ORDER BY z.building_id`)
	if err != nil {
		return 0, fmt.Errorf("daily counts to catch up: %w", err)
	}
	var total int64
	for _, p := range list {
		for ctx.Err() == nil {
			n, done, err := s.countDaysStep(ctx, p.id, p.zone)
			total += n
			if err != nil {
				return total, fmt.Errorf("count days of building %d: %w", p.id, err)
			}
			if done {
				break
			}
		}
	}
	return total, ctx.Err()
}

// countDaysStep counts the next chunk of a building's uncounted events into
// unlock_daily and moves its mark past them. done: all are counted, or the
// building's zone changed meanwhile (the next CountDays starts it again).
//
// Package sqlite's single writer keeps inserts out of a step; here the step
// takes unlock_events in SHARE mode, which waits for the transactions
// writing events to end and holds new ones back until it commits. So no
// event is missed between the triggers, which count below the mark, and
// this step, which counts from it; nor is one counted by both.
func (s *UnlockService) countDaysStep(ctx context.Context, buildingID int64, zone string) (n int64, done bool, err error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `LOCK TABLE unlock_events IN SHARE MODE`); err != nil {
		return 0, false, err
	}
	var from pgtype.Timestamptz
	err = tx.QueryRow(ctx, `SELECT counted_until FROM unlock_daily_zones WHERE building_id = $1 AND zone = $2 FOR UPDATE`, buildingID, zone).Scan(&from)
	if errors.Is(err, pgx.ErrNoRows) || from.InfinityModifier == pgtype.Infinity {
		return 0, true, nil
	} else if err != nil {
		return 0, false, err
	}
	if from.InfinityModifier == pgtype.NegativeInfinity {
		// The first chunk: a transaction that counted an event by the zone
		// before it changed may have committed after the change emptied
		// the counts.
		if _, err := tx.Exec(ctx, `DELETE FROM unlock_daily WHERE building_id = $1`, buildingID); err != nil {
			return 0, false, err
		}
	}
	// The chunk ends before the effective time of the countDaysChunk-th event
	// on (the events of that very time go into the next chunk whole).
	until := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	err = tx.QueryRow(ctx, `SELECT effective_at FROM unlock_events WHERE building_id = $1 AND effective_at >= $2
		ORDER BY effective_at LIMIT 1 OFFSET $3`, buildingID, from, countDaysChunk).Scan(&until)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, err
	}
	if until == from { // more than a chunk's events at one time: take them all
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MIN(effective_at), 'infinity') FROM unlock_events WHERE building_id = $1 AND effective_at > $2`,
			buildingID, from).Scan(&until); err != nil {
			return 0, false, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO unlock_daily AS d (building_id, day, granted, denied, anomalous)
		SELECT $1, (e.effective_at AT TIME ZONE $2)::date AS day,
			COUNT(*) FILTER (WHERE e.result = 'granted'), COUNT(*) FILTER (WHERE e.result = 'denied'), COUNT(*) FILTER (WHERE e.anomalies <> 0)
		FROM unlock_events e WHERE e.building_id = $1 AND e.effective_at >= $3 AND e.effective_at < $4
		GROUP BY day
		ON CONFLICT (building_id, day) DO UPDATE SET granted = d.granted + excluded.granted,
			denied = d.denied + excluded.denied, anomalous = d.anomalous + excluded.anomalous`, buildingID, zone, from, until); err != nil {
		return 0, false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE unlock_daily_zones SET counted_until = $1 WHERE building_id = $2`, until, buildingID); err != nil {
		return 0, false, err
	}
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = $1 AND effective_at >= $2 AND effective_at < $3`,
		buildingID, from, until).Scan(&n); err != nil {
		return 0, false, err
	}
	return n, until.InfinityModifier == pgtype.Infinity, tx.Commit(ctx)
}

// dailyCountsCurrent reports whether every event of the building is in its
// daily counts, and so they may be read.
func dailyCountsCurrent(ctx context.Context, q querier, buildingID int64) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM unlock_daily_zones WHERE building_id = $1 AND counted_until = 'infinity')`,
		buildingID).Scan(&ok)
	return ok, err
}

// DailyCounts counts a building's (or one of its devices') events of the last
// days, by the date of their effective time in the building's time zone (23-
// and 25-hour days included), oldest first, every day present. A building's
// counts are read from unlock_daily, kept at every insert and purge; one
// device's, and a building's whose counts are being dated again, are counted
// from the events.
func (s *UnlockService) DailyCounts(ctx context.Context, buildingID, deviceID int64, days int) ([]doorledger.UnlockDay, error) {
	loc, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), buildingID)
	if err != nil {
		return nil, err
	}
	if days <= 0 {
		days = 30
	} else if days > 366 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Count at most 366 days.")
	}
	if deviceID != 0 {
		var ok bool
		if err := s.db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND building_id = $2)`, deviceID, buildingID).Scan(&ok); err != nil {
			return nil, err
		} else if !ok {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
		}
	}
	today := s.db.Now().In(loc)
	out := make([]doorledger.UnlockDay, days)
	for i := range out {
		out[i].Date = time.Date(today.Year(), today.Month(), today.Day()-(days-1-i), 0, 0, 0, 0, loc).Format("2006-01-02")
	}
	if deviceID == 0 {
		if ok, err := dailyCountsCurrent(ctx, s.db.pool, buildingID); err != nil {
			return nil, fmt.Errorf("daily counts: %w", err)
		} else if ok {
			return out, readDailyCounts(ctx, s.db.pool, buildingID, out)
		}
	}
	return out, countDays(ctx, s.db.pool, buildingID, deviceID, loc, out)
}

// readDailyCounts fills days (consecutive dates, oldest first) from unlock_daily.
func readDailyCounts(ctx context.Context, q querier, buildingID int64, days []doorledger.UnlockDay) error {
	rows, err := q.Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), granted, denied, anomalous FROM unlock_daily
		WHERE building_id = $1 AND day >= $2::date AND day <= $3::date`, buildingID, days[0].Date, days[len(days)-1].Date)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	at := make(map[string]int, len(days))
	for i, d := range days {
		at[d.Date] = i
	}
	var day string
	var g, dn, a int
	_, err = pgx.ForEachRow(rows, []any{&day, &g, &dn, &a}, func() error {
		if i, ok := at[day]; ok {
			days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
		}
		return nil
	})
	return err
}

// countDays fills days (consecutive dates in loc, oldest first) by counting
// the events of each, of one device when deviceID is not 0. Go's time zone
// database draws the days' bounds, as package sqlite's does.
func countDays(ctx context.Context, q querier, buildingID, deviceID int64, loc *time.Location, days []doorledger.UnlockDay) error {
	idx := make([]int32, len(days))
	lo, hi := make([]time.Time, len(days)), make([]time.Time, len(days))
	for i, d := range days {
		day, err := time.ParseInLocation("2006-01-02", d.Date, loc)
		if err != nil {
			return err
		}
		idx[i], lo[i], hi[i] = int32(i), day, time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
	}
	deviceCond, args := "", []any{buildingID, idx, lo, hi}
	if deviceID != 0 {
		deviceCond, args = " AND e.device_id = $5", append(args, deviceID)
	}
	rows, err := q.Query(ctx, `SELECT d.i, COUNT(*) FILTER (WHERE e.result = 'granted'), COUNT(*) FILTER (WHERE e.result = 'denied'),
			COUNT(*) FILTER (WHERE e.anomalies <> 0)
		FROM unnest($2::integer[], $3::timestamptz[], $4::timestamptz[]) AS d (i, lo, hi)
		JOIN unlock_events e ON e.building_id = $1 AND e.effective_at >= d.lo AND e.effective_at < d.hi`+deviceCond+`
		GROUP BY d.i`, args...)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	var i, g, dn, a int
	_, err = pgx.ForEachRow(rows, []any{&i, &g, &dn, &a}, func() error {
		days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
		return nil
	})
	return err
}
