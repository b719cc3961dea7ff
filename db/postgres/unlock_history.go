package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/anomalybits"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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
	if err := q.QueryRow(ctx, `SELECT timezone FROM buildings WHERE id = $1`, buildingID).Scan(&tz); err != nil {
		return nil, notFound(err, "Building not found.")
	}
	return location(tz), nil
}

// unlockColumns are what scanUnlock reads, from unlock_events e and its
// acknowledgement a (see unlockFrom).
const unlockColumns = `e.id, e.building_id, COALESCE(e.device_id, 0), e.device_ref, e.event_id, e.occurred_at, e.received_at,
	e.method, e.actor_ref, e.result, e.anomalies, e.source, a.acked_at, COALESCE(a.actor, ''), COALESCE(a.note, '')`

// unlockFrom joins each event to its acknowledgement, if any (anomaly_acks
// is keyed by the event's id).
const unlockFrom = `unlock_events e LEFT JOIN anomaly_acks a ON a.event_id = e.id`

func scanUnlock(row interface{ Scan(...any) error }) (*doorledger.UnlockEvent, error) {
	var e doorledger.UnlockEvent
	var bits int64
	if err := row.Scan(&e.ID, &e.BuildingID, &e.DeviceID, &e.DeviceRef, &e.EventID, at(&e.OccurredAt), at(&e.ReceivedAt),
		&e.Method, &e.ActorRef, &e.Result, &bits, &e.Source, at(&e.AcknowledgedAt), &e.AcknowledgedBy, &e.AckNote); err != nil {
		return nil, err
	}
	e.Anomalies = anomalybits.Kinds(bits)
	return &e, nil
}

// historyQuery builds the keyset query of f: a row value comparison on
// (effective_at, id), so PostgreSQL walks the index (building_id,
// effective_at, id) backwards from the cursor and stops after limit rows,
// however deep the page (limit < 0: every row). Dates select the events'
// effective time (doorledger.UnlockEvent.EffectiveAt): an event a wrong
// clock dated a year back, received today, is today's.
func historyQuery(f doorledger.UnlockFilter, loc *time.Location, limit int) (string, []any, error) {
	from, to, err := f.Dates(loc)
	if err != nil {
		return "", nil, err
	}
	upperAt, upperID := time.Time{}, int64(math.MaxInt64) // zero: no upper time ('infinity')
	if !f.After.IsZero() {
		upperAt, upperID = f.After.At.UTC().Truncate(time.Microsecond), f.After.ID
	}
	if !to.IsZero() && (upperAt.IsZero() || to.Before(upperAt) || (to.Equal(upperAt) && upperID > 0)) {
		upperAt, upperID = to, 0
	}
	bit := anomalybits.Bit(f.Anomaly) // 0: any
	var b strings.Builder
	upper := pgtype.Timestamptz{Time: upperAt, Valid: true}
	if upperAt.IsZero() {
		upper.InfinityModifier = pgtype.Infinity
	}
	b.WriteString(`SELECT ` + unlockColumns + ` FROM ` + unlockFrom + `
		WHERE e.building_id = $1 AND (e.effective_at, e.id) < ($2::timestamptz, $3::bigint)`)
	args := []any{f.BuildingID, upper, upperID}
	add := func(cond string, arg any) {
		args = append(args, arg)
		b.WriteString(" AND " + strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if !from.IsZero() {
		add("e.effective_at >= ?", from)
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
		b.WriteString(" AND e.anomalies <> 0") // lets PostgreSQL use the partial index of flagged events
	}
	if f.OpenOnly {
		b.WriteString(" AND a.event_id IS NULL")
	}
	if bit != 0 {
		add("(e.anomalies & ?) <> 0", bit)
	}
	b.WriteString(" ORDER BY e.effective_at DESC, e.id DESC")
	if limit >= 0 {
		args = append(args, limit)
		b.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	}
	return b.String(), args, nil
}

// History returns a page of the building's unlock events, newest first, with
// keyset pagination (never OFFSET): f.After is the previous page's Next.
func (s *UnlockService) History(ctx context.Context, f doorledger.UnlockFilter) (*doorledger.UnlockPage, error) {
	loc, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), f.BuildingID)
	if err != nil {
		return nil, err
	}
	limit := f.PageSize()
	query, args, err := historyQuery(f, loc, limit+1)
	if err != nil {
		return nil, err
	}
	events, err := queryAll(ctx, s.db.pool, scanUnlock, query, args...)
	if err != nil {
		return nil, fmt.Errorf("unlock history: %w", err)
	}
	page := &doorledger.UnlockPage{Timezone: loc.String(), Events: events}
	if page.Events == nil {
		page.Events = []*doorledger.UnlockEvent{}
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.Next = doorledger.UnlockCursor{At: last.EffectiveAt(), ID: last.ID}
	}
	return page, nil
}

// LastUnlocks returns the newest event of each of the building's devices,
// by device id: one statement, one backward seek on the device's index each.
func (s *UnlockService) LastUnlocks(ctx context.Context, buildingID int64) (map[int64]*doorledger.UnlockEvent, error) {
	if _, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	events, err := queryAll(ctx, s.db.pool, scanUnlock, `SELECT `+unlockColumns+` FROM devices d
		JOIN LATERAL (SELECT x.* FROM unlock_events x WHERE x.device_id = d.id AND x.building_id = d.building_id
			ORDER BY x.effective_at DESC, x.id DESC LIMIT 1) e ON true
		LEFT JOIN anomaly_acks a ON a.event_id = e.id
		WHERE d.building_id = $1`, buildingID)
	if err != nil {
		return nil, fmt.Errorf("last unlocks: %w", err)
	}
	out := make(map[int64]*doorledger.UnlockEvent, len(events))
	for _, e := range events {
		out[e.DeviceID] = e
	}
	return out, nil
}

// ExplainHistory returns PostgreSQL's plan for History's query of f, one
// line per step (admins and the system): for tests and operators, to check
// that a page walks an index range instead of sorting or skipping rows.
func (s *UnlockService) ExplainHistory(ctx context.Context, f doorledger.UnlockFilter) ([]string, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	loc, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), f.BuildingID)
	if err != nil {
		return nil, err
	}
	query, args, err := historyQuery(f, loc, doorledger.DefaultUnlockPage+1)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.pool.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
