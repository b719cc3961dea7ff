package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/unlockburst"
	"github.com/doorledger/doorledger/internal/unlockref"
)

// ingestDevice is what anomaly checks need of a device. The committer keeps
// it across groups while the database's unlock_cache_epoch says nothing it
// depends on changed (migrations/002), and updates it with what a group does
// to the device. Zero times are NULLs.
type ingestDevice struct {
	id, buildingID                  int64
	vendor, model, serial, location string
	retired, unconsented            bool
	desired                         doorledger.DeviceState
	desiredVer                      int64
	desiredSince                    time.Time // when the desired version was requested
	consentID                       int64
	consentStatus                   string
	signedAt, expiresAt, statusAt   time.Time
	lastSeen                        time.Time
}

// consentCovers reports whether the device's current consent covered t.
func (d *ingestDevice) consentCovers(t time.Time) bool {
	if d.consentID == 0 || d.signedAt.IsZero() || t.Before(d.signedAt) || !t.Before(d.expiresAt) {
		return false
	}
	switch d.consentStatus {
	case string(doorledger.ConsentSigned):
		return true
	case string(doorledger.ConsentWithdrawn), string(doorledger.ConsentLapsed):
		return t.Before(d.statusAt)
	}
	return false // declined, awaiting, or disputed: never valid
}

func (d *ingestDevice) consentActiveAt(now time.Time) bool {
	return d.consentStatus == string(doorledger.ConsentSigned) && d.expiresAt.After(now)
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
// past 64 times the events checked, each event is counted in the database.
const burstMemoryMax = 50000

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
	devices   map[int64]*ingestDevice
	buildings map[int64]*ingestBuilding
	refs      map[refKey]int64
	bursts    map[int64]*unlockburst.Check
	seen      map[int64]bool // devices heard from directly (MQTT, HTTP)
	alerts    notice.UnlockAlerts
	changed   bool // the group changed a device: the epoch moved
}

// groupAttempts bounds the tries of one group that PostgreSQL aborted to
// keep it apart from a concurrent one (a deadlock, say, between two
// instances' groups counting the same building's day), or that found one
// of its new events recorded meanwhile (errIngestRaced).
const groupAttempts = 5

func (s *UnlockService) writeGroup(calls []groupcommit.Item[*ingestReq]) (answers []groupcommit.Answer[doorledger.ImportResult], err error) {
	reqs := make([]*ingestReq, len(calls))
	for i, c := range calls {
		c.Work.ctx = c.Ctx
		reqs[i] = c.Work
	}
	for attempt := 1; ; attempt++ {
		answers, err = s.tryGroup(reqs)
		if err == nil || !(isRetryable(err) || errors.Is(err, errIngestRaced)) || attempt == groupAttempts {
			return answers, err
		}
		s.cache.reset(-1) // what the attempt cached may have been rolled back
		for _, r := range reqs {
			r.events = slices.Clone(r.in)
		}
	}
}

// tryGroup writes the group in one transaction.
func (s *UnlockService) tryGroup(reqs []*ingestReq) ([]groupcommit.Answer[doorledger.ImportResult], error) {
	ctx := doorledger.NewSystemContext(context.Background(), "system")
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // on failure, the committer also resets the cache (failed)
	var epoch int64
	if err := tx.QueryRow(ctx, `SELECT n FROM unlock_cache_epoch WHERE id = 1`).Scan(&epoch); err != nil {
		return nil, fmt.Errorf("read cache epoch: %w", err)
	}
	if epoch != s.cache.epoch || s.cache.devices == nil || len(s.cache.devices) > maxCachedDevices {
		s.cache.reset(epoch)
	}
	g := &ingestGroup{s: s, tx: tx, ctx: ctx,
		devices: s.cache.devices, buildings: s.cache.buildings, refs: s.cache.refs,
		bursts: map[int64]*unlockburst.Check{}, seen: map[int64]bool{}}
	answers := make([]groupcommit.Answer[doorledger.ImportResult], len(reqs))
	refused, err := g.resolve(reqs)
	if err != nil {
		return nil, err
	}
	var accepted []*ingestReq
	for i, r := range reqs {
		if refused[i] != nil {
			answers[i].Err = refused[i]
			continue
		}
		accepted = append(accepted, r)
	}
	results, err := g.write(accepted)
	if err != nil {
		return nil, err
	}
	for i, j := 0, 0; i < len(reqs); i++ {
		if refused[i] == nil {
			answers[i].Val = results[j]
			j++
		}
	}
	if err := g.finish(); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit unlocks: %w", err)
	}
	// What this group changed (a device flagged unconsented) moved the
	// epoch. Package sqlite, the only writer, takes the new epoch as its
	// own; here another instance may have moved it too, between this
	// group's read and its commit, for a change the cache does not hold:
	// the next group reads everything again.
	if g.changed {
		epoch = -1
	}
	s.cache.epoch = epoch
	return answers, nil
}

// The statements of the burst check.
const (
	countGrantedSQL = `SELECT COUNT(*) FROM unlock_events
		WHERE building_id = $1 AND effective_at > $2 AND effective_at <= $3 AND result = 'granted'`
	grantedTimesSQL = `SELECT effective_at FROM unlock_events
		WHERE building_id = $1 AND effective_at > $2 AND effective_at <= $3 AND result = 'granted' ORDER BY effective_at`
)

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

// lookupRef finds the device a source named by its serial (any ASCII case)
// in a building: lower() finds the candidates, unlockref.SameSerial keeps SQLite's
// NOCASE (which folds ASCII letters only).
func (g *ingestGroup) lookupRef(k refKey) (int64, error) {
	rows, err := g.tx.Query(g.ctx, `SELECT id, serial FROM devices WHERE building_id = $1 AND lower(serial) = lower($2) AND NOT retired ORDER BY id`, k.buildingID, k.ref)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		var serial string
		if err := rows.Scan(&id, &serial); err != nil {
			return 0, err
		}
		if unlockref.SameSerial(k.ref, serial) {
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var id int64
	switch {
	case len(ids) == 1:
		id = ids[0]
	case len(ids) > 1:
		id = -1
	}
	g.refs[k] = id
	return id, nil
}

// countGranted counts the building's recorded granted unlocks in (from, to].
func (g *ingestGroup) countGranted(b *ingestBuilding, from, to time.Time) (int, error) {
	var n int
	err := g.tx.QueryRow(g.ctx, countGrantedSQL, b.id, from, to).Scan(&n)
	return n, err
}

// grantedTimes reads the times (Unix µs, sorted) of the building's recorded
// granted unlocks in (from, to], of which there are about n.
func (g *ingestGroup) grantedTimes(b *ingestBuilding, from, to time.Time, n int) ([]int64, error) {
	rows, err := g.tx.Query(g.ctx, grantedTimesSQL, b.id, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	times := make([]int64, 0, n)
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		times = append(times, at.UnixMicro())
	}
	return times, rows.Err()
}

// uniqueIDs sorts ids and drops repeats.
func uniqueIDs(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (g *ingestGroup) loadDevices(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := g.tx.Query(g.ctx, `SELECT d.id, d.building_id, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
		d.desired_state, d.desired_version,
		(SELECT cm.requested_at FROM commands cm WHERE cm.device_id = d.id AND cm.version = d.desired_version),
		COALESCE(c.id, 0), COALESCE(c.status, ''), c.signed_at, c.expires_at, c.status_at, d.last_seen_at
		FROM devices d LEFT JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
		WHERE d.id = ANY ($1)`, uniqueIDs(ids))
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d ingestDevice
		if err := rows.Scan(&d.id, &d.buildingID, &d.vendor, &d.model, &d.serial, &d.location, &d.retired, &d.unconsented,
			&d.desired, &d.desiredVer, at(&d.desiredSince),
			&d.consentID, &d.consentStatus, at(&d.signedAt), at(&d.expiresAt), at(&d.statusAt), at(&d.lastSeen)); err != nil {
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
	rows, err := g.tx.Query(g.ctx, `SELECT id, name, timezone, delivery_hours, burst_count, burst_minutes, alert_board
		FROM buildings WHERE id = ANY ($1)`, uniqueIDs(ids))
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
