package sqlite

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/anomalybits"
)

// checkUnlockRead allows the building's admins, managers and board to read its
// unlock history; installers, like anyone without a grant, get ENOTFOUND. It
// returns the building's time zone.
func checkUnlockRead(ctx context.Context, q querier, c caller, buildingID int64) (*time.Location, error) {
	if err := checkBuilding(ctx, q, c, buildingID); err != nil {
		return nil, err
	}
	if c.role() == doorledger.RoleInstaller {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Building not found.")
	}
	var tz string
	if err := q.QueryRowContext(ctx, `SELECT timezone FROM buildings WHERE id = ?`, buildingID).Scan(&tz); err != nil {
		return nil, notFound(err, "Building not found.")
	}
	return location(tz), nil
}

// unlockColumns are what scanUnlock reads, from unlock_events e and its
// acknowledgement a (see unlockFrom).
const unlockColumns = `e.id, e.building_id, COALESCE(e.device_id, 0), e.device_ref, e.event_id, e.occurred_at, e.received_at,
	e.method, e.actor_ref, e.result, e.anomalies, e.source, COALESCE(a.acked_at, ''), COALESCE(a.actor, ''), COALESCE(a.note, '')`

// unlockFrom joins each event to its acknowledgement, if any (a rowid
// lookup per row: anomaly_acks is keyed by the event's id).
const unlockFrom = `unlock_events e LEFT JOIN anomaly_acks a ON a.event_id = e.id`

func scanUnlock(row interface{ Scan(...any) error }) (*doorledger.UnlockEvent, error) {
	var e doorledger.UnlockEvent
	var occurred, received, acked string
	var bits int64
	if err := row.Scan(&e.ID, &e.BuildingID, &e.DeviceID, &e.DeviceRef, &e.EventID, &occurred, &received,
		&e.Method, &e.ActorRef, &e.Result, &bits, &e.Source, &acked, &e.AcknowledgedBy, &e.AckNote); err != nil {
		return nil, err
	}
	e.OccurredAt, e.ReceivedAt, e.Anomalies = parseTime(occurred), parseTime(received), anomalybits.Kinds(bits)
	e.AcknowledgedAt = parseTime(acked)
	return &e, nil
}

// historyQuery builds the keyset query of f: numbered parameters and a row
// value comparison on (effective_at, id), so SQLite walks the index
// (building_id, effective_at, id) backwards from the cursor and stops after
// limit rows, however deep the page. Dates select the events' effective time
// (doorledger.UnlockEvent.EffectiveAt): an event a wrong clock dated a year
// back, received today, is today's.
func historyQuery(f doorledger.UnlockFilter, loc *time.Location, limit int) (string, []any, error) {
	from, to, err := f.Dates(loc)
	if err != nil {
		return "", nil, err
	}
	upperAt, upperID := "~", int64(math.MaxInt64) // '~' sorts after every time
	if !f.After.IsZero() {
		upperAt, upperID = formatTime(f.After.At), f.After.ID
	}
	lower := ""
	if !from.IsZero() {
		lower = formatTime(from)
	}
	if !to.IsZero() {
		if s := formatTime(to); s < upperAt || (s == upperAt && upperID > 0) {
			upperAt, upperID = s, 0
		}
	}
	bit := anomalybits.Bit(f.Anomaly) // 0: any
	var b strings.Builder
	b.WriteString(`SELECT ` + unlockColumns + ` FROM ` + unlockFrom + `
		WHERE e.building_id = ?1 AND (e.effective_at, e.id) < (?2, ?3)`)
	args := []any{f.BuildingID, upperAt, upperID}
	add := func(cond string, arg any) {
		args = append(args, arg)
		b.WriteString(" AND " + strings.ReplaceAll(cond, "?", "?"+strconv.Itoa(len(args))))
	}
	if lower != "" {
		add("e.effective_at >= ?", lower)
	}
	if f.DeviceID != 0 {
		add("e.device_id = ?", f.DeviceID)
	}
	if f.DeviceRef != "" {
		add("e.device_id IS NULL AND e.device_ref = ?", f.DeviceRef)
	}
	if m := doorledger.NormalizeMethod(f.Method); m != "" {
		add("e.method = ?", m)
	}
	if f.Result != "" {
		add("e.result = ?", string(f.Result))
	}
	if f.AnomaliesOnly || bit != 0 || f.OpenOnly {
		b.WriteString(" AND e.anomalies <> 0") // lets SQLite use the partial index of flagged events
	}
	if f.OpenOnly {
		b.WriteString(" AND a.event_id IS NULL")
	}
	if bit != 0 {
		add("(e.anomalies & ?) <> 0", bit)
	}
	args = append(args, limit)
	b.WriteString(" ORDER BY e.effective_at DESC, e.id DESC LIMIT ?" + strconv.Itoa(len(args)))
	return b.String(), args, nil
}

// History returns a page of the building's unlock events, newest first, with
// keyset pagination (never OFFSET): f.After is the previous page's Next.
func (s *UnlockService) History(ctx context.Context, f doorledger.UnlockFilter) (*doorledger.UnlockPage, error) {
	loc, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), f.BuildingID)
	if err != nil {
		return nil, err
	}
	limit := f.PageSize()
	query, args, err := historyQuery(f, loc, limit+1)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("unlock history: %w", err)
	}
	defer rows.Close()
	page := &doorledger.UnlockPage{Timezone: loc.String(), Events: make([]*doorledger.UnlockEvent, 0, limit)}
	for rows.Next() {
		e, err := scanUnlock(rows)
		if err != nil {
			return nil, err
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.Next = doorledger.UnlockCursor{At: last.EffectiveAt(), ID: last.ID}
	}
	return page, nil
}

// LastUnlocks returns the newest event of each of the building's devices,
// by device id: one statement, one backward seek on the device's index each
// (it was one History query per device, 20 round trips for 20 devices).
func (s *UnlockService) LastUnlocks(ctx context.Context, buildingID int64) (map[int64]*doorledger.UnlockEvent, error) {
	if _, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+unlockColumns+` FROM devices d
		JOIN unlock_events e ON e.id = (SELECT x.id FROM unlock_events x WHERE x.device_id = d.id AND x.building_id = d.building_id
			ORDER BY x.effective_at DESC, x.id DESC LIMIT 1)
		LEFT JOIN anomaly_acks a ON a.event_id = e.id
		WHERE d.building_id = ?1`, buildingID)
	if err != nil {
		return nil, fmt.Errorf("last unlocks: %w", err)
	}
	defer rows.Close()
	out := map[int64]*doorledger.UnlockEvent{}
	for rows.Next() {
		e, err := scanUnlock(rows)
		if err != nil {
			return nil, err
		}
		out[e.DeviceID] = e
	}
	return out, rows.Err()
}

// ExplainHistory returns SQLite's plan for History's query of f, one line per
// step (admins and the system): for tests and operators, to check that a page
// walks an index range instead of sorting or skipping rows.
func (s *UnlockService) ExplainHistory(ctx context.Context, f doorledger.UnlockFilter) ([]string, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	loc, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), f.BuildingID)
	if err != nil {
		return nil, err
	}
	query, args, err := historyQuery(f, loc, doorledger.DefaultUnlockPage+1)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}
