package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/unlockburst"
	"github.com/doorledger/doorledger/internal/unlockref"
)

// ingestDevice is what anomaly checks need of a device. The committer keeps
// it across groups while the database's unlock_cache_epoch says nothing it
// depends on changed (see migrations/003), and updates it with what a group
// does to the device. Times are kept as stored text, which sorts as time.
type ingestDevice struct {
	id, buildingID                  int64
	vendor, model, serial, location string
	retired, unconsented            bool
	desired                         doorledger.DeviceState
	desiredVer                      int64
	desiredSince                    string // when the desired version was requested
	consentID                       int64
	consentStatus                   string
	signedAt, expiresAt, statusAt   string
	lastSeen                        string
}

// consentCovers reports whether the device's current consent covered t.
func (d *ingestDevice) consentCovers(t string) bool {
	if d.consentID == 0 || d.signedAt == "" || t < d.signedAt || t >= d.expiresAt {
		return false
	}
	switch d.consentStatus {
	case string(doorledger.ConsentSigned):
		return true
	case string(doorledger.ConsentWithdrawn), string(doorledger.ConsentLapsed):
		return t < d.statusAt
	}
	return false // declined, awaiting, or disputed: never valid
}

func (d *ingestDevice) consentActiveAt(now string) bool {
	return d.consentStatus == string(doorledger.ConsentSigned) && d.expiresAt > now
}

// ingestBuilding is a building's rules, cached like devices.
type ingestBuilding struct {
	id          int64
	name        string
	loc         *time.Location
	hours       doorledger.DeliverySchedule
	burstN      int
	burstWindow time.Duration
	alertBoard  bool
}

// burstMemoryMax bounds the times a burst check keeps in memory; past it, or
// past 64 times the events checked, each event is counted in the database. A
// variable for tests.
var burstMemoryMax = 50000

type refKey struct {
	buildingID int64
	ref        string
}

// ingestCache is the committer's knowledge of devices and buildings, valid
// while the database's epoch is the one it was read at.
type ingestCache struct {
	epoch     int64
	devices   map[int64]*ingestDevice
	buildings map[int64]*ingestBuilding
	refs      map[refKey]int64 // 0: unknown, -1: ambiguous
}

func (c *ingestCache) reset(epoch int64) {
	c.epoch = epoch
	c.devices = map[int64]*ingestDevice{}
	c.buildings = map[int64]*ingestBuilding{}
	c.refs = map[refKey]int64{}
}

// maxCachedDevices bounds the cache; past it, it starts again.
const maxCachedDevices = 200000

// seenEvery is how often a device heard from is written as seen: under load
// its last_seen_at is written once per interval, not once per event.
const seenEvery = 10 * time.Second

// ingestGroup is one group-commit transaction.
type ingestGroup struct {
	s         *UnlockService
	tx        *Tx
	ctx       context.Context // system: the group belongs to no caller
	now       string          // tx.now as stored
	devices   map[int64]*ingestDevice
	buildings map[int64]*ingestBuilding
	refs      map[refKey]int64
	bursts    map[int64]*unlockburst.Check
	seen      map[int64]bool // devices heard from directly (MQTT, HTTP)
	alerts    notice.UnlockAlerts
	changed   bool // the group changed a device: the epoch moved
}

func (s *UnlockService) writeGroup(calls []groupcommit.Item[*ingestReq]) (answers []groupcommit.Answer[doorledger.ImportResult], err error) {
	reqs := make([]*ingestReq, len(calls))
	for i, c := range calls {
		c.Work.ctx = c.Ctx
		reqs[i] = c.Work
	}
	ctx := doorledger.NewSystemContext(context.Background(), "system")
	tx, err := s.db.beginBulkTx(ctx, insertUnlockSQL, countGrantedSQL, grantedTimesSQL, cacheEpochSQL,
		loadDevicesSQL, loadBuildingsSQL, lookupRefSQL, devicesSeenSQL)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // on failure, the committer also resets the cache (failed)
	epoch, err := readCacheEpoch(ctx, tx)
	if err != nil {
		return nil, err
	}
	if epoch != s.cache.epoch || s.cache.devices == nil || len(s.cache.devices) > maxCachedDevices {
		s.cache.reset(epoch)
	}
	g := &ingestGroup{s: s, tx: tx, ctx: ctx, now: formatTime(tx.now),
		devices: s.cache.devices, buildings: s.cache.buildings, refs: s.cache.refs,
		bursts: map[int64]*unlockburst.Check{}, seen: map[int64]bool{}}
	answers = make([]groupcommit.Answer[doorledger.ImportResult], len(reqs))
	refused, err := g.resolve(reqs)
	if err != nil {
		return nil, err
	}
	for i, r := range reqs {
		if refused[i] != nil {
			answers[i].Err = refused[i]
			continue
		}
		if answers[i].Val, err = g.write(r); err != nil {
			return nil, err
		}
	}
	if err := g.finish(); err != nil {
		return nil, err
	}
	// What this group changed (a device flagged unconsented) moved the epoch:
	// take the new one, since the cache was kept up to date by hand.
	if g.changed {
		if epoch, err = readCacheEpoch(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit unlocks: %w", err)
	}
	s.cache.epoch = epoch
	return answers, nil
}

// The statements of the hot path, prepared once on the writer connection
// (named to BeginTx). A list of ids is one JSON array (json_each), so that
// the statement does not change with their number: compiling the IN list of
// loadDevices afresh for each group was 4-8% of the portal's CPU under the
// portfolio rig, whose revokes empty the cache every second or so
// (docs/benchmarks.md, "Per-message cost (session 7)"). The lookups join
// json_each first (CROSS JOIN keeps that order), each id then found by
// primary key: IN (SELECT value FROM json_each(?)) opened a temporary b-tree
// of the ids at each run (0.33 s of loadDevices' 1.70 s in a 60 s window).
const (
	cacheEpochSQL  = `SELECT n FROM unlock_cache_epoch WHERE id = 1`
	loadDevicesSQL = `SELECT d.id, d.building_id, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
		d.desired_state, d.desired_version,
		COALESCE((SELECT cm.requested_at FROM commands cm WHERE cm.device_id = d.id AND cm.version = d.desired_version), ''),
		COALESCE(c.id, 0), COALESCE(c.status, ''), COALESCE(c.signed_at, ''), COALESCE(c.expires_at, ''), COALESCE(c.status_at, ''),
		COALESCE(d.last_seen_at, '')
		FROM json_each(?1) j CROSS JOIN devices d ON d.id = j.value
		LEFT JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id`
	loadBuildingsSQL = `SELECT b.id, b.name, b.timezone, b.delivery_hours, b.burst_count, b.burst_minutes, b.alert_board
		FROM json_each(?1) j CROSS JOIN buildings b ON b.id = j.value`
	lookupRefSQL = `SELECT id FROM devices WHERE building_id = ? AND serial = ? COLLATE NOCASE AND retired = 0 ORDER BY id LIMIT 2`
	// No LIMIT: a bound LIMIT makes SQLite re-prepare the statement at every
	// run (docs/benchmarks.md); the window of a burst is small anyway.
	countGrantedSQL = `SELECT COUNT(*) FROM unlock_events
		WHERE building_id = ?1 AND effective_at > ?2 AND effective_at <= ?3 AND result = 'granted'`
	grantedTimesSQL = `SELECT effective_at FROM unlock_events
		WHERE building_id = ?1 AND effective_at > ?2 AND effective_at <= ?3 AND result = 'granted' ORDER BY effective_at`
)

// readCacheEpoch reads the cache epoch in tx.
func readCacheEpoch(ctx context.Context, tx *Tx) (int64, error) {
	st, err := tx.stmt(ctx, cacheEpochSQL)
	if err != nil {
		return 0, err
	}
	var epoch int64
	if err := st.QueryRowContext(ctx).Scan(&epoch); err != nil {
		return 0, fmt.Errorf("read cache epoch: %w", err)
	}
	return epoch, nil
}

// stmt returns the group's transaction's handle on a prepared statement
// (parsing SQL costs more than running these small statements).
func (g *ingestGroup) stmt(query string) (*sql.Stmt, error) { return g.tx.stmt(g.ctx, query) }

// resolve does every lookup that can refuse a batch, before anything is
// written: devices by id and by reference, buildings and their rules. It
// returns, per request, why it is refused (nil: accepted).
func (g *ingestGroup) resolve(reqs []*ingestReq) ([]error, error) {
	tx := g.tx
	var deviceIDs, buildingIDs []int64
	for _, r := range reqs {
		for i := range r.events {
			ev := &r.events[i]
			if ev.ReceivedAt.IsZero() {
				ev.ReceivedAt = tx.now
			}
			if ev.DeviceID != 0 {
				if g.devices[ev.DeviceID] == nil {
					deviceIDs = append(deviceIDs, ev.DeviceID)
				}
				continue
			}
			if g.buildings[ev.BuildingID] == nil {
				buildingIDs = append(buildingIDs, ev.BuildingID)
			}
			k := refKey{ev.BuildingID, ev.DeviceRef}
			id, ok := g.refs[k]
			if !ok {
				var err error
				if id, err = g.lookupRef(k); err != nil {
					return nil, err
				}
			}
			if id > 0 && g.devices[id] == nil {
				deviceIDs = append(deviceIDs, id)
			}
		}
	}
	if err := g.loadDevices(deviceIDs); err != nil {
		return nil, err
	}
	for _, id := range deviceIDs {
		if d := g.devices[id]; d != nil && g.buildings[d.buildingID] == nil {
			buildingIDs = append(buildingIDs, d.buildingID)
		}
	}
	if err := g.loadBuildings(buildingIDs); err != nil {
		return nil, err
	}

	known := unlockref.Known{
		Device: func(id int64) (int64, string, bool) {
			if d := g.devices[id]; d != nil {
				return d.buildingID, d.serial, true
			}
			return 0, "", false
		},
		Building: func(id int64) bool { return g.buildings[id] != nil },
		Ref:      func(building int64, ref string) int64 { return g.refs[refKey{building, ref}] },
	}
	refused := make([]error, len(reqs))
	for ri, r := range reqs {
		var p problems
		unlockref.Resolve(r.events, r.label, known, p.add)
		refused[ri] = p.err()
	}

	// Burst detection without a query per event (internal/unlockburst
	// says how): one count around the whole group per building; the times
	// recorded around it read once when an event may be a burst; a count per
	// event only when they are too many.
	var plan unlockburst.Plan
	for ri, r := range reqs {
		if refused[ri] != nil {
			continue
		}
		for i := range r.events {
			ev := &r.events[i]
			b := g.buildings[ev.BuildingID]
			if b.burstN <= 0 || ev.Result != doorledger.UnlockGranted {
				continue
			}
			// Windows are of effective time (as stored: microseconds).
			plan.Add(b.id, effectiveAt(ev).UnixMicro(), ev.OccurredAt, clockSkewed(ev))
		}
	}
	g.bursts = plan.Checks()
	for id, bc := range g.bursts {
		b := g.buildings[id]
		from := bc.MinT.Add(-b.burstWindow)
		n, err := g.countGranted(b, from, bc.MaxT)
		if err != nil {
			return nil, err
		}
		if plan.Choose(id, n, b.burstN, b.burstWindow, burstMemoryMax) {
			if bc.Times, err = g.grantedTimes(b, from, bc.MaxT, n); err != nil {
				return nil, err
			}
		}
	}
	return refused, nil
}

// lookupRef finds the device a source named by its serial (any case) in a building.
func (g *ingestGroup) lookupRef(k refKey) (int64, error) {
	st, err := g.stmt(lookupRefSQL)
	if err != nil {
		return 0, err
	}
	rows, err := st.QueryContext(g.ctx, k.buildingID, k.ref)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var id int64
	switch len(ids) {
	case 1:
		id = ids[0]
	case 2:
		id = -1
	}
	g.refs[k] = id
	return id, nil
}

// countGranted counts the building's recorded granted unlocks in (from, to].
func (g *ingestGroup) countGranted(b *ingestBuilding, from, to time.Time) (int, error) {
	st, err := g.stmt(countGrantedSQL)
	if err != nil {
		return 0, err
	}
	var n int
	err = st.QueryRowContext(g.ctx, b.id, formatTime(from), formatTime(to)).Scan(&n)
	return n, err
}

// grantedTimes reads the times (Unix µs, sorted) of the building's recorded
// granted unlocks in (from, to], of which there are about n.
func (g *ingestGroup) grantedTimes(b *ingestBuilding, from, to time.Time, n int) ([]int64, error) {
	st, err := g.stmt(grantedTimesSQL)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(g.ctx, b.id, formatTime(from), formatTime(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	times := make([]int64, 0, n)
	for rows.Next() {
		var at string
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		times = append(times, parseTime(at).UnixMicro())
	}
	return times, rows.Err()
}

// uniqueIDs sorts ids and drops repeats (a join would return a row per repeat).
func uniqueIDs(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}

func chunks(ids []int64, size int) [][]int64 {
	ids = uniqueIDs(ids)
	var out [][]int64
	for len(ids) > 0 {
		n := min(size, len(ids))
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	return out
}

func inList(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(ids)), ","), args
}

func (g *ingestGroup) loadDevices(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	st, err := g.stmt(loadDevicesSQL)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(g.ctx, idsJSON(uniqueIDs(ids)))
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d ingestDevice
		if err := rows.Scan(&d.id, &d.buildingID, &d.vendor, &d.model, &d.serial, &d.location, &d.retired, &d.unconsented,
			&d.desired, &d.desiredVer, &d.desiredSince,
			&d.consentID, &d.consentStatus, &d.signedAt, &d.expiresAt, &d.statusAt, &d.lastSeen); err != nil {
			return err
		}
		g.devices[d.id] = &d
	}
	return rows.Err()
}

func (g *ingestGroup) loadBuildings(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	st, err := g.stmt(loadBuildingsSQL)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(g.ctx, idsJSON(uniqueIDs(ids)))
	if err != nil {
		return fmt.Errorf("load buildings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b ingestBuilding
		var tz, hours string
		var minutes int
		if err := rows.Scan(&b.id, &b.name, &tz, &hours, &b.burstN, &minutes, &b.alertBoard); err != nil {
			return err
		}
		b.loc = location(tz)
		b.hours, _ = doorledger.ParseDeliverySchedule(hours) // validated when saved
		b.burstWindow = time.Duration(minutes) * time.Minute
		g.buildings[b.id] = &b
	}
	return rows.Err()
}

// location is the time zone of a name, loaded once (UTC when it does not load).
func location(name string) *time.Location { return doorledger.Location(name) }
