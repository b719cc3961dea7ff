//go:build load || soak || bench

package main

// The rig of the load test (load_test.go), the soak (soak_test.go) and the
// portfolio benchmark (bench_portfolio_test.go): the benchmarks' seeded world
// of 1,000 consented devices (bench_test.go), or as many buildings and devices
// as a rigConfig asks,
// the portal alone in a child process (TestBenchPortalProcess, so that its
// resident set, goroutines and open files are its own), the 1,000 simulated
// devices connected over TCP to its embedded broker from this process,
// unlock events made at a steady rate through those simulators, live streams
// read by signed-in managers as their pages' EventSource reads them, and
// revokes timed as a manager's click until the device page's stream shows
// the device confirmed.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
)

// loadEventPre starts the id of every event the rig makes.
const loadEventPre = "load-"

// loadRig is a seeded portal under load.
type loadRig struct {
	tb       testing.TB
	world    *benchWorld
	pc       *portalChild
	pcMu     sync.Mutex // one conversation with the child at a time
	bp       *benchPortal
	fleet    *localFleet
	sims     []*devicectl.SimDevice // world.Devices' order
	managers []string               // e-mails of the extra managers, granted the lockdown building
	dbURL    string                 // the portal's PostgreSQL database ("": the data directory's SQLite file)
}

// startLoadRig seeds the world with managers more managers, starts the portal
// in a child process, connects every simulator and waits until every device
// confirmed its desired state. Burst detection is off in every building: at
// the rig's rates (hundreds of granted unlocks a second in a building) every
// event would be a burst anomaly with its alert, which is not the load the
// test is about.
func startLoadRig(tb testing.TB, managers int) *loadRig {
	tb.Helper()
	return startLoadRigWith(tb, rigConfig{Managers: managers})
}

// rigConfig sizes a load rig. The zero value is the benchmarks' world (six
// buildings, 1,000 devices) on SQLite.
type rigConfig struct {
	Managers  int   // extra managers granted the lockdown building
	Buildings []int // devices per building, the first locked down (nil: benchBuildings)
	Backend   benchBackend
	// Seed, when set, fills dir with the seeded world (e.g. a copy of a
	// cached one) in place of seeding it here; it must hold the managers.
	Seed func(tb testing.TB, dir string) *benchWorld
}

// startLoadRigWith is startLoadRig sized by cfg. On PostgreSQL the seeded
// world is copied into a fresh database of the package's cluster (durable
// when it was started by a benchmark) and the portal's child runs on it.
func startLoadRigWith(tb testing.TB, cfg rigConfig) *loadRig {
	tb.Helper()
	began := time.Now()
	dir := tb.TempDir()
	if parent := os.Getenv("DOORLEDGER_BENCH_DATA"); parent != "" {
		var err error
		if dir, err = os.MkdirTemp(parent, "doorledger-load-"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(dir) })
	}
	r := &loadRig{tb: tb}
	if cfg.Seed != nil {
		r.world = cfg.Seed(tb, dir)
		r.managers = r.world.Managers
	} else {
		layout := cfg.Buildings
		if layout == nil {
			layout = benchBuildings
		}
		r.world = seedDirLayout(tb, dir, layout)
		r.seedManagers(cfg.Managers)
	}
	var dbURL string
	if cfg.Backend == onPostgres {
		dbURL = migrateWorld(tb, r.world)
	}
	r.dbURL = dbURL
	r.pc = startPortalChildOn(tb, dir, dbURL)
	r.bp = &benchPortal{Portal: &Portal{URL: r.pc.url, DataDir: dir}, world: r.world, pg: dbURL != ""}
	if r.bp.pg {
		r.bp.reader = openPGReader(tb, dbURL)
	} else {
		r.bp.reader = openReader(tb, dir)
	}
	connect := time.Now()
	if path := os.Getenv("DOORLEDGER_LOAD_CONNECT_CPUPROFILE"); path != "" {
		stop := r.cpuProfile(path) // the portal while the devices connect and confirm
		defer stop()
	}
	r.fleet = startLocalFleet(tb, r.pc.mqtt, r.world.Devices)
	tb.Cleanup(r.fleet.Stop) // before the portal stops (cleanups run last first)
	r.sims = r.fleet.sims
	tb.Logf("%d simulators connected in %s", len(r.sims), time.Since(connect).Round(time.Millisecond))
	// benchWait for each 1,000 devices to confirm their desired state.
	awaitCountWithin(tb, r.bp.reader, benchWait*time.Duration(max(1, len(r.world.Devices)/1000)), len(r.world.Devices), confirmedQuery)
	r.bp.signIn(tb)
	tb.Logf("seeded %d consented devices in %d buildings and %d managers in %s; simulators connected and confirmed in %s (rig ready after %s)",
		len(r.world.Devices), r.world.Buildings, len(r.managers)+1, r.world.SeedTaken.Round(time.Millisecond), time.Since(connect).Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
	return r
}

// seedManagers adds n managers granted the lockdown building, and turns burst
// detection off in every building.
func (r *loadRig) seedManagers(n int) {
	tb := r.tb
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "load seed")
	d := sqlite.NewDB(filepath.Join(r.world.DataDir, "doorledger.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	users, buildings, unlocks := sqlite.NewUserService(d), sqlite.NewBuildingService(d), sqlite.NewUnlockService(d)
	for i := range n {
		email := fmt.Sprintf("manager%02d@bench.example", i+1)
		u, err := users.CreateUser(sys, doorledger.NewUser{Email: email, Name: fmt.Sprintf("Manager %d", i+1), Role: doorledger.RoleManager, Password: r.world.Password})
		if err != nil {
			tb.Fatal(err)
		}
		if err := buildings.GrantAccess(sys, r.world.Lockdown, u.ID); err != nil {
			tb.Fatal(err)
		}
		r.managers = append(r.managers, email)
	}
	r.world.Managers = r.managers
	seen := map[int64]bool{}
	for _, dev := range r.world.Devices {
		if seen[dev.Building] {
			continue
		}
		seen[dev.Building] = true
		st, err := unlocks.UnlockSettings(sys, dev.Building)
		if err != nil {
			tb.Fatal(err)
		}
		st.BurstCount = 0
		if _, err := unlocks.UpdateUnlockSettings(sys, dev.Building, *st); err != nil {
			tb.Fatal(err)
		}
	}
}

// stats reads the portal process's resident set, goroutines and open files.
func (r *loadRig) stats() procStats {
	r.pcMu.Lock()
	defer r.pcMu.Unlock()
	return r.pc.stats(r.tb)
}

// mem reads the portal process's memory after a full collection.
func (r *loadRig) mem() memFigures {
	r.pcMu.Lock()
	defer r.pcMu.Unlock()
	return r.pc.mem(r.tb)
}

// cpuProfile starts a CPU profile of the portal process into path; the
// returned function stops it.
func (r *loadRig) cpuProfile(path string) func() {
	r.pcMu.Lock()
	defer r.pcMu.Unlock()
	if _, err := fmt.Fprintf(r.pc.stdin, "cpuprofile\n%s\n", path); err != nil {
		r.tb.Fatal(err)
	}
	if res := r.pc.await(r.tb, "portal done cpuprofile "); res != "<nil>" {
		r.tb.Fatalf("cpu profile of the portal: %s", res)
	}
	return func() {
		r.pcMu.Lock()
		defer r.pcMu.Unlock()
		fmt.Fprintln(r.pc.stdin, "stopprofile")
		r.pc.await(r.tb, "portal done stopprofile")
	}
}

// dump writes the portal's goroutines and log into dir.
func (r *loadRig) dump(dir string) {
	r.pcMu.Lock()
	defer r.pcMu.Unlock()
	if _, err := fmt.Fprintf(r.pc.stdin, "dump\n%s\n", dir); err != nil {
		r.tb.Fatal(err)
	}
	r.tb.Logf("portal's goroutines and log written to %s: %s", dir, r.pc.await(r.tb, "portal done dump "))
}

// walSize is the size of the database's write-ahead log.
func (r *loadRig) walSize() int64 {
	fi, err := os.Stat(filepath.Join(r.world.DataDir, "doorledger.db-wal"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// devicesOf returns the indexes (in world.Devices) of the devices in the
// lockdown building (in) or outside it.
func (r *loadRig) devicesOf(in bool) []int {
	var idx []int
	for i, d := range r.world.Devices {
		if (d.Building == r.world.Lockdown) == in {
			idx = append(idx, i)
		}
	}
	return idx
}

// stopPortal stops the portal's process (after the simulators) and runs
// `portal audit verify` on its data directory.
func (r *loadRig) stopPortal() {
	tb := r.tb
	tb.Helper()
	r.fleet.Stop()
	r.pc.Stop()
	if code := r.pc.cmd.ProcessState.ExitCode(); code != 0 {
		tb.Errorf("the portal's process exited with %d", code)
	}
	var out, errb strings.Builder
	getenv := func(k string) string {
		if k == "DOORLEDGER_DATABASE_URL" {
			return r.dbURL
		}
		return ""
	}
	if err := run(context.Background(), []string{"audit", "verify", "-data", r.world.DataDir}, getenv, &out, &errb); err != nil {
		tb.Errorf("portal audit verify: %v\n%s%s", err, out.String(), errb.String())
	} else {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		tb.Logf("portal audit verify: %s", lines[len(lines)-1])
	}
}

// awaitProgress polls query (a COUNT) until it returns want, saying every
// 10 s how far it got and how many events were made and stored.
func (r *loadRig) awaitProgress(wait time.Duration, prod *producer, query string, want int, args ...any) {
	tb := r.tb
	tb.Helper()
	start := time.Now()
	said := start
	for {
		var n int
		if err := r.bp.reader.QueryRow(query, args...).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Since(said) >= 10*time.Second {
			said = time.Now()
			var stored int64
			r.bp.reader.QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE event_id LIKE ?`, loadEventPre+"%").Scan(&stored)
			tb.Logf("after %s: %d of %d; events made %d, stored %d", time.Since(start).Round(time.Second), n, want, prod.total.Load(), stored)
		}
		if time.Since(start) > wait {
			if dir := os.Getenv("DOORLEDGER_LOAD_DUMP"); dir != "" {
				r.dump(dir)
			}
			tb.Fatalf("%s: %d, want %d after %s", query, n, want, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// producer makes unlock events through the simulators at a steady rate, each
// device in turn, with ids the rig chooses: load-<device>-<n>, n counting
// from 0 per device, so that what was made can be counted in the database.
type producer struct {
	sims    []*devicectl.SimDevice
	made    []atomic.Int64 // per simulator
	total   atomic.Int64
	skipped atomic.Int64 // events not made because the producer fell more than a second behind
	stop    context.CancelFunc
	done    chan struct{}
	began   time.Time
	ended   time.Time
}

// produce starts making rate events a second until stop.
func produce(sims []*devicectl.SimDevice, rate int) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{sims: sims, made: make([]atomic.Int64, len(sims)), stop: cancel, done: make(chan struct{}), began: time.Now()}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		next, due := 0, int64(0)
		for {
			select {
			case <-ctx.Done():
				p.ended = time.Now()
				return
			case <-tick.C:
			}
			due = int64(time.Since(p.began).Seconds() * float64(rate))
			if behind := due - p.total.Load() - p.skipped.Load(); behind > int64(rate) {
				p.skipped.Add(behind - int64(rate))
			}
			for p.total.Load()+p.skipped.Load() < due {
				i := next % len(sims)
				next++
				n := p.made[i].Load()
				if _, err := sims[i].Unlock(devicectl.EventMessage{EventID: fmt.Sprintf("%s%d-%d", loadEventPre, sims[i].ID(), n), ActorRef: "courier"}); err != nil {
					panic(err) // no state directory: Unlock cannot fail
				}
				p.made[i].Add(1)
				p.total.Add(1)
			}
		}
	}()
	return p
}

// Stop stops making events and returns the rate achieved.
func (p *producer) Stop() float64 {
	p.stop()
	<-p.done
	return float64(p.total.Load()) / p.ended.Sub(p.began).Seconds()
}

// checkStored waits until every simulator saw each of its events
// acknowledged, then checks that the database holds each event made exactly
// once (counted on the table itself: NOT INDEXED, so that a broken unique
// index cannot hide a duplicate). It returns the number of events.
func (p *producer) checkStored(tb testing.TB, reader *sql.DB, wait time.Duration) int64 {
	tb.Helper()
	return p.checkStoredOn(tb, reader, false, wait)
}

// checkStoredOn is checkStored on either backend (pg: reader is PostgreSQL's,
// which counts on the table itself with its index scans turned off).
func (p *producer) checkStoredOn(tb testing.TB, reader *sql.DB, pg bool, wait time.Duration) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, s := range p.sims {
		if err := s.AwaitDelivered(ctx); err != nil {
			tb.Fatalf("device %d: %d events never acknowledged: %v", s.ID(), s.Undelivered(), err)
		}
	}
	want := map[int64]int64{}
	for i, s := range p.sims {
		want[s.ID()] = p.made[i].Load()
	}
	q := `SELECT device_id, COUNT(*), COUNT(DISTINCT event_id) FROM unlock_events NOT INDEXED WHERE event_id LIKE ?1 GROUP BY device_id`
	var conn *sql.Conn
	if pg {
		var err error
		if conn, err = reader.Conn(context.Background()); err != nil {
			tb.Fatal(err)
		}
		defer conn.Close()
		for _, set := range []string{"enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"} {
			if _, err := conn.ExecContext(context.Background(), "SET "+set+" = off"); err != nil {
				tb.Fatal(err)
			}
		}
		q = `SELECT device_id, COUNT(*), COUNT(DISTINCT event_id) FROM unlock_events WHERE event_id LIKE $1 GROUP BY device_id`
	}
	var rows *sql.Rows
	var err error
	if conn != nil {
		rows, err = conn.QueryContext(context.Background(), q, loadEventPre+"%")
	} else {
		rows, err = reader.Query(q, loadEventPre+"%")
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var stored, dups, lost int64
	for rows.Next() {
		var dev, n, distinct int64
		if err := rows.Scan(&dev, &n, &distinct); err != nil {
			tb.Fatal(err)
		}
		stored += distinct
		dups += n - distinct
		if distinct > want[dev] {
			tb.Errorf("device %d: %d distinct events stored, %d made", dev, distinct, want[dev])
		}
		lost += max(0, want[dev]-distinct)
		delete(want, dev)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	for _, n := range want {
		lost += n
	}
	if dups > 0 || lost > 0 {
		tb.Errorf("events made and acknowledged %d: stored %d, LOST %d, stored more than once %d", p.total.Load(), stored, lost, dups)
	}
	return stored
}

// watched is a live stream a manager's page holds open, read by a goroutine
// that reconnects when the server ends it, as EventSource does.
type watched struct {
	path      string
	converged func(string) bool // the last fragment shows what the test waits for

	mu         sync.Mutex
	last       string
	events     int
	since      time.Time // when the last fragment arrived
	okAt       time.Time // when the fragment that first converged arrived (zero: not converged)
	reconnects int
	ended      []string // errors and end events
}

func (w *watched) got(ev string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last, w.since = ev, time.Now()
	w.events++
	if strings.Contains(ev, "Live updates stopped") {
		w.ended = append(w.ended, ev)
	}
	if w.converged != nil && w.converged(ev) {
		if w.okAt.IsZero() {
			w.okAt = w.since
		}
	} else {
		w.okAt = time.Time{}
	}
}

// state returns the last fragment, whether it converged and when it did.
func (w *watched) state() (events int, converged bool, at time.Time, last string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, !w.okAt.IsZero(), w.okAt, w.last
}

// viewer is a signed-in manager with the streams of the pages they hold open.
type viewer struct {
	client  *Client
	sse     *http.Client
	streams []*watched
}

// newViewer signs a manager in; streams go over connections of their own.
func (r *loadRig) newViewer(email string) *viewer {
	c := NewClient(r.tb, r.bp.URL)
	c.MustLogin(email, r.world.Password)
	return &viewer{client: c, sse: &http.Client{Jar: c.http.Jar, Transport: http.DefaultTransport.(*http.Transport).Clone()}}
}

// watch opens a stream for the viewer and reads it until ctx ends; ready is
// told once its first event arrived.
func (v *viewer) watch(ctx context.Context, wg *sync.WaitGroup, base string, w *watched, ready chan<- error) {
	v.streams = append(v.streams, w)
	wg.Add(1)
	go func() {
		defer wg.Done()
		first := true
		for ctx.Err() == nil {
			sctx, cancel := context.WithCancel(ctx)
			st, err := openSSE(sctx, cancel, v.sse, base+w.path)
			if err != nil {
				if first {
					ready <- err
					return
				}
				w.mu.Lock()
				w.ended = append(w.ended, err.Error())
				w.mu.Unlock()
				time.Sleep(time.Second)
				continue
			}
			for {
				ev, err := st.next()
				if err != nil {
					break
				}
				w.got(ev)
				if first {
					first = false
					ready <- nil
				}
			}
			st.Close()
			if ctx.Err() == nil {
				w.mu.Lock()
				w.reconnects++
				w.mu.Unlock()
			}
		}
	}()
}

// revoker revokes devices one after another, the way their manager's page
// does, and times each until the page's stream shows it confirmed.
type revoker struct {
	attempts atomic.Int64 // revokes clicked
	mu       sync.Mutex
	samples  []time.Duration
	traces   []revokeTrace // of the samples, where known
	errs     []error
	stop     context.CancelFunc
	done     chan struct{}
}

// record keeps a sample or an error.
func (rv *revoker) record(d time.Duration, err error) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if err != nil {
		rv.errs = append(rv.errs, err)
	} else {
		rv.samples = append(rv.samples, d)
	}
}

// revokeLoop revokes the devices ids in turn, one every interval at most (0:
// each as soon as the last is confirmed), until stop or the list ends. A
// revoke whose page does not show it confirmed within benchWait is an error
// of the loop, which goes on.
// reenable enables each device again once its revoke is shown (untimed).
func (r *loadRig) revokeLoop(ids []int64, interval time.Duration, reenable bool) *revoker {
	ctx, cancel := context.WithCancel(context.Background())
	rv := &revoker{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(rv.done)
		for i := 0; ctx.Err() == nil; i++ {
			if i == len(ids) {
				if !reenable {
					return
				}
				i = 0
			}
			start := time.Now()
			rv.attempts.Add(1)
			s, err := r.bp.revokeOne(ids[i])
			if err != nil {
				// Not shown within benchWait: said at the end; the database
				// says whether it was confirmed after all.
				rv.record(0, err)
			} else {
				rv.record(s.shown.Sub(s.click), nil)
				if tr, ok := r.trace(s); ok {
					rv.mu.Lock()
					rv.traces = append(rv.traces, tr)
					rv.mu.Unlock()
				}
			}
			if reenable {
				// Every revoke is followed by its enable, even when the loop
				// is being stopped: a revoke not shown in time and never
				// replaced was left open by the loop itself (the 40-minute
				// soak's one unconfirmed revoke, docs/reliability.md).
				ectx, cancel := context.WithTimeout(context.Background(), benchWait)
				status, err := r.bp.post(ectx, fmt.Sprintf("/devices/%d/enable", ids[i]), true)
				cancel()
				if err != nil || status != http.StatusOK {
					rv.record(0, fmt.Errorf("enable device %d: %d %v", ids[i], status, err))
				}
			}
			if wait := interval - time.Since(start); wait > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}
	}()
	return rv
}

// revokeTrace is where one revoke's time went, from the manager's click
// until the page showed it confirmed, on the clocks of the test (click,
// shown), the portal's database (the revoke's and the confirming report's
// transactions started, the push returned) and the simulator (applied,
// report sent and acknowledged), all this machine's wall clock.
type revokeTrace struct {
	click, committed, pushed, applied, reportSent, confirmTx, reportAcked, shown time.Time
}

// revokePhases names the phases of a revokeTrace, in order.
var revokePhases = []string{
	"click → revoke tx",         // the POST waits for the writer
	"revoke tx → pushed",        // commit, the controller publishes
	"pushed → device applied",   // the broker delivers
	"applied → report sent",     // the device's own in-flight events before its report
	"report sent → confirm tx",  // the broker's hook waits for the writer
	"confirm tx → report acked", // the report's transaction and commit
	"report acked → page shows", // the live page's re-read and render
}

// phases returns the trace's phases (revokePhases' order).
func (tr revokeTrace) phases() []time.Duration {
	at := []time.Time{tr.click, tr.committed, tr.pushed, tr.applied, tr.reportSent, tr.confirmTx, tr.reportAcked, tr.shown}
	d := make([]time.Duration, len(at)-1)
	for i := range d {
		d[i] = at[i+1].Sub(at[i])
	}
	return d
}

// trace reads a shown revoke's times from the database and its simulator.
func (r *loadRig) trace(s revokeSample) (revokeTrace, bool) {
	requested, sent, confirmed, err := r.bp.dbTimes(s.device, s.version)
	if err != nil {
		return revokeTrace{}, false
	}
	var sim *devicectl.SimDevice
	for i, d := range r.world.Devices {
		if d.ID == s.device {
			sim = r.sims[i]
		}
	}
	rep, applied := sim.LastReport(), sim.Applied()
	if rep.Version != s.version || applied.Version != s.version {
		return revokeTrace{}, false // reported again since (the rig re-enabled it)
	}
	return revokeTrace{click: s.click, committed: requested, pushed: sent, applied: applied.At,
		reportSent: rep.Started, confirmTx: confirmed, reportAcked: rep.Acked, shown: s.shown}, true
}

// tracePhases says p50 and p99 of each phase of traces.
func tracePhases(traces []revokeTrace) string {
	var b strings.Builder
	for i, name := range revokePhases {
		var d []time.Duration
		for _, tr := range traces {
			d = append(d, tr.phases()[i])
		}
		p50, p99 := percentiles(d)
		fmt.Fprintf(&b, "\n    %-28s p50 %9s  p99 %9s", name, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond))
	}
	return b.String()
}

// Stop ends the loop after the revoke under way and returns its samples.
func (rv *revoker) Stop() ([]time.Duration, []error) {
	rv.stop()
	<-rv.done
	return rv.samples, rv.errs
}

// stats asks the child for its procStats.
func (pc *portalChild) stats(b testing.TB) procStats {
	b.Helper()
	if _, err := fmt.Fprintln(pc.stdin, "stats"); err != nil {
		b.Fatal(err)
	}
	var s procStats
	if _, err := fmt.Sscan(pc.await(b, "portal stats "), &s.RSS, &s.Goroutines, &s.FDs, &s.StackInuse); err != nil {
		b.Fatal(err)
	}
	return s
}
