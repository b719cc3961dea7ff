package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// UnlockService implements doorledger.UnlockService: durable, idempotent
// ingest of unlock events with group commit, anomaly flags and alerts, and the
// building's history, charts, export, retention and heartbeat watch.
//
// Group commit (groupCommitter): RecordUnlocks queues the caller's events and
// waits; the committer takes everything waiting, up to MaxBatch events, and
// writes it in ONE transaction on the DB's single writer connection, then
// answers each caller.
//
// Each caller's batch is all or nothing: lookups that can refuse a batch
// (unknown device id, device of another building) happen before anything is
// written, and refuse only that caller. Should a write fail, the transaction
// is rolled back and each caller's batch is retried alone in its own, so one
// caller's failure never loses or half-writes another's.
type UnlockService struct {
	db *DB
	// MaxBatch bounds the events of one group-commit transaction (one caller's
	// batch is never split).
	MaxBatch int

	group *groupCommitter[*ingestReq, doorledger.ImportResult]

	cache ingestCache // used by the committer only
}

// Stats returns how many group-commit transactions were committed and how many
// events they carried (their ratio is the batching achieved).
func (s *UnlockService) Stats() (groups, events int64) { return s.group.stats() }

// NewUnlockService returns the SQLite unlock service.
func NewUnlockService(db *DB) *UnlockService {
	s := &UnlockService{db: db, MaxBatch: 10000}
	s.group = newGroupCommitter("unlock ingest", func() int { return s.MaxBatch }, func(r *ingestReq) int { return len(r.events) }, s.writeGroup)
	s.group.failed = func() { s.cache.reset(-1) } // the group's changes to it were rolled back
	return s
}

// Wait returns when the committer has written everything queued, even
// batches whose callers stopped waiting: at shutdown, after the transports
// stopped and before the log is sequenced a last time.
func (s *UnlockService) Wait() { s.group.wait() }

var _ doorledger.UnlockService = (*UnlockService)(nil)

// Anomaly bit flags as stored in unlock_events.anomalies: fixed forever.
var anomalyBits = []struct {
	kind string
	bit  int64
}{
	{doorledger.AnomalyAfterRevocation, 1},
	{doorledger.AnomalyWithoutConsent, 2},
	{doorledger.AnomalyUnknownDevice, 4},
	{doorledger.AnomalyOutsideHours, 8},
	{doorledger.AnomalyBurst, 16},
	{doorledger.AnomalyClockSkew, 32},
}

const (
	bitAfterRevocation int64 = 1 << iota
	bitWithoutConsent
	bitUnknownDevice
	bitOutsideHours
	bitBurst
	bitClockSkew
)

func anomalyKinds(bits int64) []string {
	var kinds []string
	for _, a := range anomalyBits {
		if bits&a.bit != 0 {
			kinds = append(kinds, a.kind)
		}
	}
	return kinds
}

func anomalyBit(kind string) int64 {
	for _, a := range anomalyBits {
		if a.kind == kind {
			return a.bit
		}
	}
	return 0
}

// ingestReq is one caller's batch waiting for the committer.
type ingestReq struct {
	ctx    context.Context // the caller's (set by writeGroup)
	events []doorledger.UnlockEvent
	lines  []int                    // file lines, for messages (imports)
	imp    *doorledger.UnlockImport // a manager's import: audited with its counts
}

// label names event i of the request in messages: "event 3" (from 0) or "line 14".
func (r *ingestReq) label(i int) string {
	if i < len(r.lines) && r.lines[i] > 0 {
		return "line " + strconv.Itoa(r.lines[i])
	}
	return "event " + strconv.Itoa(i)
}

// problems collects what is wrong with a batch, by event, into one EINVALID.
type problems struct {
	fields map[string]string
	first  string
	n      int
}

const maxProblems = 100

func (p *problems) add(where, msg string) {
	p.n++
	if p.first == "" {
		p.first = where + ": " + msg
	}
	if len(p.fields) < maxProblems {
		if p.fields == nil {
			p.fields = map[string]string{}
		}
		if _, ok := p.fields[where]; !ok {
			p.fields[where] = msg
		}
	}
}

func (p *problems) err() error {
	if p.n == 0 {
		return nil
	}
	msg := p.first
	if p.n > 1 {
		msg = fmt.Sprintf("%d problems; nothing was recorded. %s", p.n, p.first)
	}
	return &doorledger.Error{Code: doorledger.EINVALID, Message: msg, Fields: p.fields}
}

// RecordUnlocks implements doorledger.EventSink for transports: it returns
// once the events are committed (or refused, all of them). An empty Source is
// SourceMQTT; a zero ReceivedAt is the time of recording.
func (s *UnlockService) RecordUnlocks(ctx context.Context, events []doorledger.UnlockEvent) error {
	_, err := s.record(ctx, events, nil, nil)
	return err
}

// RecordUnlocksResult is RecordUnlocks that also says what was new.
func (s *UnlockService) RecordUnlocksResult(ctx context.Context, events []doorledger.UnlockEvent) (*doorledger.ImportResult, error) {
	return s.record(ctx, events, nil, nil)
}

// ImportUnlocks records a vendor's export into a building (its managers): all
// or nothing, audited with the file's name, hash and counts. EINVALID lists the
// rows that cannot be recorded by line (Fields: "line 14" → message).
func (s *UnlockService) ImportUnlocks(ctx context.Context, imp doorledger.UnlockImport) (*doorledger.ImportResult, error) {
	if err := checkManage(ctx, s.db.read, callerFrom(ctx), imp.BuildingID); err != nil {
		return nil, err
	}
	if len(imp.Events) == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The file holds no events.")
	}
	events := make([]doorledger.UnlockEvent, len(imp.Events))
	for i, ev := range imp.Events {
		ev.BuildingID, ev.Source = imp.BuildingID, doorledger.SourceCSV
		events[i] = ev
	}
	return s.record(ctx, events, imp.Lines, &imp)
}

func (s *UnlockService) record(ctx context.Context, in []doorledger.UnlockEvent, lines []int, imp *doorledger.UnlockImport) (*doorledger.ImportResult, error) {
	if len(in) == 0 {
		return &doorledger.ImportResult{}, nil
	}
	r := &ingestReq{events: make([]doorledger.UnlockEvent, len(in)), lines: lines, imp: imp}
	var p problems
	for i, ev := range in {
		if err := ev.Validate(); err != nil {
			p.add(r.label(i), doorledger.ErrorMessage(err))
			continue
		}
		if ev.Source == "" {
			ev.Source = doorledger.SourceMQTT
		}
		ev.ID, ev.Anomalies = 0, nil
		r.events[i] = ev
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	// If ctx ends first, the committer may still commit the batch: the
	// caller does not acknowledge, the source sends it again, and the repeat
	// is a no-op.
	res, err := s.group.submit(ctx, r)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

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

// burstCheck is a building's burst check within one group.
type burstCheck struct {
	mode       burstMode
	minT, maxT time.Time // of the group's events checked
	// burstMemory: the occurrence times (Unix µs, sorted) of the building's
	// granted unlocks recorded in (minT - window, maxT], the group's own
	// added as they are recorded.
	times []int64
}

type burstMode int

const (
	burstNone   burstMode = iota // no event of the group can be a burst
	burstMemory                  // count each event's window in times
	burstQuery                   // count each event's window in the database
)

// burstMemoryMax bounds the times a burst check keeps in memory; past it, or
// past 64 times the events checked, each event is counted in the database. A
// variable for tests.
var burstMemoryMax = 50000

// count returns how many of the times fall in (t - window, t].
func (bc *burstCheck) count(t, window int64) int {
	lo, _ := slices.BinarySearch(bc.times, t-window+1)
	hi, _ := slices.BinarySearch(bc.times, t+1)
	return hi - lo
}

// add records a granted unlock's time.
func (bc *burstCheck) add(t int64) {
	i, _ := slices.BinarySearch(bc.times, t)
	bc.times = slices.Insert(bc.times, i, t)
}

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
	bursts    map[int64]*burstCheck
	seen      map[int64]bool // devices heard from directly (MQTT, HTTP)
	alerts    map[string]*unlockAlert
	alertKeys []string
	changed   bool // the group changed a device: the epoch moved
}

func (s *UnlockService) writeGroup(calls []groupWork[*ingestReq]) (answers []groupAnswer[doorledger.ImportResult], err error) {
	reqs := make([]*ingestReq, len(calls))
	for i, c := range calls {
		c.work.ctx = c.ctx
		reqs[i] = c.work
	}
	ctx := doorledger.NewSystemContext(context.Background(), "system")
	tx, err := s.db.BeginTx(ctx, insertUnlockSQL, countGrantedSQL, grantedTimesSQL)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // on failure, the committer also resets the cache (failed)
	var epoch int64
	if err := tx.QueryRowContext(ctx, `SELECT n FROM unlock_cache_epoch WHERE id = 1`).Scan(&epoch); err != nil {
		return nil, fmt.Errorf("read cache epoch: %w", err)
	}
	if epoch != s.cache.epoch || s.cache.devices == nil || len(s.cache.devices) > maxCachedDevices {
		s.cache.reset(epoch)
	}
	g := &ingestGroup{s: s, tx: tx, ctx: ctx, now: formatTime(tx.now),
		devices: s.cache.devices, buildings: s.cache.buildings, refs: s.cache.refs,
		bursts: map[int64]*burstCheck{}, seen: map[int64]bool{}, alerts: map[string]*unlockAlert{}}
	answers = make([]groupAnswer[doorledger.ImportResult], len(reqs))
	refused, err := g.resolve(reqs)
	if err != nil {
		return nil, err
	}
	for i, r := range reqs {
		if refused[i] != nil {
			answers[i].err = refused[i]
			continue
		}
		if answers[i].val, err = g.write(r); err != nil {
			return nil, err
		}
	}
	if err := g.finish(); err != nil {
		return nil, err
	}
	// What this group changed (a device flagged unconsented) moved the epoch:
	// take the new one, since the cache was kept up to date by hand.
	if g.changed {
		if err := tx.QueryRowContext(ctx, `SELECT n FROM unlock_cache_epoch WHERE id = 1`).Scan(&epoch); err != nil {
			return nil, fmt.Errorf("read cache epoch: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit unlocks: %w", err)
	}
	s.cache.epoch = epoch
	return answers, nil
}

// The statements of the hot path, prepared once on the writer connection
// (named to BeginTx).
const (
	// No LIMIT: a bound LIMIT makes SQLite re-prepare the statement at every
	// run (measured: 2-3x the cost); the window of a burst is small anyway.
	countGrantedSQL = `SELECT COUNT(*) FROM unlock_events
		WHERE building_id = ?1 AND effective_at > ?2 AND effective_at <= ?3 AND result = 'granted'`
	grantedTimesSQL = `SELECT effective_at FROM unlock_events
		WHERE building_id = ?1 AND effective_at > ?2 AND effective_at <= ?3 AND result = 'granted' ORDER BY effective_at`
)

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

	refused := make([]error, len(reqs))
	for ri, r := range reqs {
		var p problems
		for i := range r.events {
			ev := &r.events[i]
			if ev.DeviceID != 0 {
				d := g.devices[ev.DeviceID]
				if d == nil {
					p.add(r.label(i), fmt.Sprintf("device_id: no device %d", ev.DeviceID))
				} else if ev.BuildingID != 0 && ev.BuildingID != d.buildingID {
					p.add(r.label(i), fmt.Sprintf("device_id: device %d is not in building %d", ev.DeviceID, ev.BuildingID))
				} else if ev.DeviceRef != "" && !sameSerial(ev.DeviceRef, d.serial) {
					// Two devices named: recording either would be a guess.
					p.add(r.label(i), fmt.Sprintf("device: %q is not the serial of device %d; device_id and device name different devices", ev.DeviceRef, ev.DeviceID))
				} else {
					ev.BuildingID = d.buildingID
				}
				continue
			}
			if g.buildings[ev.BuildingID] == nil {
				p.add(r.label(i), fmt.Sprintf("building_id: no building %d", ev.BuildingID))
				continue
			}
			switch id := g.refs[refKey{ev.BuildingID, ev.DeviceRef}]; {
			case id < 0:
				p.add(r.label(i), fmt.Sprintf("device: %q matches several devices of this building; give the device id", ev.DeviceRef))
			case id > 0:
				ev.DeviceID = id
			}
		}
		refused[ri] = p.err()
	}

	// Burst detection without a query per event. An event of the group is a
	// burst when the building's granted unlocks recorded before it in its
	// window, plus itself, exceed the limit: at most the count recorded
	// around the whole group (one query) plus the most of the group's own
	// granted unlocks in any one window ending at an event checked. When that
	// bound is within the limit, no event of the group is a burst (the usual
	// case: live traffic arrives in the order it happens, a group spans
	// seconds). Otherwise the times recorded around the group are read once,
	// and each event's window is counted in memory as the group records its
	// own; only when they are too many is each counted in the database. A
	// vendor's batch or a device's backlog holds more than the limit, spread
	// over hours: it costs one or two queries a building, not one an event.
	times := map[int64]*burstTimes{}
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
			bt := times[b.id]
			if bt == nil {
				bt = &burstTimes{}
				times[b.id] = bt
			}
			// Windows are of effective time (as stored: microseconds,
			// truncated): a skewed event is not checked, but counted at the
			// time it was received.
			at := effectiveAt(ev).UnixMicro()
			bt.all = append(bt.all, at)
			if clockSkewed(ev) {
				continue
			}
			bt.checked = append(bt.checked, at)
			bc := g.bursts[b.id]
			if bc == nil {
				bc = &burstCheck{minT: ev.OccurredAt, maxT: ev.OccurredAt}
				g.bursts[b.id] = bc
			}
			if ev.OccurredAt.Before(bc.minT) {
				bc.minT = ev.OccurredAt
			}
			if ev.OccurredAt.After(bc.maxT) {
				bc.maxT = ev.OccurredAt
			}
		}
	}
	for id, bc := range g.bursts {
		b := g.buildings[id]
		from := bc.minT.Add(-b.burstWindow)
		n, err := g.countGranted(b, from, bc.maxT)
		if err != nil {
			return nil, err
		}
		switch bt := times[id]; {
		case n+bt.mostInWindow(b.burstWindow.Microseconds()) <= b.burstN:
			bc.mode = burstNone
		case n > burstMemoryMax || n > 64*len(bt.checked):
			bc.mode = burstQuery // reading them all would cost more than a count each
		default:
			bc.mode = burstMemory
			if bc.times, err = g.grantedTimes(b, from, bc.maxT, n); err != nil {
				return nil, err
			}
		}
	}
	return refused, nil
}

// burstTimes are the occurrence times (Unix µs) of a group's granted unlocks
// in one building: all of them, and those checked for a burst.
type burstTimes struct{ all, checked []int64 }

// mostInWindow returns the most of all's times within [t-window, t] for a
// checked time t (one µs wider than a burst's window (t-window, t]: a bound).
func (bt *burstTimes) mostInWindow(window int64) int {
	slices.Sort(bt.all)
	slices.Sort(bt.checked)
	most, lo, hi := 0, 0, 0
	for _, t := range bt.checked {
		for hi < len(bt.all) && bt.all[hi] <= t {
			hi++
		}
		for lo < hi && bt.all[lo] < t-window {
			lo++
		}
		most = max(most, hi-lo)
	}
	return most
}

// sameSerial reports whether a device reference names the device of serial,
// as lookupRef matches them (SQLite's NOCASE: ASCII letters only).
func sameSerial(ref, serial string) bool {
	if len(ref) != len(serial) {
		return false
	}
	for i := 0; i < len(ref); i++ {
		a, b := ref[i], serial[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// lookupRef finds the device a source named by its serial (any case) in a building.
func (g *ingestGroup) lookupRef(k refKey) (int64, error) {
	rows, err := g.tx.QueryContext(g.ctx, `SELECT id FROM devices WHERE building_id = ? AND serial = ? COLLATE NOCASE AND retired = 0 ORDER BY id LIMIT 2`, k.buildingID, k.ref)
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

func chunks(ids []int64, size int) [][]int64 {
	slices.Sort(ids)
	ids = slices.Compact(ids)
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
	for _, part := range chunks(ids, 500) {
		marks, args := inList(part)
		rows, err := g.tx.QueryContext(g.ctx, `SELECT d.id, d.building_id, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
			d.desired_state, d.desired_version,
			COALESCE((SELECT cm.requested_at FROM commands cm WHERE cm.device_id = d.id AND cm.version = d.desired_version), ''),
			COALESCE(c.id, 0), COALESCE(c.status, ''), COALESCE(c.signed_at, ''), COALESCE(c.expires_at, ''), COALESCE(c.status_at, ''),
			COALESCE(d.last_seen_at, '')
			FROM devices d LEFT JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
			WHERE d.id IN (`+marks+`)`, args...)
		if err != nil {
			return fmt.Errorf("load devices: %w", err)
		}
		for rows.Next() {
			var d ingestDevice
			if err := rows.Scan(&d.id, &d.buildingID, &d.vendor, &d.model, &d.serial, &d.location, &d.retired, &d.unconsented,
				&d.desired, &d.desiredVer, &d.desiredSince,
				&d.consentID, &d.consentStatus, &d.signedAt, &d.expiresAt, &d.statusAt, &d.lastSeen); err != nil {
				rows.Close()
				return err
			}
			g.devices[d.id] = &d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (g *ingestGroup) loadBuildings(ids []int64) error {
	for _, part := range chunks(ids, 500) {
		marks, args := inList(part)
		rows, err := g.tx.QueryContext(g.ctx, `SELECT id, name, timezone, delivery_hours, burst_count, burst_minutes, alert_board
			FROM buildings WHERE id IN (`+marks+`)`, args...)
		if err != nil {
			return fmt.Errorf("load buildings: %w", err)
		}
		for rows.Next() {
			var b ingestBuilding
			var tz, hours string
			var minutes int
			if err := rows.Scan(&b.id, &b.name, &tz, &hours, &b.burstN, &minutes, &b.alertBoard); err != nil {
				rows.Close()
				return err
			}
			b.loc = location(tz)
			b.hours, _ = doorledger.ParseDeliverySchedule(hours) // validated when saved
			b.burstWindow = time.Duration(minutes) * time.Minute
			g.buildings[b.id] = &b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

var locations sync.Map // time zone name → *time.Location

// location loads a time zone once (UTC when it does not load).
func location(name string) *time.Location {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		loc = time.UTC
	}
	locations.Store(name, loc)
	return loc
}

// clockSkewed reports whether the event's device time is too far from the
// time it was received to be trusted.
func clockSkewed(ev *doorledger.UnlockEvent) bool {
	d := ev.OccurredAt.Sub(ev.ReceivedAt)
	return d > doorledger.ClockSkewAhead || (ev.Source != doorledger.SourceCSV && d < -doorledger.ClockSkewBehind)
}

// effectiveAt is doorledger.UnlockEvent.EffectiveAt of an event about to be
// recorded, before its flags are set (the database derives the same time
// from the flags and times it stores: unlock_events.effective_at).
func effectiveAt(ev *doorledger.UnlockEvent) time.Time {
	if clockSkewed(ev) {
		return ev.ReceivedAt
	}
	return ev.OccurredAt
}

const insertUnlockSQL = `INSERT INTO unlock_events
	(building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// write records one accepted request's events with their anomaly flags, in
// order (a burst count sees the events before it), acts on what they reveal,
// and audits an import. One statement per row: a multi-row INSERT needs a
// statement journal (a temp file here) and measured slower.
func (g *ingestGroup) write(r *ingestReq) (doorledger.ImportResult, error) {
	res := doorledger.ImportResult{Events: len(r.events)}
	insert, err := g.stmt(insertUnlockSQL)
	if err != nil {
		return res, err
	}
	for i := range r.events {
		ev := &r.events[i]
		b := g.buildings[ev.BuildingID]
		d := g.devices[ev.DeviceID] // nil: unknown device
		occurred, received := formatTime(ev.OccurredAt), formatTime(ev.ReceivedAt)
		flags, err := g.flags(ev, occurred, b, d)
		if err != nil {
			return res, err
		}
		effective := occurred
		if flags&bitClockSkew != 0 {
			effective = received
		}
		out, err := insert.ExecContext(g.ctx, ev.BuildingID, nullInt(ev.DeviceID), ev.DeviceRef, ev.EventID,
			occurred, received, ev.Method, ev.ActorRef, string(ev.Result), flags, ev.Source, effective)
		if err != nil {
			return res, fmt.Errorf("insert unlock event: %w", err)
		}
		if d != nil && ev.Source != doorledger.SourceCSV {
			g.seen[d.id] = true // a repeat is a sign of life too
		}
		if n, _ := out.RowsAffected(); n == 0 {
			res.Duplicates++
			continue
		}
		res.Inserted++
		ev.ID, _ = out.LastInsertId()
		if bc := g.bursts[b.id]; bc != nil && bc.mode == burstMemory && ev.Result == doorledger.UnlockGranted {
			bc.add(effectiveAt(ev).UnixMicro())
		}
		if flags == 0 {
			continue
		}
		res.Anomalous++
		ev.Anomalies = anomalyKinds(flags)
		var cmd *doorledger.Command
		if flags&bitWithoutConsent != 0 && !d.consentActiveAt(g.now) {
			if cmd, err = g.flagUnconsented(d, ev); err != nil {
				return res, err
			}
		}
		g.alert(b, d, ev, flags, cmd)
	}
	if r.imp != nil {
		actx := context.WithoutCancel(r.ctx)
		if err := g.tx.audit(actx, "unlocks.import", r.imp.BuildingID, "building", r.imp.BuildingID, map[string]any{
			"file": r.imp.FileName, "sha256": r.imp.SHA256, "events": res.Events, "inserted": res.Inserted,
			"duplicates": res.Duplicates, "anomalous": res.Anomalous}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// flags computes the anomaly flags of an event about to be recorded. Device
// state, consent, delivery hours and bursts are judged at the event's
// effective time (the time received when the device clock is not to be
// trusted), from the cached state when it answers, from the command and
// consent history otherwise.
func (g *ingestGroup) flags(ev *doorledger.UnlockEvent, occurred string, b *ingestBuilding, d *ingestDevice) (int64, error) {
	var flags int64
	t, ts := ev.OccurredAt, occurred
	if clockSkewed(ev) {
		flags |= bitClockSkew
		t, ts = ev.ReceivedAt, formatTime(ev.ReceivedAt)
	}
	if d == nil {
		flags |= bitUnknownDevice
	}
	if ev.Result != doorledger.UnlockGranted {
		// A device flagged unconsented (found in a panel, or seen enabled
		// without consent) has no business at the door: an attempt through
		// it is an anomaly even when it refused the courier.
		if d != nil && d.unconsented {
			flags |= bitWithoutConsent
		}
		return flags, nil
	}
	if d != nil {
		enabled, err := g.enabledAt(d, ts)
		if err != nil {
			return 0, err
		} else if !enabled {
			flags |= bitAfterRevocation
		}
		consented, err := g.consentedAt(d, ts)
		if err != nil {
			return 0, err
		} else if !consented {
			flags |= bitWithoutConsent
		}
	}
	if !b.hours.Allows(t, b.loc) {
		flags |= bitOutsideHours
	}
	if bc := g.bursts[b.id]; bc != nil && bc.mode != burstNone && flags&bitClockSkew == 0 {
		n := 0
		if bc.mode == burstMemory {
			n = bc.count(t.UnixMicro(), b.burstWindow.Microseconds())
		} else {
			var err error
			if n, err = g.countGranted(b, t.Add(-b.burstWindow), t); err != nil {
				return 0, err
			}
		}
		if n+1 > b.burstN {
			flags |= bitBurst
		}
	}
	return flags, nil
}

// enabledAt reports whether the device's desired state was enabled at t.
// Disabled covers a disable not yet confirmed by the device, and a device
// never enabled.
func (g *ingestGroup) enabledAt(d *ingestDevice, t string) (bool, error) {
	if d.retired || d.desiredVer == 0 {
		return false, nil
	}
	if t >= d.desiredSince {
		return d.desired == doorledger.StateEnabled, nil
	}
	var state string
	err := g.tx.QueryRowContext(g.ctx, `SELECT state FROM commands WHERE device_id = ? AND requested_at <= ? ORDER BY version DESC LIMIT 1`,
		d.id, t).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return state == string(doorledger.StateEnabled), err
}

// consentedAt reports whether a consent of the device's building covered the
// device at t: signed by then, not yet expired, not withdrawn or lapsed by
// then, and never disputed.
func (g *ingestGroup) consentedAt(d *ingestDevice, t string) (bool, error) {
	if d.consentCovers(t) {
		return true, nil
	}
	var n int
	err := g.tx.QueryRowContext(g.ctx, `SELECT COUNT(*) FROM consents c WHERE c.building_id = ?1 AND (c.id = ?2 OR c.device_id = ?3)
		AND c.signed_at <= ?4 AND c.expires_at > ?4 AND (c.status = 'signed' OR (c.status IN ('withdrawn', 'lapsed') AND c.status_at > ?4))`,
		d.buildingID, d.consentID, d.id, t).Scan(&n)
	return n > 0, err
}

// flagUnconsented marks a device that opened the door without an active
// consent: unconsented, and told to disable (unless it was both already, so a
// stream of its events does not make a stream of commands).
func (g *ingestGroup) flagUnconsented(d *ingestDevice, ev *doorledger.UnlockEvent) (*doorledger.Command, error) {
	if d.unconsented && d.desired == doorledger.StateDisabled && d.desiredVer > 0 {
		return nil, nil
	}
	cmd, err := g.tx.setDesiredState(g.ctx, d.id, doorledger.StateDisabled, "opened the door without an active consent")
	if err != nil {
		return nil, err
	}
	if _, err := g.tx.ExecContext(g.ctx, `UPDATE devices SET unconsented = 1 WHERE id = ?`, d.id); err != nil {
		return nil, fmt.Errorf("flag device %d: %w", d.id, err)
	}
	if err := g.tx.auditAs(g.ctx, 0, "device "+itoa(d.id), "device.unconsented", d.buildingID, "device", d.id, map[string]any{
		"unlock_event": ev.ID, "event_id": ev.EventID, "command": cmd.ID}); err != nil {
		return nil, err
	}
	d.unconsented, d.desired, d.desiredVer, d.desiredSince = true, cmd.State, cmd.Version, formatTime(cmd.RequestedAt)
	g.changed = true
	return cmd, nil
}

// unlockAlert gathers the group's events that share one alert key.
type unlockAlert struct {
	b      *ingestBuilding
	d      *ingestDevice
	ref    string
	flags  int64
	events []string
	more   int
	cmd    *doorledger.Command
}

const alertEventsListed = 10

// alert adds an anomalous event to the alert of its building, device,
// combination of anomalies and hour received: the outbox sends one mail per
// key, so a burst is one mail, not a hundred.
func (g *ingestGroup) alert(b *ingestBuilding, d *ingestDevice, ev *doorledger.UnlockEvent, flags int64, cmd *doorledger.Command) {
	dev := "ref:" + ev.DeviceRef
	if d != nil {
		dev = "device:" + itoa(d.id)
	}
	key := fmt.Sprintf("unlock:%d:%s:%d:%s", b.id, dev, flags, ev.ReceivedAt.UTC().Format("2006-01-02T15"))
	a := g.alerts[key]
	if a == nil {
		a = &unlockAlert{b: b, d: d, ref: ev.DeviceRef, flags: flags}
		g.alerts[key] = a
		g.alertKeys = append(g.alertKeys, key)
	}
	if cmd != nil {
		a.cmd = cmd
	}
	if len(a.events) >= alertEventsListed {
		a.more++
		return
	}
	line := fmt.Sprintf("  %s  %s  %s", effectiveAt(ev).In(b.loc).Format("2006-01-02 15:04:05 MST"), ev.Result, ev.Method)
	if ev.ActorRef != "" {
		line += "  actor " + ev.ActorRef
	}
	if clockSkewed(ev) {
		line += "  (received then; the device's clock said " + ev.OccurredAt.In(b.loc).Format("2006-01-02 15:04:05 MST") + ")"
	}
	a.events = append(a.events, line+"  (event "+ev.EventID+")")
}

// finish records that the group's devices were heard from (once per
// seenEvery under load) and queues the alerts.
func (g *ingestGroup) finish() error {
	if len(g.seen) > 0 {
		stale := formatTime(g.tx.now.Add(-seenEvery))
		var ids []int64
		for id := range g.seen {
			if d := g.devices[id]; d.lastSeen < stale {
				ids = append(ids, id)
			}
		}
		for _, part := range chunks(ids, 500) {
			marks, args := inList(part)
			if _, err := g.tx.ExecContext(g.ctx, `UPDATE devices SET last_seen_at = ?1 WHERE id IN (`+marks+`)
				AND (last_seen_at IS NULL OR last_seen_at < ?1)`, append([]any{g.now}, args...)...); err != nil {
				return fmt.Errorf("devices seen: %w", err)
			}
			for _, id := range part {
				g.devices[id].lastSeen = g.now
			}
		}
	}
	for _, key := range g.alertKeys {
		a := g.alerts[key]
		kinds := anomalyKinds(a.flags)
		var who string
		if a.d != nil {
			model := a.d.model
			if model == "" {
				model = "(model unknown)"
			}
			who = fmt.Sprintf("device %d (%s %s, serial %s, at %s)", a.d.id, a.d.vendor, model, a.d.serial, a.d.location)
		} else {
			who = fmt.Sprintf("an unknown device calling itself %q, which is not registered in this building", a.ref)
		}
		var body strings.Builder
		fmt.Fprintf(&body, "Doorledger recorded door events at %s from %s that need your attention:\n\n", a.b.name, who)
		for _, k := range kinds {
			fmt.Fprintf(&body, "- %s: it %s.\n", k, doorledger.AnomalyDescription(k))
		}
		body.WriteString("\nEvents (building time):\n")
		for _, l := range a.events {
			body.WriteString(l + "\n")
		}
		if a.more > 0 {
			fmt.Fprintf(&body, "  … and %d more.\n", a.more)
		}
		if a.cmd != nil {
			fmt.Fprintf(&body, "\nThe device has no active consent: Doorledger flagged it unconsented and told it to disable itself (command %d). Until it confirms, couriers may still be able to open the door: check the panel.\n", a.cmd.ID)
		}
		body.WriteString("\nFurther events like these within the hour are recorded without another mail; see the building's unlock history.\n")
		subject := fmt.Sprintf("Unlock anomaly at %s: %s", a.b.name, strings.Join(kinds, ", "))
		if err := g.tx.alertManagers(g.ctx, a.b.id, a.b.alertBoard, subject, body.String(), key); err != nil {
			return err
		}
	}
	return nil
}

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
	e.OccurredAt, e.ReceivedAt, e.Anomalies = parseTime(occurred), parseTime(received), anomalyKinds(bits)
	e.AcknowledgedAt = parseTime(acked)
	return &e, nil
}

const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 500
)

// historyQuery builds the keyset query of f: numbered parameters and a row
// value comparison on (effective_at, id), so SQLite walks the index
// (building_id, effective_at, id) backwards from the cursor and stops after
// limit rows, however deep the page. Dates select the events' effective time
// (doorledger.UnlockEvent.EffectiveAt): an event a wrong clock dated a year
// back, received today, is today's.
func historyQuery(f doorledger.UnlockFilter, loc *time.Location, limit int) (string, []any, error) {
	v := doorledger.Validation{}
	upperAt, upperID := "~", int64(math.MaxInt64) // '~' sorts after every time
	if !f.After.IsZero() {
		upperAt, upperID = formatTime(f.After.At), f.After.ID
	}
	lower := ""
	var from, to time.Time
	if f.From != "" {
		t, err := time.ParseInLocation("2006-01-02", f.From, loc)
		if err != nil {
			v.Add("from", "Use a date such as 2026-03-08.")
		}
		from, lower = t, formatTime(t)
	}
	if f.To != "" {
		t, err := time.ParseInLocation("2006-01-02", f.To, loc)
		if err != nil {
			v.Add("to", "Use a date such as 2026-03-08.")
		} else {
			to = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
			if !from.IsZero() && !to.After(from) {
				v.Add("to", "The end date must not be before the start date.")
			}
			if s := formatTime(to); s < upperAt || (s == upperAt && upperID > 0) {
				upperAt, upperID = s, 0
			}
		}
	}
	if f.Result != "" && f.Result != doorledger.UnlockGranted && f.Result != doorledger.UnlockDenied {
		v.Add("result", "Choose granted or denied.")
	}
	bit := int64(0)
	if f.Anomaly != "" {
		if bit = anomalyBit(f.Anomaly); bit == 0 {
			v.Add("anomaly", "Choose a kind of anomaly from the list.")
		}
	}
	if err := v.Err(); err != nil {
		return "", nil, err
	}
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
	limit := f.Limit
	if limit <= 0 {
		limit = defaultHistoryLimit
	} else if limit > maxHistoryLimit {
		limit = maxHistoryLimit
	}
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
	query, args, err := historyQuery(f, loc, defaultHistoryLimit+1)
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

// exportPage is how many rows ExportCSV reads per query: each page is a short
// read, so a long export holds no read transaction open (WAL checkpoints go on).
const exportPage = 2000

// ExportCSV streams every event matching f to w as CSV, newest first by
// effective time, page by page, so memory stays constant however many there are. The export is
// audited first. Each anomalous event carries its acknowledgement, if any
// (when, by whom, the manager's note). Text that came from devices or people
// and starts like a spreadsheet formula (= + - @) is prefixed with ' so that
// opening the file runs nothing.
func (s *UnlockService) ExportCSV(ctx context.Context, f doorledger.UnlockFilter, w io.Writer) (int64, error) {
	c := callerFrom(ctx)
	loc, err := checkUnlockRead(ctx, s.db.read, c, f.BuildingID)
	if err != nil {
		return 0, err
	}
	f.After, f.Limit = doorledger.UnlockCursor{}, 0
	query, args, err := historyQuery(f, loc, -1)
	if err != nil {
		return 0, err
	}
	// The journal says what was exported: how many events, of which range
	// and filters (doorledger.AuditSentence reads it).
	var count int64
	if err := s.db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+query+`)`, args...).Scan(&count); err != nil {
		return 0, fmt.Errorf("count the export: %w", err)
	}
	detail := map[string]any{"format": "csv", "events": count, "from": f.From, "to": f.To}
	for k, v := range map[string]any{"device_id": f.DeviceID, "device_ref": f.DeviceRef, "method": f.Method, "result": string(f.Result),
		"anomalies_only": f.AnomaliesOnly, "anomaly": f.Anomaly, "open_only": f.OpenOnly} {
		if v != int64(0) && v != "" && v != false {
			detail[k] = v
		}
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := tx.audit(ctx, "unlocks.export", f.BuildingID, "building", f.BuildingID, detail); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	// effective_at, last so that the earlier columns keep their places, is
	// the time the event counts at and the file's order (the device's time,
	// or the time received when its clock is flagged skewed).
	if err := cw.Write([]string{"occurred_at", "occurred_at_utc", "received_at_utc", "device_id", "device_ref", "event_id",
		"method", "actor_ref", "result", "anomalies", "source", "acknowledged_at_utc", "acknowledged_by", "ack_note", "effective_at"}); err != nil {
		return 0, err
	}
	var n int64
	rec := make([]string, 15)
	for {
		query, args, _ := historyQuery(f, loc, exportPage)
		rows, err := s.db.read.QueryContext(ctx, query, args...)
		if err != nil {
			return n, fmt.Errorf("export unlocks: %w", err)
		}
		var last *doorledger.UnlockEvent
		got := 0
		for rows.Next() {
			e, err := scanUnlock(rows)
			if err != nil {
				rows.Close()
				return n, err
			}
			rec[0] = e.OccurredAt.In(loc).Format(time.RFC3339Nano)
			rec[1] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
			rec[2] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
			rec[3] = ""
			if e.DeviceID != 0 {
				rec[3] = itoa(e.DeviceID)
			}
			rec[4], rec[5], rec[6], rec[7] = safeCell(e.DeviceRef), safeCell(e.EventID), e.Method, safeCell(e.ActorRef)
			rec[8], rec[9], rec[10] = string(e.Result), strings.Join(e.Anomalies, " "), e.Source
			rec[11], rec[12], rec[13] = "", safeCell(e.AcknowledgedBy), safeCell(e.AckNote)
			if e.Acknowledged() {
				rec[11] = e.AcknowledgedAt.UTC().Format(time.RFC3339Nano)
			}
			rec[14] = e.EffectiveAt().In(loc).Format(time.RFC3339Nano)
			if err := cw.Write(rec); err != nil {
				rows.Close()
				return n, err
			}
			n++
			got++
			last = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
		if got < exportPage {
			break
		}
		f.After = doorledger.UnlockCursor{At: last.EffectiveAt(), ID: last.ID}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// safeCell defuses text that a spreadsheet would read as a formula.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// DailyCounts counts a building's (or one of its devices') events of the last
// days, by the date of their effective time in the building's time zone (23-
// and 25-hour days included), oldest first, every day present. A building's
// counts are read from unlock_daily (unlock_daily.go), kept at every insert
// and purge; one device's, and a building's whose counts are being dated
// again, are counted from the events.
func (s *UnlockService) DailyCounts(ctx context.Context, buildingID, deviceID int64, days int) ([]doorledger.UnlockDay, error) {
	loc, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID)
	if err != nil {
		return nil, err
	}
	if days <= 0 {
		days = 30
	} else if days > 366 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Count at most 366 days.")
	}
	if deviceID != 0 {
		var n int
		if err := s.db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ? AND building_id = ?`, deviceID, buildingID).Scan(&n); err != nil {
			return nil, err
		} else if n == 0 {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
		}
	}
	today := s.db.Now().In(loc)
	out := make([]doorledger.UnlockDay, days)
	for i := range out {
		out[i].Date = time.Date(today.Year(), today.Month(), today.Day()-(days-1-i), 0, 0, 0, 0, loc).Format("2006-01-02")
	}
	if deviceID == 0 {
		if ok, err := dailyCountsCurrent(ctx, s.db.read, buildingID); err != nil {
			return nil, fmt.Errorf("daily counts: %w", err)
		} else if ok {
			return out, readDailyCounts(ctx, s.db.read, buildingID, out)
		}
	}
	return out, countDays(ctx, s.db.read, buildingID, deviceID, loc, out)
}

// readDailyCounts fills days (consecutive dates, oldest first) from unlock_daily.
func readDailyCounts(ctx context.Context, q querier, buildingID int64, days []doorledger.UnlockDay) error {
	rows, err := q.QueryContext(ctx, `SELECT day, granted, denied, anomalous FROM unlock_daily
		WHERE building_id = ?1 AND day >= ?2 AND day <= ?3`, buildingID, days[0].Date, days[len(days)-1].Date)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	defer rows.Close()
	at := make(map[string]int, len(days))
	for i, d := range days {
		at[d.Date] = i
	}
	for rows.Next() {
		var day string
		var g, dn, a int
		if err := rows.Scan(&day, &g, &dn, &a); err != nil {
			return err
		}
		if i, ok := at[day]; ok {
			days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
		}
	}
	return rows.Err()
}

// countDays fills days (consecutive dates in loc, oldest first) by counting
// the events of each, of one device when deviceID is not 0.
func countDays(ctx context.Context, q querier, buildingID, deviceID int64, loc *time.Location, days []doorledger.UnlockDay) error {
	// Numbered parameters throughout: ?1 the building, ?2 the device, then the days.
	values := make([]string, len(days))
	args := []any{buildingID, deviceID}
	for i, d := range days {
		day, err := time.ParseInLocation("2006-01-02", d.Date, loc)
		if err != nil {
			return err
		}
		end := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
		n := len(args)
		values[i] = fmt.Sprintf("(?%d, ?%d, ?%d)", n+1, n+2, n+3)
		args = append(args, i, formatTime(day), formatTime(end))
	}
	deviceCond := ""
	if deviceID != 0 {
		deviceCond = " AND e.device_id = ?2"
	}
	rows, err := q.QueryContext(ctx, `WITH d(i, lo, hi) AS (VALUES `+strings.Join(values, ", ")+`)
		SELECT d.i, SUM(e.result = 'granted'), SUM(e.result = 'denied'), SUM(e.anomalies <> 0)
		FROM d JOIN unlock_events e ON e.building_id = ?1 AND e.effective_at >= d.lo AND e.effective_at < d.hi`+deviceCond+`
		GROUP BY d.i`, args...)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i, g, dn, a int
		if err := rows.Scan(&i, &g, &dn, &a); err != nil {
			return err
		}
		days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
	}
	return rows.Err()
}

// UnlockSettings returns a building's rules for unlock events (whoever may read its history).
func (s *UnlockService) UnlockSettings(ctx context.Context, buildingID int64) (*doorledger.UnlockSettings, error) {
	if _, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return readUnlockSettings(ctx, s.db.read, buildingID)
}

func readUnlockSettings(ctx context.Context, q querier, buildingID int64) (*doorledger.UnlockSettings, error) {
	st := doorledger.UnlockSettings{BuildingID: buildingID}
	var hours string
	err := q.QueryRowContext(ctx, `SELECT unlock_retention_days, delivery_hours, burst_count, burst_minutes, alert_board, heartbeat_seconds
		FROM buildings WHERE id = ?`, buildingID).
		Scan(&st.RetentionDays, &hours, &st.BurstCount, &st.BurstMinutes, &st.AlertBoard, &st.HeartbeatSeconds)
	if err != nil {
		return nil, notFound(err, "Building not found.")
	}
	st.DeliveryHours, _ = doorledger.ParseDeliverySchedule(hours)
	return &st, nil
}

// UpdateUnlockSettings changes a building's rules (its managers, admins),
// audited with the old and new values. EINVALID with per-field messages.
func (s *UnlockService) UpdateUnlockSettings(ctx context.Context, buildingID int64, in doorledger.UnlockSettings) (*doorledger.UnlockSettings, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := checkManage(ctx, tx, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.BuildingID = buildingID
	old, err := readUnlockSettings(ctx, tx, buildingID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE buildings SET unlock_retention_days = ?, delivery_hours = ?, burst_count = ?, burst_minutes = ?,
		alert_board = ?, heartbeat_seconds = ?, updated_at = ? WHERE id = ?`,
		in.RetentionDays, in.DeliveryHours.String(), in.BurstCount, in.BurstMinutes, in.AlertBoard, in.HeartbeatSeconds,
		formatTime(tx.now), buildingID); err != nil {
		return nil, fmt.Errorf("update unlock settings of building %d: %w", buildingID, err)
	}
	describe := func(st *doorledger.UnlockSettings) map[string]any {
		return map[string]any{"retention_days": st.RetentionDays, "delivery_hours": st.DeliveryHours.String(),
			"burst_count": st.BurstCount, "burst_minutes": st.BurstMinutes, "alert_board": st.AlertBoard,
			"heartbeat_seconds": st.HeartbeatSeconds}
	}
	if err := tx.audit(ctx, "building.unlock_settings", buildingID, "building", buildingID,
		map[string]any{"old": describe(old), "new": describe(&in)}); err != nil {
		return nil, err
	}
	return &in, tx.Commit()
}

// SetDeviceHeartbeat sets how long a device may stay silent (managers of its
// building); seconds < 0 returns it to the building's setting, 0 does not watch it.
func (s *UnlockService) SetDeviceHeartbeat(ctx context.Context, deviceID int64, seconds int) error {
	if seconds > 30*86400 {
		return doorledger.Errorf(doorledger.EINVALID, "Use a heartbeat of at most 30 days.")
	}
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var buildingID int64
	if err := tx.QueryRowContext(ctx, `SELECT building_id FROM devices WHERE id = ?`, deviceID).Scan(&buildingID); err != nil {
		return notFound(err, "Device not found.")
	}
	if err := checkManage(ctx, tx, c, buildingID); err != nil {
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			return doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
		}
		return err
	}
	var v any = seconds
	if seconds < 0 {
		v = nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET heartbeat_seconds = ? WHERE id = ?`, v, deviceID); err != nil {
		return fmt.Errorf("set heartbeat of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.heartbeat", buildingID, "device", deviceID, map[string]any{"seconds": v}); err != nil {
		return err
	}
	return tx.Commit()
}

// purgeChunk bounds the rows one purge transaction deletes, so that ingest
// (which shares the writer) waits milliseconds, not the whole purge.
const purgeChunk = 5000

// Purge deletes, building by building, the events older than the building's
// retention at now (on both their effective time and the time received), in chunks,
// each chunk with an audit entry saying how many it deleted. The system's
// daily job; admins may run it too. now is capped at the real time: the
// database refuses to delete anything younger than the retention by its own clock.
func (s *UnlockService) Purge(ctx context.Context, now time.Time) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	if real := sqliteNow(); now.After(real) {
		now = real
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, unlock_retention_days FROM buildings ORDER BY id`)
	if err != nil {
		return 0, err
	}
	type building struct {
		id   int64
		days int
	}
	var list []building
	for rows.Next() {
		var b building
		if err := rows.Scan(&b.id, &b.days); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var total int64
	for _, b := range list {
		cutoff := formatTime(now.AddDate(0, 0, -b.days))
		for {
			n, err := s.purgeChunk(ctx, b.id, b.days, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge unlock events of building %d: %w", b.id, err)
			}
			if n < purgeChunk {
				break
			}
		}
	}
	return total, nil
}

func (s *UnlockService) purgeChunk(ctx context.Context, buildingID int64, days int, cutoff string) (int64, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM unlock_events
		WHERE building_id = ?1 AND effective_at < ?2 AND received_at < ?2 ORDER BY id LIMIT ?3`, buildingID, cutoff, purgeChunk)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// The tamper-evident log keeps the purged leaves and records which ids
	// went and their hashes, so verify accepts exactly these missing rows.
	before := parseTime(cutoff)
	if _, err := tx.LogUnlockPurge(ctx, buildingID, before, ids); err != nil {
		return 0, fmt.Errorf("log purge: %w", err)
	}
	var n int64
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, id := range chunk {
			args[i], marks[i] = id, "?"
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM unlock_events WHERE id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return 0, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if err := tx.audit(ctx, "unlocks.purge", buildingID, "building", buildingID, map[string]any{
		"deleted": n, "before": cutoff, "retention_days": days}); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// OfflineDevices finds the devices in service silent for longer than their
// heartbeat (their own, else their building's; 0 is not watched) at now. Each
// silence — keyed by when the device was last seen, or registered if never —
// is audited and alerted once (to the board too, per building setting).
// The system's job; admins may run it too.
func (s *UnlockService) OfflineDevices(ctx context.Context, now time.Time) ([]*doorledger.OfflineDevice, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	type silent struct {
		doorledger.OfflineDevice
		building, vendor, model, serial, location string
		board                                     bool
		since                                     string
	}
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.building_id, b.name, d.vendor, d.model, d.serial, d.location, b.alert_board,
		COALESCE(d.last_seen_at, d.created_at), COALESCE(d.heartbeat_seconds, b.heartbeat_seconds)
		FROM devices d JOIN buildings b ON b.id = d.building_id
		WHERE d.retired = 0 AND COALESCE(d.heartbeat_seconds, b.heartbeat_seconds) > 0 ORDER BY d.id`)
	if err != nil {
		return nil, err
	}
	var list []*silent
	for rows.Next() {
		var d silent
		var hb int64
		if err := rows.Scan(&d.DeviceID, &d.BuildingID, &d.building, &d.vendor, &d.model, &d.serial, &d.location, &d.board, &d.since, &hb); err != nil {
			rows.Close()
			return nil, err
		}
		d.Since, d.Heartbeat = parseTime(d.since), time.Duration(hb)*time.Second
		if now.Sub(d.Since) > d.Heartbeat {
			list = append(list, &d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	out := make([]*doorledger.OfflineDevice, 0, len(list))
	for _, d := range list {
		res, err := tx.ExecContext(ctx, `INSERT INTO device_silences (device_id, since, detected_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			d.DeviceID, d.since, formatTime(now))
		if err != nil {
			return nil, fmt.Errorf("record silence of device %d: %w", d.DeviceID, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			d.Alerted = true
			if err := tx.audit(sysctx, "device.offline", d.BuildingID, "device", d.DeviceID, map[string]any{
				"since": d.since, "heartbeat_seconds": int64(d.Heartbeat / time.Second)}); err != nil {
				return nil, err
			}
			model := d.model
			if model == "" {
				model = "(model unknown)"
			}
			if err := tx.alertManagers(ctx, d.BuildingID, d.board, fmt.Sprintf("Device %d offline at %s", d.DeviceID, d.building),
				fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s has not been heard from since %s, longer than its heartbeat of %s.\n"+
					"Commands cannot reach it while it is silent, and its unlock events arrive late if at all. Check its power and network, or the panel itself.\n",
					d.DeviceID, d.vendor, model, d.serial, d.location, d.building, d.Since.Format(time.RFC1123), d.Heartbeat),
				"device.offline:"+itoa(d.DeviceID)+":"+d.since); err != nil {
				return nil, err
			}
		}
		od := d.OfflineDevice
		out = append(out, &od)
	}
	return out, tx.Commit()
}
