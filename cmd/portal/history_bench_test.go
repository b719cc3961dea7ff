package main

// The history benchmark, over loopback HTTP against the real portal (started
// through run()) on a building with 5M unlock events:
//
//	DOORLEDGER_BENCH_CACHE=/var/tmp/doorledger-bench \
//	  go test ./cmd/portal/ -run '^$' -bench HistoryHTTP -benchtime 400x -timeout 90m
//
// A board member signs in and GETs /buildings/:id/unlocks as a browser
// would (one keep-alive connection, cookies): the first page, a deep page
// (the `after` cursor of the event 90% down the history), one device's
// first and deep pages, all anomalies, open anomalies only, and the last
// 30 days (the date filter). It logs the backend's plan of each page's query. Each
// sub-benchmark reports the client-observed time (request sent to body
// read) and the server's own (its Server-Timing header: from the request
// logger to the response's headers, which render() sends after the whole
// page is rendered), p50 and p95 in µs, over b.N requests after a warm-up;
// then the same page's query alone (UnlockService.History as the board, on
// the same database in the same process) b.N times, so that the page's cost
// beyond the query is read from one run. It does so on SQLite, then on
// PostgreSQL (sub-benchmarks sqlite/… and postgres/…) on the same events,
// copied into the package's durable cluster with `portal migrate`
// (docs/benchmarks.md, "PostgreSQL beside SQLite").
//
// Seeding 5M events takes minutes, so it is cached: with
// DOORLEDGER_BENCH_CACHE set, the seeded data directory is kept there
// (named by the event count and seed version) and copied for each run;
// without it, each run seeds a temporary one. DOORLEDGER_BENCH_EVENTS sets
// the count (default 5,000,000; 200000 makes a quick run). The seeding runs
// in a child process (the test binary again, TestBenchHistorySeed), so its
// memory is not the portal's.
//
// Nothing here asserts on a duration: the figures are reported with
// b.ReportMetric and read by people (docs/benchmarks.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/db/sqlite"
)

const (
	histDefaultEvents = 5_000_000
	histDevices       = 20
	// histSeedVersion names the cached seed: change it when the seed or the
	// schema changes (2: events' effective time and its indexes, migration 012;
	// 3: the daily counts, migration 050).
	histSeedVersion = 3
	histWarmup      = 20 // requests per case before the timed ones
)

// histWorld is a seeded data directory for the history benchmark.
type histWorld struct {
	DataDir    string
	Building   int64
	Board      string // a board member of the building
	Manager    string
	Password   string
	Devices    []int64
	Events     int
	Anomalies  int // flagged events
	Acked      int // of them, acknowledged
	SeedTaken  time.Duration
	LogTaken   time.Duration // sequencing every event into the verifiable log
	SizeMB     float64       // the database file
	SeededAt   time.Time
	SeedFormat int
}

func histEvents(tb testing.TB) int {
	n := histDefaultEvents
	if s := os.Getenv("DOORLEDGER_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 10000 {
			tb.Fatalf("DOORLEDGER_BENCH_EVENTS=%q: want a number >= 10000", s)
		}
	}
	return n
}

// histSeeded returns a data directory of its own for this run: a copy of the
// cached seed (seeding it first if the cache lacks it), or a fresh seed.
func histSeeded(b *testing.B) *histWorld {
	b.Helper()
	n := histEvents(b)
	cache := os.Getenv("DOORLEDGER_BENCH_CACHE")
	if cache == "" {
		b.Logf("DOORLEDGER_BENCH_CACHE is not set: seeding %d events for this run only", n)
		return histSeedChild(b, b.TempDir(), n)
	}
	dir := filepath.Join(cache, fmt.Sprintf("history-%d-v%d", n, histSeedVersion))
	var w *histWorld
	if buf, err := os.ReadFile(filepath.Join(dir, "world.json")); err == nil {
		w = &histWorld{}
		if err := json.Unmarshal(buf, w); err != nil {
			b.Fatalf("cached seed %s: %v", dir, err)
		}
		b.Logf("using the cached seed %s (seeded %s in %s)", dir, w.SeededAt.Format(time.RFC3339), w.SeedTaken.Round(time.Second))
	} else {
		tmp := dir + ".partial"
		if err := os.RemoveAll(tmp); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			b.Fatal(err)
		}
		w = histSeedChild(b, tmp, n)
		buf, _ := json.Marshal(w)
		if err := os.WriteFile(filepath.Join(tmp, "world.json"), buf, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil { // only a complete seed gets the name
			b.Fatal(err)
		}
		b.Logf("seeded %d events in %s (log %s), %.0f MB; cached in %s", n, w.SeedTaken.Round(time.Second), w.LogTaken.Round(time.Second), w.SizeMB, dir)
	}
	run := b.TempDir()
	t0 := time.Now()
	for _, name := range []string{"doorledger.db", auditlog.KeyFile} {
		if err := copyFile(filepath.Join(dir, name), filepath.Join(run, name)); err != nil {
			b.Fatal(err)
		}
	}
	// The seed signed its log's heads under the key's own name, "doorledger"
	// (auditlog.LoadOrCreateKey): that is the log's origin, or the portal
	// would choose another at its start and `portal migrate` would find the
	// heads a checkpoint of another log.
	if _, err := os.Stat(filepath.Join(dir, auditlog.OriginFile)); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(run, auditlog.OriginFile), []byte("doorledger\n"), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("copied the seed in %s", time.Since(t0).Round(time.Millisecond))
	w.DataDir = run
	return w
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// histSeedChild seeds dir in a child process and returns what it made.
func histSeedChild(b *testing.B, dir string, n int) *histWorld {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHistorySeed$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "DOORLEDGER_BENCH_HISTORY_SEED="+dir, "DOORLEDGER_BENCH_EVENTS="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("seed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "history-seeded "); ok {
			var w histWorld
			if err := json.Unmarshal([]byte(rest), &w); err != nil {
				b.Fatal(err)
			}
			return &w
		}
	}
	b.Fatalf("seed printed no world:\n%s", out)
	return nil
}

// TestBenchHistorySeed is the history benchmark's seeding process, not a test.
func TestBenchHistorySeed(t *testing.T) {
	dir := os.Getenv("DOORLEDGER_BENCH_HISTORY_SEED")
	if dir == "" {
		t.Skip("the history benchmark's seeding process (DOORLEDGER_BENCH_HISTORY_SEED=dir)")
	}
	buf, err := json.Marshal(seedHistory(t, dir, histEvents(t)))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("history-seeded %s\n", buf)
}

// seedHistory fills a new data directory before the portal starts. People,
// the building and its devices go through the db services; the n events are
// written straight into unlock_events (the ingest path would take hours), as
// live traffic would leave them: oldest first over the last two years (inside
// the default retention, so the purge at start deletes nothing), three per
// timestamp (pages cut through ties), 20 devices in turn, 10% denied, 1%
// flagged outside_hours; the daily counts are kept by the trigger at each
// insert. Half of the flagged ones, alternately, are then
// acknowledged through the service (journal entries and all), and everything
// is sequenced into the verifiable log with the key the portal will load, so
// that the portal starts with no backlog. No ANALYZE: the portal never runs
// one, so the planner sees what it sees in service.
func seedHistory(tb testing.TB, dir string, n int) *histWorld {
	tb.Helper()
	start := time.Now()
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "bench seed")
	w := &histWorld{DataDir: dir, Board: "bo@bench.example", Manager: "mia@bench.example", Password: "correct horse battery",
		Events: n, SeededAt: start.UTC(), SeedFormat: histSeedVersion}
	d := sqlite.NewDB(filepath.Join(dir, "doorledger.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	users, buildings, devices := sqlite.NewUserService(d), sqlite.NewBuildingService(d), sqlite.NewDeviceService(d)
	bl, err := buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: "History Court", Address: "1 History St", Timezone: "America/New_York"})
	if err != nil {
		tb.Fatal(err)
	}
	w.Building = bl.ID
	// The zone's offsets for the daily counts (the portal's catch-up job does
	// this at its first tick): from here on each event is counted as it is
	// inserted (migration 050's trigger), as in service.
	if _, err := sqlite.NewUnlockService(d).CountDays(sys); err != nil {
		tb.Fatal(err)
	}
	var mgr *doorledger.User
	for _, u := range []struct {
		email, name string
		role        doorledger.Role
	}{{w.Manager, "Mia Manager", doorledger.RoleManager}, {w.Board, "Bo Board", doorledger.RoleBoard}} {
		nu, err := users.CreateUser(sys, doorledger.NewUser{Email: u.email, Name: u.name, Role: u.role, Password: w.Password})
		if err != nil {
			tb.Fatal(err)
		}
		if err := buildings.GrantAccess(sys, bl.ID, nu.ID); err != nil {
			tb.Fatal(err)
		}
		if u.role == doorledger.RoleManager {
			mgr = nu
		}
	}
	mgrCtx := doorledger.NewContextWithUser(ctx, mgr)
	for i := range histDevices {
		dev, err := devices.RecordFoundDevice(mgrCtx, bl.ID, doorledger.DeviceDetails{Vendor: "Acme", Model: "K2",
			Serial: fmt.Sprintf("HS-%02d", i+1), Location: fmt.Sprintf("panel %d", i+1), Opens: "lobby door"})
		if err != nil {
			tb.Fatal(err)
		}
		w.Devices = append(w.Devices, dev.ID)
	}

	// The events, 50,000 a transaction, with a larger page cache for the
	// writer connection while it builds the indexes.
	wr := d.Writer()
	if _, err := wr.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	span := 2 * 365 * 24 * time.Hour
	step := span / time.Duration(n)
	methods := []string{doorledger.MethodCourierApp, doorledger.MethodKeypad, doorledger.MethodRemote}
	const layout = "2006-01-02T15:04:05.000000Z"
	const chunk = 50000
	for lo := 0; lo < n; lo += chunk {
		tx, err := wr.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO unlock_events (building_id, device_id, device_ref, event_id, occurred_at, received_at,
			method, actor_ref, result, anomalies, source, effective_at) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, 'mqtt', ?)`)
		if err != nil {
			tb.Fatal(err)
		}
		for i := lo; i < min(n, lo+chunk); i++ {
			at := now.Add(-span + time.Duration(i/3*3)*step).Format(layout)
			result, bits := doorledger.UnlockGranted, 0
			if i%10 == 0 {
				result = doorledger.UnlockDenied
			}
			if i%100 == 1 {
				bits = 8 // outside_hours
			}
			if _, err := st.ExecContext(ctx, bl.ID, w.Devices[i%histDevices], fmt.Sprintf("h-%09d", i), at, at,
				methods[i%3], "pkg-"+strconv.FormatInt(int64(i), 36), result, bits, at); err != nil {
				tb.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}

	// Acknowledge every other anomaly, oldest first, through the service.
	var flagged []int64
	rows, err := d.Reader().QueryContext(ctx, `SELECT id FROM unlock_events WHERE building_id = ? AND anomalies <> 0 ORDER BY occurred_at, id`, bl.ID)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			tb.Fatal(err)
		}
		flagged = append(flagged, id)
	}
	rows.Close()
	w.Anomalies = len(flagged)
	var acks []int64
	for i, id := range flagged {
		if i%2 == 0 {
			acks = append(acks, id)
		}
	}
	unlocks := sqlite.NewUnlockService(d)
	for lo := 0; lo < len(acks); lo += doorledger.MaxAckEvents {
		if _, err := unlocks.AcknowledgeAnomalies(mgrCtx, bl.ID, acks[lo:min(len(acks), lo+doorledger.MaxAckEvents)],
			"false alarm: delivery hours were wrong"); err != nil {
			tb.Fatal(err)
		}
	}
	w.Acked = len(acks)
	// What the seeding mailed (found devices alert the managers) is marked
	// sent, so the portal's dispatcher does not log it during the benchmark.
	if _, err := wr.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = 1 WHERE sent_at IS NULL`, time.Now().UTC().Format(layout)); err != nil {
		tb.Fatal(err)
	}

	t0 := time.Now()
	key, err := auditlog.LoadOrCreateKey(filepath.Join(dir, auditlog.KeyFile), "doorledger")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := sqlite.NewLogService(d, key).SignHead(sys); err != nil {
		tb.Fatal(err)
	}
	w.LogTaken = time.Since(t0)
	if _, err := wr.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "doorledger.db")); err == nil {
		w.SizeMB = float64(fi.Size()) / (1 << 20)
	}
	w.SeedTaken = time.Since(start)
	return w
}

// histCase is one kind of history page.
type histCase struct {
	name  string
	query url.Values
	after string                  // the keyset cursor; "" for a first page
	f     doorledger.UnlockFilter // the same page, for the service alone
}

// histCursor is the `after` cursor of the event at depth (0: the newest)
// among the building's events matching where, as a page link carries it.
func histCursor(b *testing.B, w *histWorld, where string, args []any, depth int) string {
	b.Helper()
	r := openReader(b, w.DataDir)
	var at string
	var id int64
	q := `SELECT effective_at, id FROM unlock_events WHERE building_id = ?` + where + ` ORDER BY effective_at DESC, id DESC LIMIT 1 OFFSET ?`
	if err := r.QueryRow(q, append(append([]any{w.Building}, args...), depth)...).Scan(&at, &id); err != nil {
		b.Fatal(err)
	}
	t, err := time.Parse("2006-01-02T15:04:05.000000Z", at)
	if err != nil {
		b.Fatal(err)
	}
	return doorledger.UnlockCursor{At: t, ID: id}.String()
}

// cpuSample is the machine's CPU time (/proc/stat, in clock ticks) and this
// process's own, to tell how much of the machine others used during a run.
type cpuSample struct {
	busy, total, steal float64 // machine, ticks
	self               time.Duration
}

func readCPU() cpuSample {
	var s cpuSample
	if buf, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(buf), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			if i >= 8 { // guest time is counted in user already
				break
			}
			s.total += x
			if i != 3 && i != 4 {
				s.busy += x
			}
			if i == 7 {
				s.steal = x
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// load describes the machine during [a, b]: the share of its CPU used by
// other processes, the steal, and the load average at the end.
func load(a, b cpuSample) string {
	const tick = 100.0 // USER_HZ
	total := b.total - a.total
	if total <= 0 {
		return "unknown"
	}
	others := (b.busy - a.busy - (b.steal - a.steal) - (b.self-a.self).Seconds()*tick) / total
	avg, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("others %.0f%% of the CPU, steal %.0f%%, loadavg %s", 100*max(others, 0), 100*(b.steal-a.steal)/total,
		strings.Join(strings.Fields(string(avg))[:3], " "))
}

func histPct(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1)+0.5)].Nanoseconds()) / 1e3
}

// serverTiming reads the duration (ms) of the "app" metric of a Server-Timing header.
func serverTiming(h string) (time.Duration, bool) {
	for _, m := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(m), ";")
		if name != "app" {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "dur="); ok {
				ms, err := strconv.ParseFloat(v, 64)
				return time.Duration(ms * float64(time.Millisecond)), err == nil
			}
		}
	}
	return 0, false
}

// historyService is what the benchmark asks of either backend's
// UnlockService: the page's query alone and its plan.
type historyService interface {
	History(ctx context.Context, f doorledger.UnlockFilter) (*doorledger.UnlockPage, error)
	ExplainHistory(ctx context.Context, f doorledger.UnlockFilter) ([]string, error)
}

// BenchmarkHistoryHTTP: see the top of the file. It runs on each backend
// (benchBackends) on the same seeded events: on PostgreSQL the seeded file is
// copied into a fresh database of the package's (durable) cluster with
// `portal migrate` once the SQLite round is done, and the portal runs on it.
func BenchmarkHistoryHTTP(b *testing.B) {
	w := histSeeded(b)
	for _, backend := range benchBackends {
		b.Run(string(backend), func(b *testing.B) { benchmarkHistoryHTTP(b, w, backend) })
	}
}

func benchmarkHistoryHTTP(b *testing.B, w *histWorld, backend benchBackend) {
	var (
		p        *Portal
		svc      historyService
		findUser func(ctx context.Context, email string) (*doorledger.User, error)
	)
	if backend == onPostgres {
		url := pgCluster.Database(b)
		start := time.Now()
		var out, errb strings.Builder
		if err := run(context.Background(), []string{"migrate", "-data", w.DataDir, "-to", url}, func(string) string { return "" }, &out, &errb); err != nil {
			b.Fatalf("migrate: %v\n%s\n%s", err, out.String(), errb.String())
		}
		b.Logf("copied the %d events to PostgreSQL in %s", w.Events, time.Since(start).Round(time.Second))
		p = MustStartPortalEnv(b, w.DataDir, map[string]string{"DOORLEDGER_DATABASE_URL": url})
		d := postgres.NewDB(url)
		if err := d.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		svc, findUser = postgres.NewUnlockService(d), postgres.NewUserService(d).FindUserByEmail
	} else {
		p = MustStartPortal(b, w.DataDir)
		// The service alone, on the same file in the same process.
		d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
		if err := d.Open(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		svc, findUser = sqlite.NewUnlockService(d), sqlite.NewUserService(d).FindUserByEmail
	}
	board := NewClient(b, p.URL)
	board.MustLogin(w.Board, w.Password)
	// One keep-alive connection, as a browser tab's: the board's cookies on a
	// transport of its own.
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Jar: board.http.Jar, Transport: tr, CheckRedirect: board.http.CheckRedirect, Timeout: time.Minute}
	if _, ok := hc.Jar.(*cookiejar.Jar); !ok {
		b.Fatal("the board's client has no cookie jar")
	}

	// The service alone, on the same database in the same process, as a
	// board member: what the page costs beyond the query (session,
	// building, devices, rendering, HTTP).
	boardUser, err := findUser(doorledger.NewSystemContext(context.Background(), "bench"), w.Board)
	if err != nil {
		b.Fatal(err)
	}
	boardCtx := doorledger.NewContextWithUser(context.Background(), boardUser)

	dev := w.Devices[3]
	perDevice := w.Events / histDevices
	ny, _ := time.LoadLocation("America/New_York") // the seeded building's
	today, from30 := time.Now().In(ny).Format("2006-01-02"), time.Now().In(ny).AddDate(0, 0, -29).Format("2006-01-02")
	bl := w.Building
	cases := []histCase{
		{"first_page", url.Values{}, "", doorledger.UnlockFilter{}},
		{"deep_page", url.Values{}, histCursor(b, w, "", nil, w.Events*9/10), doorledger.UnlockFilter{}},
		{"device_first_page", url.Values{"device": {strconv.FormatInt(dev, 10)}}, "", doorledger.UnlockFilter{DeviceID: dev}},
		{"device_deep_page", url.Values{"device": {strconv.FormatInt(dev, 10)}}, histCursor(b, w, " AND device_id = ?", []any{dev}, perDevice*9/10),
			doorledger.UnlockFilter{DeviceID: dev}},
		{"anomalies_first_page", url.Values{"anomalies": {"1"}}, "", doorledger.UnlockFilter{AnomaliesOnly: true}},
		{"anomalies_deep_page", url.Values{"anomalies": {"1"}}, histCursor(b, w, " AND anomalies <> 0", nil, w.Anomalies*9/10),
			doorledger.UnlockFilter{AnomaliesOnly: true}},
		{"open_anomalies_first_page", url.Values{"anomalies": {"open"}}, "", doorledger.UnlockFilter{AnomaliesOnly: true, OpenOnly: true}},
		// The date filter (of the events' effective time): the last 30 days.
		{"last_30_days_first_page", url.Values{"from": {from30}, "to": {today}}, "", doorledger.UnlockFilter{From: from30, To: today}},
	}
	// The backend's plan of each page's query, for docs/benchmarks.md.
	for _, c := range cases {
		f := c.f
		f.BuildingID = bl
		plan, err := svc.ExplainHistory(doorledger.NewSystemContext(context.Background(), "bench"), f)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("plan of %s: %s", c.name, strings.Join(plan, " | "))
	}
	for _, c := range cases {
		c.f.BuildingID = bl
		if c.after != "" {
			var err error
			if c.f.After, err = doorledger.ParseUnlockCursor(c.after); err != nil {
				b.Fatal(err)
			}
		}
		path := fmt.Sprintf("/buildings/%d/unlocks", w.Building)
		q := c.query
		if c.after != "" {
			q = url.Values{}
			for k, v := range c.query {
				q[k] = v
			}
			q.Set("after", c.after)
		}
		if e := q.Encode(); e != "" {
			path += "?" + e
		}
		get := func(b *testing.B) (client, server time.Duration) {
			t := time.Now()
			resp, err := hc.Get(p.URL + path)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			client = time.Since(t)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d %v\n%.500s", path, resp.StatusCode, err, body)
			}
			if rows := strings.Count(string(body), `<tr id="unlock-`); rows != 50 {
				b.Fatalf("GET %s: %d rows, want a full page of 50", path, rows)
			}
			server, ok := serverTiming(resp.Header.Get("Server-Timing"))
			if !ok {
				b.Fatalf("GET %s: no Server-Timing app;dur= header (%q)", path, resp.Header.Get("Server-Timing"))
			}
			return client, server
		}
		b.Run(c.name, func(b *testing.B) {
			for range histWarmup {
				get(b)
			}
			cl, sv := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			before := readCPU()
			b.ResetTimer()
			for range b.N {
				c, s := get(b)
				cl, sv = append(cl, c), append(sv, s)
			}
			b.StopTimer()
			// The query alone, as many times, right after.
			q := make([]time.Duration, 0, b.N)
			for range b.N {
				t := time.Now()
				page, err := svc.History(boardCtx, c.f)
				q = append(q, time.Since(t))
				if err != nil || len(page.Events) != 50 {
					b.Fatalf("History %+v: %d events, %v", c.f, len(page.Events), err)
				}
			}
			slices.Sort(cl)
			slices.Sort(sv)
			slices.Sort(q)
			b.ReportMetric(histPct(cl, 0.50), "client-p50-µs")
			b.ReportMetric(histPct(cl, 0.95), "client-p95-µs")
			b.ReportMetric(histPct(sv, 0.50), "server-p50-µs")
			b.ReportMetric(histPct(sv, 0.95), "server-p95-µs")
			b.ReportMetric(histPct(q, 0.50), "query-p50-µs")
			b.ReportMetric(histPct(q, 0.95), "query-p95-µs")
			if b.N >= 20 {
				b.Logf("%s: %d requests; %s", c.name, b.N, load(before, readCPU()))
			}
		})
	}
}
