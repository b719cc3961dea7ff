package main

// The revoke benchmark (bench_test.go) and its floors: the same round trip
// without the portal, with and without a commit on each end.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// desiredVersionRE finds the desired version in the device status fragment.
var desiredVersionRE = regexp.MustCompile(`version (\d+)`)

// desiredOf reads the device status fragment: the desired version (the first
// "version N", under "Told to be") and whether it is confirmed.
func desiredOf(fragment string) (version int64, confirmed bool) {
	if m := desiredVersionRE.FindStringSubmatch(fragment); m != nil {
		version, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return version, strings.Contains(fragment, `data-status="confirmed"`)
}

// revokeSample is one timed revoke.
type revokeSample struct {
	device, version int64
	click, response time.Time // POST sent, its response read
	shown           time.Time // the stream delivered "confirmed" for version
}

// revokeOne revokes one enabled device the way its manager's page does and
// times it: the page's stream is open before the click, and the revoke counts
// as confirmed when that stream delivers data-status="confirmed" for the new
// desired version.
func (bp *benchPortal) revokeOne(id int64) (revokeSample, error) {
	s := revokeSample{device: id}
	st, err := bp.openStream(fmt.Sprintf("/devices/%d/events", id))
	if err != nil {
		return s, err
	}
	defer st.Close()
	first, err := st.next() // subscribed: the stream subscribes before its first render
	if err != nil {
		return s, err
	}
	v, confirmed := desiredOf(first)
	if !confirmed || v == 0 {
		return s, fmt.Errorf("device %d not confirmed before the revoke:\n%s", id, first)
	}
	s.version = v + 1
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	s.click = time.Now()
	status, err := bp.post(ctx, fmt.Sprintf("/devices/%d/revoke", id), true)
	s.response = time.Now()
	if err != nil {
		return s, err
	}
	if status != http.StatusOK {
		return s, fmt.Errorf("revoke device %d: status %d", id, status)
	}
	for {
		ev, err := st.next()
		if err != nil {
			return s, fmt.Errorf("device %d stream: %w", id, err)
		}
		if v, ok := desiredOf(ev); ok && v == s.version {
			s.shown = time.Now()
			return s, nil
		}
	}
}

// reenable enables devices again (untimed) and waits until they confirm.
func (bp *benchPortal) reenable(b testing.TB, ids []int64) {
	b.Helper()
	for _, id := range ids {
		if status, err := bp.post(context.Background(), fmt.Sprintf("/devices/%d/enable", id), true); err != nil || status != http.StatusOK {
			b.Fatalf("enable device %d: %d %v", id, status, err)
		}
	}
	awaitCount(b, bp.reader, benchDevices, confirmedQuery+` AND desired_state = 'enabled'`)
}

// dbTimes reads the clocks the portal recorded on the command: the revoke
// transaction's (requested_at, read when it has the database's single
// writer), the controller's when the push returned (MarkSentMany: sent_at)
// and the confirming report transaction's (confirmed_at, read when it has the
// writer).
func (bp *benchPortal) dbTimes(device, version int64) (requested, sent, confirmed time.Time, err error) {
	var r, s, c sql.NullString
	if err = bp.reader.QueryRow(rebind(bp.pg, `SELECT requested_at, sent_at, confirmed_at FROM commands WHERE device_id = ? AND version = ?`), device, version).Scan(&r, &s, &c); err != nil {
		return
	}
	var errs [3]error
	requested, errs[0] = time.Parse(time.RFC3339Nano, r.String)
	sent, errs[1] = time.Parse(time.RFC3339Nano, s.String)
	confirmed, errs[2] = time.Parse(time.RFC3339Nano, c.String)
	return requested, sent, confirmed, errors.Join(errs[:]...)
}

// BenchmarkRevoke times a manager's revoke click until the device page shows
// the device confirmed disabled, over benchRevokes different devices among
// 1,000 connected, one at a time. Two floors are measured in the same run,
// interleaved with the revokes (one round trip of each before each revoke,
// so that all three see the same machine), on a second devicectl.Broker with
// 1,000 simulators of its own:
//
//   - the raw broker round trip (the target's floor): Push → the simulator
//     applies → its report reaches the transport, whose reports go nowhere;
//   - the durable round trip: the same with the two durable commits a revoke
//     cannot do without around it — a one-row SQLite transaction before the
//     Push (the desired state is committed before it is published) and one in
//     the report hook before it returns (the report is committed before it is
//     acknowledged and shown), on a database file beside the portal's, with
//     the portal's pragmas (WAL, synchronous=FULL).
//
// It runs on each backend (benchBackends), with the durable floor's commits
// on the same backend: the SQLite file above, or a one-row table in a
// database of the same (durable) PostgreSQL cluster as the portal's.
func BenchmarkRevoke(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(string(backend), func(b *testing.B) { benchmarkRevoke(b, backend) })
	}
}

func benchmarkRevoke(b *testing.B, backend benchBackend) {
	bp := startBenchPortalOn(b, backend)
	// Every 5th device: spread over the six buildings.
	var ids []int64
	n := benchRevokes
	if v, err := strconv.Atoi(os.Getenv("DOORLEDGER_BENCH_REVOKES")); err == nil && v > 0 && v <= benchDevices {
		n = v
	}
	for i := 0; i < len(bp.world.Devices) && len(ids) < n; i += len(bp.world.Devices) / n {
		ids = append(ids, bp.world.Devices[i].ID)
	}
	floor := startFloor(b, backend)
	var samples []revokeSample
	var floorSamples, durableSamples, commitSamples []time.Duration
	first := true
	for b.Loop() {
		if !first {
			b.StopTimer()
			bp.reenable(b, ids)
			b.StartTimer()
		}
		first = false
		stopProfile := startTimedProfile(b)
		for _, id := range ids {
			raw, _ := floor.roundTrip(b, false)
			floorSamples = append(floorSamples, raw)
			durable, commits := floor.roundTrip(b, true)
			durableSamples = append(durableSamples, durable)
			commitSamples = append(commitSamples, commits)
			s, err := bp.revokeOne(id)
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, s)
		}
		stopProfile()
	}
	b.StopTimer()

	// The delivery records are written with the confirming report or up to
	// SentFlushDelay later: wait for the last ones before reading them.
	awaitCount(b, bp.reader, 0, `SELECT COUNT(*) FROM commands WHERE reason = 'revoked by a manager' AND sent_at IS NULL`)
	var total, resp, toTx, toSent, toCommit, commitToShown []time.Duration
	for _, s := range samples {
		total = append(total, s.shown.Sub(s.click))
		resp = append(resp, s.response.Sub(s.click))
		req, sent, conf, err := bp.dbTimes(s.device, s.version)
		if err != nil {
			b.Fatalf("device %d v%d: %v", s.device, s.version, err)
		}
		toTx = append(toTx, req.Sub(s.click))
		toSent = append(toSent, sent.Sub(req))
		toCommit = append(toCommit, conf.Sub(sent))
		commitToShown = append(commitToShown, s.shown.Sub(conf))
	}
	p50, p99 := percentiles(total)
	r50, r99 := percentiles(resp)
	t50, t99 := percentiles(toTx)
	e50, e99 := percentiles(toSent)
	d50, d99 := percentiles(toCommit)
	s50, s99 := percentiles(commitToShown)
	f50, f99 := percentiles(floorSamples)
	g50, g99 := percentiles(durableSamples)
	c50, c99 := percentiles(commitSamples)

	b.ReportMetric(0, "ns/op") // an op is benchRevokes revokes; the percentiles say more
	b.ReportMetric(float64(len(samples)), "samples")
	b.ReportMetric(us(p50), "p50-µs")
	b.ReportMetric(us(p99), "p99-µs")
	b.ReportMetric(us(f50), "floor-p50-µs")
	b.ReportMetric(us(f99), "floor-p99-µs")
	b.ReportMetric(float64(p99)/float64(f99), "p99/floor-p99")
	b.ReportMetric(us(g99), "durable-floor-p99-µs")
	b.ReportMetric(float64(p99)/float64(g99), "p99/durable-p99")
	b.Logf("revoke click → page shows confirmed: p50 %s p99 %s max %s over %d devices",
		p50, p99, slices.Max(total), len(samples))
	b.Logf("  POST response: p50 %s p99 %s", r50, r99)
	b.Logf("  click → revoke tx clock (commands.requested_at): p50 %s p99 %s", t50, t99)
	b.Logf("  revoke tx clock → push returned (commands.sent_at): p50 %s p99 %s", e50, e99)
	b.Logf("  push returned → confirming report tx clock (sent_at → confirmed_at): p50 %s p99 %s", d50, d99)
	b.Logf("  report tx clock → stream delivered: p50 %s p99 %s", s50, s99)
	b.Logf("floor (Push → simulator applies → report at the broker hook, no DB): p50 %s p99 %s max %s over %d; p99 / floor p99 = %.1f (target ≤ 2)",
		f50, f99, slices.Max(floorSamples), len(floorSamples), float64(p99)/float64(f99))
	b.Logf("durable floor (commit → Push → simulator applies → report hook commits): p50 %s p99 %s over %d, of which the two commits p50 %s p99 %s; p99 / durable floor p99 = %.1f",
		g50, g99, len(durableSamples), c50, c99, float64(p99)/float64(g99))
}

// floorReports is a DeviceReports and EventSink with nothing behind it but,
// while durable is set, a one-row commit per report: it accepts every device
// and hands each report to whoever waits for it.
type floorReports struct {
	reports map[int64]chan floorReport // read-only once the broker runs
	durable atomic.Bool
	db      *sql.DB
	stmt    *sql.Stmt // UPDATE floor SET reported = ? WHERE id = ?
}

// floorReport is a report with the time its commit took (0: none).
type floorReport struct {
	doorledger.ReportedState
	commit time.Duration
}

func (f *floorReports) AuthenticateDevice(_ context.Context, id int64, _ string) error {
	if _, ok := f.reports[id]; !ok {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown device.")
	}
	return nil
}

func (f *floorReports) ReportState(ctx context.Context, r doorledger.ReportedState) error {
	rep := floorReport{ReportedState: r}
	if f.durable.Load() {
		start := time.Now()
		if err := commitOne(ctx, f.db, f.stmt, r.Version, r.DeviceID); err != nil {
			return err
		}
		rep.commit = time.Since(start)
	}
	select {
	case f.reports[r.DeviceID] <- rep:
	default:
	}
	return nil
}

func (f *floorReports) RecordUnlocks(context.Context, []doorledger.UnlockEvent) error { return nil }

// commitOne runs a prepared one-row UPDATE in its own transaction.
func commitOne(ctx context.Context, db *sql.DB, stmt *sql.Stmt, args ...any) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
		return err
	}
	return tx.Commit()
}

// floorRig is a devicectl.Broker on a trivial report sink with benchDevices
// simulators connected to it over TCP, and a database of the backend for
// the durable round trip.
type floorRig struct {
	br       *devicectl.Broker
	fleet    fleet
	f        *floorReports
	desired  *sql.Stmt // UPDATE floor SET desired = ? WHERE id = ?
	ids      []int64
	versions map[int64]int64
	n        int
}

func startFloor(b *testing.B, backend benchBackend) *floorRig {
	b.Helper()
	return startFloorN(b, backend, benchDevices)
}

// startFloorN is startFloor with n simulators (and rows).
func startFloorN(b testing.TB, backend benchBackend, n int) *floorRig {
	b.Helper()
	r := &floorRig{f: &floorReports{reports: map[int64]chan floorReport{}}, versions: map[int64]int64{}}
	devs := make([]seededDevice, n)
	for i := range devs {
		devs[i] = seededDevice{ID: int64(i + 1), Secret: "floor"}
		r.ids = append(r.ids, devs[i].ID)
		r.f.reports[devs[i].ID] = make(chan floorReport, 4)
	}
	pg := backend == onPostgres
	fdb := openFloorDB(b, pg, n)
	var err error
	r.f.db = fdb
	if r.desired, err = fdb.Prepare(rebind(pg, `UPDATE floor SET desired = ? WHERE id = ?`)); err != nil {
		b.Fatal(err)
	}
	if r.f.stmt, err = fdb.Prepare(rebind(pg, `UPDATE floor SET reported = ? WHERE id = ?`)); err != nil {
		b.Fatal(err)
	}
	if r.br, err = devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: r.f, Events: r.f, Logger: discardLog}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.br.Close() })
	r.fleet = startFleet(b, "mqtt://"+r.br.Addr(), devs) // stopped at cleanup, before the broker closes
	return r
}

// Close stops the floor's simulators and its broker before the test ends
// (they are stopped at cleanup otherwise).
func (r *floorRig) Close() {
	r.fleet.Stop()
	r.br.Close()
}

// openFloorDB opens the durable floor's database with its table of
// benchDevices rows. SQLite: a file beside the portal's with the portal's
// pragmas (db.dsn); PostgreSQL: a database of the portal's cluster. Either
// way a commit costs what the portal's do.
func openFloorDB(b testing.TB, pg bool, n int) *sql.DB {
	b.Helper()
	var fdb *sql.DB
	stmts := []string{`CREATE TABLE floor (id INTEGER PRIMARY KEY, desired INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO floor (id) SELECT i FROM n`}
	if pg {
		fdb = openPGReader(b, pgCluster.EmptyDatabase(b))
		stmts = []string{`CREATE TABLE floor (id bigint PRIMARY KEY, desired bigint NOT NULL DEFAULT 0, reported bigint NOT NULL DEFAULT 0)`,
			`INSERT INTO floor (id) SELECT generate_series(1, $1::bigint)`}
	} else {
		path := filepath.Join(benchDataDir(b), "floor.db")
		var err error
		if fdb, err = sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_txlock=immediate"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { fdb.Close() })
	}
	fdb.SetMaxOpenConns(1)
	if _, err := fdb.Exec(stmts[0]); err != nil {
		b.Fatal(err)
	}
	if _, err := fdb.Exec(stmts[1], n); err != nil {
		b.Fatal(err)
	}
	return fdb
}

// roundTrip times one Push of a new desired state to the next device until
// that device's ReportState of it reaches the sink; durable: from before a
// commit of the desired state until the report's commit returned. It also
// returns the time the two commits took (0 when not durable).
func (r *floorRig) roundTrip(b testing.TB, durable bool) (total, commits time.Duration) {
	b.Helper()
	id := r.ids[r.n%len(r.ids)]
	r.n++
	r.versions[id]++
	v := r.versions[id]
	state := doorledger.StateDisabled
	if v%2 == 0 {
		state = doorledger.StateEnabled
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	r.f.durable.Store(durable)
	start := time.Now()
	if durable {
		if err := commitOne(ctx, r.f.db, r.desired, v, id); err != nil {
			b.Fatal(err)
		}
		commits = time.Since(start)
	}
	if err := r.br.Push(ctx, doorledger.DesiredState{DeviceID: id, CommandID: int64(r.n), State: state, Version: v, IssuedAt: start}); err != nil {
		b.Fatal(err)
	}
	for {
		select {
		case rep := <-r.f.reports[id]:
			if rep.Version == v {
				return time.Since(start), commits + rep.commit
			}
		case <-ctx.Done():
			b.Fatalf("floor device %d never reported version %d", id, v)
		}
	}
}
