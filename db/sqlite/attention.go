package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// AttentionService reads the attention list: what needs a
// manager in every building they see. Each kind is one grouped count over a
// small index (migrations/040: open anomalies are a count kept by triggers),
// then the items of the buildings listed, a few of each kind per building.
type AttentionService struct {
	db *DB
}

// NewAttentionService returns the SQLite attention service.
func NewAttentionService(db *DB) *AttentionService { return &AttentionService{db: db} }

var _ doorledger.AttentionService = (*AttentionService)(nil)

// attentionScope returns the condition limiting a count to the caller's
// buildings (on the column col), and its argument: nothing for admins and
// the system, the granted buildings for managers and boards. Installers are
// refused: the list is not theirs.
func attentionScope(c caller) (func(col string) string, []any, error) {
	if err := c.requireSignedIn(); err != nil {
		return nil, nil, err
	}
	switch c.role() {
	case doorledger.RoleAdmin:
		return func(string) string { return "" }, nil, nil
	case doorledger.RoleManager, doorledger.RoleBoard:
		return func(col string) string {
			return " AND " + col + " IN (SELECT building_id FROM grants WHERE user_id = ?1)"
		}, []any{c.user.ID}, nil
	}
	return nil, nil, doorledger.Errorf(doorledger.EFORBIDDEN, "The attention list is for managers and boards.")
}

// attentionCount is one kind's count per building: the query selects
// (building_id, count[, oldest time]); ?1 is the caller's id (when scoped),
// ?2 the clock, ?3 the kind's bound in time. %s is the scope condition.
type attentionCount struct {
	kind  doorledger.AttentionKind
	query string
	col   string // the building column the scope applies to
}

var attentionCounts = []attentionCount{
	{doorledger.AttentionUnconsented, `SELECT d.building_id, COUNT(*) FROM devices d
		WHERE d.unconsented = 1 AND d.retired = 0%s GROUP BY d.building_id`, "d.building_id"},
	// The device's current command only (an older one was superseded or
	// confirmed). 'refused' is the status of a command the device refused;
	// it counts wherever the schema has it.
	{doorledger.AttentionCommand, `SELECT cm.building_id, COUNT(*) FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.status IN ('not_confirmed', 'refused') AND cm.version = d.desired_version AND d.retired = 0%s
		GROUP BY cm.building_id`, "cm.building_id"},
	// The rule of UnlockService.OfflineDevices: silent (since last seen, or
	// registered if never) longer than the device's heartbeat, else its
	// building's; 0 is not watched. offline_after is that since plus that
	// heartbeat, kept by triggers (migrations/055): an index range.
	{doorledger.AttentionOffline, `SELECT d.building_id, COUNT(*) FROM devices d
		WHERE d.retired = 0 AND d.offline_after < ?2%s GROUP BY d.building_id`, "d.building_id"},
	{doorledger.AttentionAnomalies, `SELECT o.building_id, o.n FROM building_open_anomalies o WHERE o.n > 0%s`, "o.building_id"},
	{doorledger.AttentionAwaiting, `SELECT c.building_id, COUNT(*), MIN(c.requested_at) FROM consents c
		WHERE c.status = 'awaiting_signature' AND c.expired_at IS NULL%s GROUP BY c.building_id`, "c.building_id"},
	// A signed consent a device in service rests on (a signed renewal moves
	// the device to the new consent), lapsing within the window or past its
	// end and not yet recorded lapsed.
	{doorledger.AttentionLapsing, `SELECT c.building_id, COUNT(*) FROM consents c
		WHERE c.status = 'signed' AND c.expires_at <= ?3
		AND EXISTS (SELECT 1 FROM devices d WHERE d.consent_id = c.id AND d.retired = 0)%s GROUP BY c.building_id`, "c.building_id"},
	// Withdrawals and disputes, of signed consents and of requests ended
	// before they were signed (recorded declined, the fact on the timeline).
	{doorledger.AttentionEnded, `SELECT c.building_id, COUNT(*) FROM consent_events e JOIN consents c ON c.id = e.consent_id
		WHERE e.kind IN ('withdrawn', 'disputed') AND e.at >= ?3%s GROUP BY c.building_id`, "c.building_id"},
	{doorledger.AttentionResidentReport, `SELECT r.building_id, COUNT(*) FROM resident_reports r
		WHERE r.resolved_at IS NULL%s GROUP BY r.building_id`, "r.building_id"},
}

// counts reads every kind's count per building the caller sees.
func (s *AttentionService) counts(ctx context.Context, now time.Time) (map[int64]*doorledger.AttentionCounts, error) {
	scope, scopeArgs, err := attentionScope(callerFrom(ctx))
	if err != nil {
		return nil, err
	}
	out := map[int64]*doorledger.AttentionCounts{}
	for _, k := range attentionCounts {
		args := []any{0, formatTime(now), formatTime(doorledger.AttentionBound(k.kind, now))}
		if scopeArgs != nil {
			args[0] = scopeArgs[0]
		}
		if err := s.countKind(ctx, k, fmt.Sprintf(k.query, scope(k.col)), args, out); err != nil {
			return nil, fmt.Errorf("count %s: %w", k.kind, err)
		}
	}
	return out, nil
}

func (s *AttentionService) countKind(ctx context.Context, k attentionCount, query string, args []any, out map[int64]*doorledger.AttentionCounts) error {
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var n int
		var oldest time.Time
		dest := []any{&id, &n}
		if k.kind == doorledger.AttentionAwaiting {
			dest = append(dest, nullTime{&oldest})
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		c := out[id]
		if c == nil {
			c = &doorledger.AttentionCounts{}
			out[id] = c
		}
		c.Add(k.kind, n)
		if !oldest.IsZero() {
			c.OldestAwaiting = oldest
		}
	}
	return rows.Err()
}

// AttentionCounts returns the counts of the caller's buildings that have something.
func (s *AttentionService) AttentionCounts(ctx context.Context) (map[int64]doorledger.AttentionCounts, error) {
	counts, err := s.counts(ctx, s.db.Now().UTC())
	if err != nil {
		return nil, err
	}
	out := make(map[int64]doorledger.AttentionCounts, len(counts))
	for id, c := range counts {
		out[id] = *c
	}
	return out, nil
}

// Attention returns what needs the caller, with the items of the buildings listed.
func (s *AttentionService) Attention(ctx context.Context, opts doorledger.AttentionOptions) (*doorledger.Attention, error) {
	opts = opts.WithDefaults()
	now := s.db.Now().UTC()
	counts, err := s.counts(ctx, now)
	if err != nil {
		return nil, err
	}
	c := callerFrom(ctx)
	a := &doorledger.Attention{CheckedAt: now, Needing: len(counts)}
	seen := `SELECT COUNT(*) FROM buildings`
	var seenArgs []any
	if !c.allBuildings() {
		seen, seenArgs = `SELECT COUNT(*) FROM grants WHERE user_id = ?`, []any{c.user.ID}
	}
	if err := s.db.read.QueryRowContext(ctx, seen, seenArgs...).Scan(&a.Buildings); err != nil {
		return nil, fmt.Errorf("count buildings: %w", err)
	}
	if len(counts) == 0 {
		return a, nil
	}
	ids := a.Sum(counts)
	// The buildings with the most first, then by name: names first.
	names, err := s.buildingNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	list := doorledger.RankAttention(counts, names, opts.MaxBuildings)
	if err := s.items(ctx, now, list, opts.ItemsPerKind); err != nil {
		return nil, err
	}
	a.Listed = list
	return a, nil
}

// idsJSON is a JSON array of ids, for `IN (SELECT value FROM json_each(?))`:
// one prepared statement, whatever the number of ids.
func idsJSON(ids []int64) string {
	buf, _ := json.Marshal(ids)
	return string(buf)
}

func (s *AttentionService) buildingNames(ctx context.Context, ids []int64) (map[int64][2]string, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, name, timezone FROM buildings WHERE id IN (SELECT value FROM json_each(?))`, idsJSON(ids))
	if err != nil {
		return nil, fmt.Errorf("building names: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][2]string, len(ids))
	for rows.Next() {
		var id int64
		var name, tz string
		if err := rows.Scan(&id, &name, &tz); err != nil {
			return nil, err
		}
		out[id] = [2]string{name, tz}
	}
	return out, rows.Err()
}

// attentionItems are the items of one kind: (building_id, id, label parts…,
// at, status) of the buildings in ?1 (a JSON array), at most ?4 per
// building, oldest first; ?2 is the clock and ?3 the kind's bound, as for
// the counts.
var attentionItems = map[doorledger.AttentionKind]string{
	doorledger.AttentionUnconsented: `SELECT building_id, id, vendor, model, serial, location, created_at, '' FROM (
		SELECT d.*, ROW_NUMBER() OVER (PARTITION BY d.building_id ORDER BY d.created_at, d.id) AS rn FROM devices d
		WHERE d.unconsented = 1 AND d.retired = 0 AND d.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionCommand: `SELECT building_id, id, vendor, model, serial, location, requested_at, status FROM (
		SELECT d.building_id, d.id, d.vendor, d.model, d.serial, d.location, cm.requested_at, cm.status,
			ROW_NUMBER() OVER (PARTITION BY d.building_id ORDER BY cm.requested_at, cm.id) AS rn
		FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.status IN ('not_confirmed', 'refused') AND cm.version = d.desired_version AND d.retired = 0
		AND cm.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionOffline: `SELECT building_id, id, vendor, model, serial, location, since, '' FROM (
		SELECT d.building_id, d.id, d.vendor, d.model, d.serial, d.location, COALESCE(d.last_seen_at, d.created_at) AS since,
			ROW_NUMBER() OVER (PARTITION BY d.building_id ORDER BY COALESCE(d.last_seen_at, d.created_at), d.id) AS rn
		FROM devices d WHERE d.retired = 0 AND d.offline_after < ?2
		AND d.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionAwaiting: `SELECT building_id, id, vendor, model, serial, location, requested_at, '' FROM (
		SELECT c.building_id, c.id, c.vendor, c.model, c.serial, c.location, c.requested_at,
			ROW_NUMBER() OVER (PARTITION BY c.building_id ORDER BY c.requested_at, c.id) AS rn
		FROM consents c WHERE c.status = 'awaiting_signature' AND c.expired_at IS NULL
		AND c.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionLapsing: `SELECT building_id, id, vendor, model, serial, location, expires_at, '' FROM (
		SELECT c.building_id, c.id, c.vendor, c.model, c.serial, c.location, c.expires_at,
			ROW_NUMBER() OVER (PARTITION BY c.building_id ORDER BY c.expires_at, c.id) AS rn
		FROM consents c WHERE c.status = 'signed' AND c.expires_at <= ?3
		AND EXISTS (SELECT 1 FROM devices d WHERE d.consent_id = c.id AND d.retired = 0)
		AND c.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionEnded: `SELECT building_id, id, vendor, model, serial, location, at, kind FROM (
		SELECT c.building_id, c.id, c.vendor, c.model, c.serial, c.location, e.at, e.kind,
			ROW_NUMBER() OVER (PARTITION BY c.building_id ORDER BY e.at DESC, e.id DESC) AS rn
		FROM consent_events e JOIN consents c ON c.id = e.consent_id
		WHERE e.kind IN ('withdrawn', 'disputed') AND e.at >= ?3
		AND c.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
	doorledger.AttentionResidentReport: `SELECT building_id, id, '', '', '', location, created_at, '' FROM (
		SELECT r.building_id, r.id, r.location, r.created_at,
			ROW_NUMBER() OVER (PARTITION BY r.building_id ORDER BY r.created_at, r.id) AS rn
		FROM resident_reports r WHERE r.resolved_at IS NULL
		AND r.building_id IN (SELECT value FROM json_each(?1))) WHERE rn <= ?4`,
}

// items reads, for the buildings listed, up to per items of each kind.
func (s *AttentionService) items(ctx context.Context, now time.Time, list []*doorledger.BuildingAttention, per int) error {
	byID := make(map[int64]*doorledger.BuildingAttention, len(list))
	ids := make([]int64, 0, len(list))
	for _, b := range list {
		byID[b.BuildingID] = b
		ids = append(ids, b.BuildingID)
		if n := b.Counts.Of(doorledger.AttentionAnomalies); n > 0 {
			b.Items = append(b.Items, doorledger.AttentionItem{Kind: doorledger.AttentionAnomalies})
		}
	}
	idList := idsJSON(ids)
	for _, k := range attentionCounts {
		query, ok := attentionItems[k.kind]
		if !ok {
			continue
		}
		if err := s.itemsOf(ctx, k.kind, query, []any{idList, formatTime(now), formatTime(doorledger.AttentionBound(k.kind, now)), per}, byID); err != nil {
			return fmt.Errorf("items %s: %w", k.kind, err)
		}
	}
	return nil
}

func (s *AttentionService) itemsOf(ctx context.Context, kind doorledger.AttentionKind, query string, args []any, byID map[int64]*doorledger.BuildingAttention) error {
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var bid, id int64
		var vendor, model, serial, location, status string
		var at time.Time
		if err := rows.Scan(&bid, &id, &vendor, &model, &serial, &location, nullTime{&at}, &status); err != nil {
			return err
		}
		if b := byID[bid]; b != nil {
			b.Items = append(b.Items, doorledger.NewAttentionItem(kind, id, vendor, model, serial, location, status, at))
		}
	}
	return rows.Err()
}
