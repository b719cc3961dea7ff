//go:build bench

package main

// Portfolio scale on one machine (issue 15, docs/benchmarks.md "Portfolio
// scale"): 1,000 buildings, 10,000 consented devices connected, 2,000 unlock
// events a second for 10 minutes, a manager revoking devices one after
// another all the while. Run with
//
//	DOORLEDGER_BENCH_CACHE=/var/tmp/doorledger-bench \
//	  go test -tags bench ./cmd/portal -run TestBenchPortfolio -v -count=1 -timeout 40m -backend sqlite
//
// (-backend postgres: the package's throw-away cluster, durable). It is a
// test of the load rig (loadrig_test.go), not a Go benchmark, so that it
// runs once at its own size: the portal alone in a child process (the test
// binary again, TestBenchPortalProcess), the simulators in this one. It
// asserts only what must hold on any machine — every event the simulators
// had acknowledged is stored exactly once, counted by id on the table at the
// end, and `portal audit verify` passes — and prints the figures:
//
//   - events made, acknowledged and stored per second over the window, each
//     30 s and overall;
//   - revoke click → page shows confirmed, p50 and p99, during the load and
//     idle before it, against the durable floor (bench_revoke_test.go)
//     measured idle in the same run;
//   - the portal's RSS with every device connected (after a collection) and
//     at its peak under load;
//   - the CPU each part took: the portal's process, this process (the
//     simulators, the producer, the revoking manager), PostgreSQL's server
//     processes, and the rest of the machine; and the load average.
//
// Sizes and knobs (environment):
//
//	DOORLEDGER_PORTFOLIO_BUILDINGS=1000   buildings
//	DOORLEDGER_PORTFOLIO_DEVICES=10000    devices, spread evenly over them
//	DOORLEDGER_PORTFOLIO_RATE=2000        unlock events a second
//	DOORLEDGER_PORTFOLIO_DURATION=10m     how long they arrive
//	DOORLEDGER_PORTFOLIO_IDLE=200         idle revokes and floor round trips
//	DOORLEDGER_PORTFOLIO_DRAIN=15m        how long the events still queued at the end may take
//	DOORLEDGER_PORTFOLIO_REST=0           how long the portal rests once connected before its memory is read
//	DOORLEDGER_PORTFOLIO_CPUPROFILE=file  CPU profile of the portal during the load
//	DOORLEDGER_BENCH_CACHE=dir            keep the seeded world there (seeding
//	                                      10,000 devices takes minutes)
//	DOORLEDGER_BENCH_BACKEND=postgres     as -backend

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

var backendFlag = flag.String("backend", "", "the portfolio benchmark's database: sqlite (default) or postgres (env DOORLEDGER_BENCH_BACKEND)")

// portfolioSeedVersion names the cached seed: change it when the seed or the
// schema changes.
const portfolioSeedVersion = 2

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func benchDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

func TestBenchPortfolio(t *testing.T) {
	backend := benchBackend(*backendFlag)
	if backend == "" {
		backend = benchBackend(os.Getenv("DOORLEDGER_BENCH_BACKEND"))
	}
	if backend == "" {
		backend = onSQLite
	}
	if backend != onSQLite && backend != onPostgres {
		t.Fatalf("-backend %q: sqlite or postgres", backend)
	}
	if backend == onPostgres {
		pgCluster.Durable = true // fsync on: a commit costs what it costs in service
	}
	layout := portfolioLayout(t)
	nb, nd := len(layout), 0
	for _, n := range layout {
		nd += n
	}
	rate := envInt(t, "DOORLEDGER_PORTFOLIO_RATE", 2000)
	idleN := envInt(t, "DOORLEDGER_PORTFOLIO_IDLE", 200)
	window := benchDuration(t, "DOORLEDGER_PORTFOLIO_DURATION", 10*time.Minute)
	began := time.Now()
	t.Logf("portfolio: %d buildings, %d devices, %d events/s for %s on %s; started %s UTC, loadavg %s",
		nb, nd, rate, window, backend, began.UTC().Format("2006-01-02 15:04:05"), loadavg())

	r := startLoadRigWith(t, rigConfig{Backend: backend, Seed: func(tb testing.TB, dir string) *benchWorld {
		return portfolioSeed(tb, dir, layout)
	}})
	reader := r.bp.reader
	pgPID := 0
	if backend == onPostgres {
		pgPID = postmasterPID(r.dbURL)
	}
	cpu := newCPUSplit(r.pc.cmd.Process.Pid, pgPID)

	if rest := benchDuration(t, "DOORLEDGER_PORTFOLIO_REST", 0); rest > 0 {
		// What the runtime does by itself, with no collection forced.
		for at := time.Now(); time.Since(at) < rest; {
			time.Sleep(min(30*time.Second, rest-time.Since(at)))
			st := r.stats()
			t.Logf("at rest %s: RSS %.1f MiB, stacks %.1f MiB, %d goroutines (no collection forced)", time.Since(at).Round(time.Second), mb(st.RSS), mb(st.StackInuse), st.Goroutines)
		}
	}
	asIs := r.stats()
	connected := r.mem()
	t.Logf("portal with %d devices connected, as it is (no collection forced): RSS %.1f MiB, stacks %.1f MiB, %d goroutines",
		len(r.world.Devices), mb(asIs.RSS), mb(asIs.StackInuse), asIs.Goroutines)
	t.Logf("portal with %d devices connected, after collections until its stacks stop shrinking: %.1f KB RSS a device; %s",
		len(r.world.Devices), float64(connected.RSS)/float64(len(r.world.Devices))/1024, connected)
	t.Logf("this process (the %d simulators) %s", len(r.world.Devices), selfMem())

	// Revokes go to every 20th device, spread over the buildings.
	var ids []int64
	for i := 0; i < len(r.world.Devices); i += max(1, len(r.world.Devices)/500) {
		ids = append(ids, r.world.Devices[i].ID)
	}

	// Idle: the floors and the revoke interleaved, one of each in turn, as
	// BenchmarkRevoke does, then the floor's simulators are stopped.
	floor := startFloorN(t, backend, 1000)
	var idleRevokes, raw, durable, commits []time.Duration
	idleCPU := cpu.sample()
	for i := range idleN {
		f, _ := floor.roundTrip(t, false)
		raw = append(raw, f)
		d, c := floor.roundTrip(t, true)
		durable, commits = append(durable, d), append(commits, c)
		s, err := r.bp.revokeOne(ids[i%len(ids)])
		if err != nil {
			t.Fatalf("idle revoke: %v", err)
		}
		idleRevokes = append(idleRevokes, s.shown.Sub(s.click))
		if status, err := r.bp.post(t.Context(), fmt.Sprintf("/devices/%d/enable", s.device), true); err != nil || status != 200 {
			t.Fatalf("enable device %d: %d %v", s.device, status, err)
		}
	}
	t.Logf("idle: %s", cpu.since(idleCPU))
	floor.Close()
	awaitCount(t, reader, len(r.world.Devices), confirmedQuery+` AND desired_state = 'enabled'`)
	i50, i99 := percentiles(idleRevokes)
	f50, f99 := percentiles(raw)
	g50, g99 := percentiles(durable)
	c50, c99 := percentiles(commits)
	t.Logf("idle (%d each, interleaved): revoke click → shown p50 %s p99 %s; raw floor p50 %s p99 %s; durable floor p50 %s p99 %s (its two commits p50 %s p99 %s)",
		idleN, i50, i99, f50, f99, g50, g99, c50, c99)

	// The load.
	var stopProfile func()
	if path := os.Getenv("DOORLEDGER_PORTFOLIO_CPUPROFILE"); path != "" {
		stopProfile = r.cpuProfile(path)
	}
	countStored := func() int64 {
		var n int64
		if err := reader.QueryRow(`SELECT COUNT(*) FROM unlock_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	acked := func(p *producer) int64 {
		var n int64
		for i, s := range p.sims {
			n += p.made[i].Load() - int64(s.Undelivered())
		}
		return n
	}
	stored0 := countStored()
	loadCPU := cpu.sample()
	prod := produce(r.sims, rate)
	rv := r.revokeLoop(ids, time.Second, true)
	const every = 30 * time.Second
	t.Logf("%8s %10s %10s %10s %9s %9s %9s %8s %6s  %s", "t", "made", "acked", "stored", "made/s", "acked/s", "stored/s", "RSS MiB", "gorout", "CPU (cores) and load")
	var peakRSS uint64
	lastMade, lastAcked, lastStored, lastAt, lastCPU := int64(0), int64(0), stored0, time.Now(), loadCPU
	for time.Since(prod.began) < window {
		time.Sleep(min(every, window-time.Since(prod.began)))
		now := time.Now()
		made, ack, stored := prod.total.Load(), acked(prod), countStored()-stored0
		st := r.stats()
		peakRSS = max(peakRSS, st.RSS)
		c := cpu.sample()
		dt := now.Sub(lastAt).Seconds()
		t.Logf("%8s %10d %10d %10d %9.0f %9.0f %9.0f %8.1f %6d  %s", now.Sub(prod.began).Round(time.Second), made, ack, stored,
			float64(made-lastMade)/dt, float64(ack-lastAcked)/dt, float64(stored-lastStored)/dt, mb(st.RSS), st.Goroutines, c.sub(lastCPU))
		lastMade, lastAcked, lastStored, lastAt, lastCPU = made, ack, stored, now, c
	}
	madeRate := prod.Stop()
	end := time.Now()
	ackEnd, storedEnd := acked(prod), countStored()-stored0
	endCPU := cpu.sample()
	samples, errs := rv.Stop()
	if stopProfile != nil {
		stopProfile()
	}
	secs := end.Sub(prod.began).Seconds()
	t.Logf("window %s: made %d (%.0f/s), acknowledged %d (%.0f/s), stored %d (%.0f/s) of %d/s offered; %s",
		end.Sub(prod.began).Round(time.Second), prod.total.Load(), madeRate, ackEnd, float64(ackEnd)/secs, storedEnd, float64(storedEnd)/secs, rate,
		endCPU.sub(loadCPU))

	drain := time.Now()
	drainWait := benchDuration(t, "DOORLEDGER_PORTFOLIO_DRAIN", 15*time.Minute)
	n := prod.checkStoredOn(t, reader, r.bp.pg, drainWait)
	t.Logf("every event made acknowledged %s after the window; %d stored exactly once (counted by id on the table)", time.Since(drain).Round(time.Second), n)

	l50, l99 := percentiles(samples)
	t.Logf("revoke under load: %d shown, %d not shown within %s; click → shown p50 %s p99 %s max %s", len(samples), len(errs), benchWait,
		l50, l99, slices.Max(samples))
	if len(rv.traces) > 0 {
		t.Logf("where the revokes' time went under load (%d traced):%s", len(rv.traces), tracePhases(rv.traces))
	}
	after := r.mem()
	t.Logf("portfolio on %s: %d buildings, %d devices; events offered %d/s, stored %.0f/s over %s, none lost or doubled (%d); "+
		"revoke p99 under load %s = %.2f× the idle durable floor's p99 %s (target ≤ 2×; idle revoke p99 %s); "+
		"portal RSS %.1f MiB with %d devices connected (target < 400), peak %.1f MiB under load, %.1f MiB after",
		backend, nb, len(r.world.Devices), rate, float64(storedEnd)/secs, end.Sub(prod.began).Round(time.Second), n,
		l99, float64(l99)/float64(g99), g99, i99, mb(connected.RSS), len(r.world.Devices), mb(peakRSS), mb(after.RSS))
	r.stopPortal()
	t.Logf("took %s; loadavg %s", time.Since(began).Round(time.Second), loadavg())
}

// portfolioSeed fills dir with the world of layout: a copy of the cached seed
// when DOORLEDGER_BENCH_CACHE holds one, else a fresh seed (cached there
// when set). Burst detection is off in every building (seedManagers).
func portfolioSeed(tb testing.TB, dir string, layout []int) *benchWorld {
	tb.Helper()
	seed := func(into string) *benchWorld {
		r := &loadRig{tb: tb, world: seedDirLayout(tb, into, layout)}
		r.seedManagers(0)
		confirmSeeded(tb, r.world)
		return r.world
	}
	cache := os.Getenv("DOORLEDGER_BENCH_CACHE")
	if cache == "" {
		tb.Logf("DOORLEDGER_BENCH_CACHE is not set: seeding for this run only")
		return seed(dir)
	}
	total := 0
	for _, n := range layout {
		total += n
	}
	cached := filepath.Join(cache, fmt.Sprintf("portfolio-%dx%d-v%d", len(layout), total, portfolioSeedVersion))
	var w *benchWorld
	if buf, err := os.ReadFile(filepath.Join(cached, "world.json")); err == nil {
		w = &benchWorld{}
		if err := json.Unmarshal(buf, w); err != nil {
			tb.Fatalf("cached seed %s: %v", cached, err)
		}
		tb.Logf("using the cached seed %s (seeded in %s)", cached, w.SeedTaken.Round(time.Second))
	} else {
		tmp := cached + ".partial"
		if err := os.RemoveAll(tmp); err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			tb.Fatal(err)
		}
		// Seeded on tmpfs when there is one (thousands of small durable
		// transactions, an fsync each), then copied into the cache.
		into := tmp
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if into, err = os.MkdirTemp("/dev/shm", "doorledger-portfolio-seed-"); err != nil {
				tb.Fatal(err)
			}
			defer os.RemoveAll(into)
		}
		w = seed(into)
		if into != tmp {
			copyDir(tb, into, tmp)
		}
		buf, _ := json.Marshal(w)
		if err := os.WriteFile(filepath.Join(tmp, "world.json"), buf, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(tmp, cached); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("seeded %d devices in %d buildings in %s; cached in %s", len(w.Devices), len(layout), w.SeedTaken.Round(time.Second), cached)
	}
	copyDir(tb, cached, dir)
	w.DataDir = dir
	sequenceLog(tb, dir)
	return w
}

// sequenceLog sequences what the seeding journaled into the verifiable log,
// with the key the portal will load, as the portal would at its start:
// `portal migrate` refuses a database whose journal is more than a minute
// ahead of its log, which a cached seed is.
func sequenceLog(tb testing.TB, dir string) {
	tb.Helper()
	start := time.Now()
	key, err := logKey(&config{DataDir: dir}) // the portal's: named after the log's origin
	if err != nil {
		tb.Fatal(err)
	}
	d := sqlite.NewDB(filepath.Join(dir, "doorledger.db"))
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	if _, err := sqlite.NewLogService(d, key).SignHead(doorledger.NewSystemContext(context.Background(), "bench seed")); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("sequenced the seed's journal into the log in %s", time.Since(start).Round(time.Millisecond))
}

// confirmSeeded records each seeded device's report of its enabled state
// (version 1) through the service, as the device's first report would: the
// world starts as a running portfolio whose devices have confirmed their
// commands. A cached seed minutes old would otherwise start the portal with
// 10,000 commands past the 30 s command time-out, which the controller marks
// "not confirmed" and re-pushes every 5 s until the devices' reports catch up
// (docs/benchmarks.md, "Portfolio scale": seen at 10,000, ~40 confirmations
// a second).
func confirmSeeded(tb testing.TB, w *benchWorld) {
	tb.Helper()
	d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	devices := sqlite.NewDeviceService(d)
	ctx := context.Background()
	for _, dev := range w.Devices {
		if err := devices.ReportState(ctx, doorledger.ReportedState{DeviceID: dev.ID, State: doorledger.StateEnabled, Version: 1, At: time.Now()}); err != nil {
			tb.Fatalf("device %d reports: %v", dev.ID, err)
		}
	}
	var n int
	if err := d.Reader().QueryRowContext(ctx, confirmedQuery).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	if n != len(w.Devices) {
		tb.Fatalf("%d of %d seeded devices confirmed", n, len(w.Devices))
	}
}

// copyDir copies the regular files of from (but a world.json) into to.
func copyDir(tb testing.TB, from, to string) {
	tb.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != "world.json" {
			if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// TestBenchPortfolioSeed only seeds the portfolio benchmark's cached world
// (DOORLEDGER_BENCH_CACHE, the sizes of TestBenchPortfolio), so that the
// timed run can start at once.
func TestBenchPortfolioSeed(t *testing.T) {
	if os.Getenv("DOORLEDGER_BENCH_CACHE") == "" {
		t.Skip("seeds DOORLEDGER_BENCH_CACHE; not set")
	}
	w := portfolioSeed(t, t.TempDir(), portfolioLayout(t))
	t.Logf("%d devices in %d buildings", len(w.Devices), w.Buildings)
}

// portfolioLayout spreads DOORLEDGER_PORTFOLIO_DEVICES (10,000) evenly over
// DOORLEDGER_PORTFOLIO_BUILDINGS (1,000).
func portfolioLayout(tb testing.TB) []int {
	nb := envInt(tb, "DOORLEDGER_PORTFOLIO_BUILDINGS", 1000)
	nd := envInt(tb, "DOORLEDGER_PORTFOLIO_DEVICES", 10000)
	layout := make([]int, nb)
	for i := range layout {
		layout[i] = nd / nb
		if i < nd%nb {
			layout[i]++
		}
	}
	return layout
}

func loadavg() string {
	buf, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(buf))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// selfMem describes this process's memory at rest.
func selfMem() string { return readMem().String() }

// procTicks is a process's CPU time (user + system) in clock ticks, from
// /proc/<pid>/stat; with children, that of its children too (the processes
// whose parent it is, as they are now).
func procTicks(pid int) float64 {
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(buf)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	sys, _ := strconv.ParseFloat(f[12], 64)
	return u + sys
}

// treeTicks is procTicks of pid and of every process whose parent is pid
// (PostgreSQL's postmaster and its backends). A backend that ended between
// samples takes its time with it, so the figure is a lower bound.
func treeTicks(pid int) float64 {
	if pid == 0 {
		return 0
	}
	total := procTicks(pid)
	ents, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		buf, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(buf)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == want {
			total += procTicks(child)
		}
	}
	return total
}

var pgPortRE = regexp.MustCompile(`port=(\d+)`)

// postmasterPID finds the PostgreSQL server listening on url's port.
func postmasterPID(url string) int {
	m := pgPortRE.FindStringSubmatch(url)
	if m == nil {
		return 0
	}
	needle := []byte("\x00-p\x00" + m[1] + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, needle) && strings.Contains(string(cmd), "postgres") {
			return pid
		}
	}
	return 0
}

// cpuSplit samples the CPU time of the portal's process, this process,
// PostgreSQL's server and the machine.
type cpuSplit struct{ portal, pg int }

type cpuPoint struct {
	at                 time.Time
	machine            cpuSample
	portal, self, pgsv float64 // ticks
}

func newCPUSplit(portalPID, pgPID int) *cpuSplit { return &cpuSplit{portal: portalPID, pg: pgPID} }

func (c *cpuSplit) sample() cpuPoint {
	return cpuPoint{at: time.Now(), machine: readCPU(), portal: procTicks(c.portal), self: procTicks(os.Getpid()), pgsv: treeTicks(c.pg)}
}

// since describes the CPU from p until now.
func (c *cpuSplit) since(p cpuPoint) string { return c.sample().sub(p) }

// sub describes the CPU between p and q (q earlier), in cores (of the
// machine's 2): the portal, this process (simulators, producer, revoker),
// PostgreSQL's server, everything else, steal; and the load average.
func (p cpuPoint) sub(q cpuPoint) string {
	const tick = 100.0 // USER_HZ
	secs := p.at.Sub(q.at).Seconds()
	if secs <= 0 {
		return ""
	}
	portal := (p.portal - q.portal) / tick / secs
	self := (p.self - q.self) / tick / secs
	pgsv := (p.pgsv - q.pgsv) / tick / secs
	busy := (p.machine.busy - q.machine.busy - (p.machine.steal - q.machine.steal)) / tick / secs
	steal := (p.machine.steal - q.machine.steal) / tick / secs
	others := max(0, busy-portal-self-pgsv)
	s := fmt.Sprintf("portal %.2f sims %.2f", portal, self)
	if p.pgsv > 0 || q.pgsv > 0 {
		s += fmt.Sprintf(" postgres %.2f", pgsv)
	}
	return s + fmt.Sprintf(" others %.2f steal %.2f; load %s", others, steal, loadavg())
}
