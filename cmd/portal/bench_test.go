package main

// Benchmarks of device control (revoke, lockdown, memory), run against the
// real portal (started through run()) with 1,000 simulated devices connected
// over TCP to its embedded broker:
//
//	go test ./cmd/portal/ -run '^$' -bench 'Revoke|Lockdown|Memory' -benchtime 1x -timeout 20m
//
// docs/benchmarks.md records the figures and how to read them. Knobs, all
// optional, for experiments:
//
//	DOORLEDGER_BENCH_SIMS=process    run the simulated devices in a child process
//	                                 (the test binary again, TestBenchSimFleet)
//	DOORLEDGER_BENCH_DATA=/dev/shm   put the data directory there (tmpfs: fsync is free)
//	DOORLEDGER_BENCH_CPUPROFILE=f    CPU profile of the timed part only (go test
//	                                 -cpuprofile also profiles seeding and connects)
//	DOORLEDGER_BENCH_REVOKES=1000    revokes sampled (default 200, at most 1,000)
//
// Nothing here asserts on a duration: the figures are reported with
// b.ReportMetric and read by people.
//
// This file holds what the benchmarks share: the seeded world, the started
// portal with its manager, streams and percentiles. Each benchmark has a file
// of its own (bench_revoke_test.go with its floors, bench_lockdown_test.go,
// bench_memory_test.go), and the simulated devices are in bench_fleet_test.go.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql on PostgreSQL, for the harness's reader
)

const (
	benchDevices   = 1000 // devices seeded and connected in every benchmark
	benchLockdownN = 500  // devices of the building that is locked down
	benchRevokes   = 200  // revokes (and floor round trips) sampled per iteration
	connectBatch   = 50   // simulators connecting at once
	benchWait      = 2 * time.Minute
)

// benchBuildings is how the 1,000 devices are spread: one building of 500
// (the lockdown) and five of 100.
var benchBuildings = []int{benchLockdownN, 100, 100, 100, 100, 100}

// seededDevice is a device with an issued credential and an enabled desired
// state resting on a signed consent of its building.
type seededDevice struct {
	ID, Building int64
	Secret       string
}

// benchWorld is a seeded data directory.
type benchWorld struct {
	DataDir   string
	Manager   string // a manager granted every building
	Password  string
	Lockdown  int64 // the building with benchLockdownN devices
	Devices   []seededDevice
	Buildings int      // how many
	Managers  []string // e-mails of the load rig's extra managers (seedManagers)
	SeedTaken time.Duration
}

func benchDataDir(b testing.TB) string {
	b.Helper()
	parent := os.Getenv("DOORLEDGER_BENCH_DATA")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "doorledger-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var signTokenRE = regexp.MustCompile(`/sign/([A-Za-z0-9_-]+)`)

// seedWorld seeds a new data directory in a child process (the test binary
// again, running TestBenchSeed), so that the memory the seeding used is not
// counted as the portal's.
func seedWorld(b *testing.B) *benchWorld {
	b.Helper()
	dir := benchDataDir(b)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchSeed$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DOORLEDGER_BENCH_SEED="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("seed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "seeded "); ok {
			var w benchWorld
			if err := json.Unmarshal([]byte(rest), &w); err != nil {
				b.Fatal(err)
			}
			return &w
		}
	}
	b.Fatalf("seed printed no world:\n%s", out)
	return nil
}

// TestBenchSeed is the benchmarks' seeding process, not a test.
func TestBenchSeed(t *testing.T) {
	dir := os.Getenv("DOORLEDGER_BENCH_SEED")
	if dir == "" {
		t.Skip("the benchmarks' seeding process (DOORLEDGER_BENCH_SEED=dir)")
	}
	buf, err := json.Marshal(seedDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("seeded %s\n", buf)
}

// seedDir fills a new data directory with the benchmarks' six buildings
// (benchBuildings); see seedDirLayout.
func seedDir(b testing.TB, dir string) *benchWorld {
	b.Helper()
	return seedDirLayout(b, dir, benchBuildings)
}

// seedDirLayout fills a new data directory, before the portal starts, through the
// db services as the people would: a manager and an installer granted
// len(layout) buildings of layout[i] devices each (the first is the lockdown building), one consent request per device, signed by the building's signer
// through its mailed link (the trigger-guarded path that enables the device),
// and a credential per device. The mail this queues is marked sent, so the
// portal's dispatcher does not log 3,000 messages while the benchmark runs.
func seedDirLayout(b testing.TB, dir string, layout []int) *benchWorld {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "bench seed")
	w := &benchWorld{DataDir: dir, Manager: "mia@bench.example", Password: "correct horse battery"}
	d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	users, buildings := sqlite.NewUserService(d), sqlite.NewBuildingService(d)
	consents, devices := sqlite.NewConsentService(d, "http://bench.invalid"), sqlite.NewDeviceService(d)
	outbox := sqlite.NewOutboxService(d)

	mgr, err := users.CreateUser(sys, doorledger.NewUser{Email: w.Manager, Name: "Mia Manager", Role: doorledger.RoleManager, Password: w.Password})
	if err != nil {
		b.Fatal(err)
	}
	inst, err := users.CreateUser(sys, doorledger.NewUser{Email: "ivan@bench.example", Name: "Ivan Installer", Role: doorledger.RoleInstaller,
		Company: "FastKey", Password: w.Password})
	if err != nil {
		b.Fatal(err)
	}
	instCtx := doorledger.NewContextWithUser(ctx, inst)
	sig := signaturePNG(b)
	want := 0
	for i, n := range layout {
		want += n
		bl, err := buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: fmt.Sprintf("Bench Court %d", i+1),
			Address: fmt.Sprintf("%d Bench St", i+1), Timezone: "America/Chicago"})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			w.Lockdown = bl.ID
		}
		signer, err := buildings.AddSigner(sys, bl.ID, doorledger.SignerInput{Name: "Ana Owner", Title: "Owner", Email: fmt.Sprintf("ana%d@bench.example", i+1)})
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range []int64{mgr.ID, inst.ID} {
			if err := buildings.GrantAccess(sys, bl.ID, u); err != nil {
				b.Fatal(err)
			}
		}
		for j := range n {
			c, err := consents.RequestConsent(instCtx, bl.ID, doorledger.ConsentRequest{SignerID: signer.ID, Device: doorledger.DeviceDetails{
				Vendor: "Acme", Model: "K2", Serial: fmt.Sprintf("SN-%d-%04d", i+1, j+1), Location: fmt.Sprintf("panel %d", j+1), Opens: "lobby door"}})
			if err != nil {
				b.Fatalf("request consent: %v", err)
			}
			// Bodies are sealed at rest: read the link as the dispatcher does,
			// then mark this round's mail sent so the next round reads little.
			pending, err := outbox.PendingMessages(ctx, 100, 100)
			if err != nil {
				b.Fatal(err)
			}
			var body string
			for _, m := range pending {
				if m.Kind == "signing_link" {
					body = m.Body
				}
			}
			if _, err := d.Writer().ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = 1 WHERE sent_at IS NULL`,
				time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")); err != nil {
				b.Fatal(err)
			}
			m := signTokenRE.FindStringSubmatch(body)
			if m == nil {
				b.Fatalf("no signing link in:\n%s", body)
			}
			sess, err := consents.OpenSigning(ctx, m[1])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := consents.Sign(ctx, m[1], doorledger.SignInput{TypedName: "Ana Owner", AgreeESign: true, SignaturePNG: sig,
				TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "127.0.0.1", UserAgent: "bench"}); err != nil {
				b.Fatalf("sign consent %d: %v", c.ID, err)
			}
			secret, err := devices.IssueCredential(sys, c.DeviceID)
			if err != nil {
				b.Fatal(err)
			}
			w.Devices = append(w.Devices, seededDevice{ID: c.DeviceID, Building: bl.ID, Secret: secret})
		}
	}
	if _, err := d.Writer().ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = 1 WHERE sent_at IS NULL`,
		time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")); err != nil {
		b.Fatal(err)
	}
	var enabled int
	if err := d.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE desired_state = 'enabled'`).Scan(&enabled); err != nil {
		b.Fatal(err)
	}
	if enabled != want {
		b.Fatalf("seeded %d enabled devices, want %d", enabled, want)
	}
	w.Buildings = len(layout)
	w.SeedTaken = time.Since(start)
	return w
}

func signaturePNG(tb testing.TB) []byte {
	tb.Helper()
	buf, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(signatureDataURL(tb), "data:image/png;base64,"))
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}

// benchBackend is the database a benchmark's portal runs on.
type benchBackend string

const (
	onSQLite   benchBackend = "sqlite"
	onPostgres benchBackend = "postgres"
)

// benchBackends are the backends the benchmarks that compare them run on, in
// the same invocation (issue 15).
var benchBackends = []benchBackend{onSQLite, onPostgres}

// rebind writes query's ? placeholders as PostgreSQL's $1, $2, … when pg.
func rebind(pg bool, query string) string {
	if !pg {
		return query
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&sb, "$%d", n)
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// openPGReader opens the PostgreSQL database at url for the harness through
// database/sql, so that the harness's queries (with their placeholders
// rebound) read either backend.
func openPGReader(tb testing.TB, url string) *sql.DB {
	tb.Helper()
	r, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// migrateWorld copies the seeded data directory's database into a fresh
// PostgreSQL database with `portal migrate` and returns its URL; the
// directory keeps the keys the portals on PostgreSQL use.
func migrateWorld(b testing.TB, w *benchWorld) string {
	b.Helper()
	url := pgCluster.Database(b)
	start := time.Now()
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"migrate", "-data", w.DataDir, "-to", url}, func(string) string { return "" }, &out, &errb); err != nil {
		b.Fatalf("migrate: %v\n%s\n%s", err, out.String(), errb.String())
	}
	b.Logf("copied the seeded world to PostgreSQL in %s", time.Since(start).Round(time.Millisecond))
	return url
}

// openReader opens the data directory's database read-only for the harness,
// as the portal's own readers do (WAL lets them run beside its writer).
func openReader(tb testing.TB, dataDir string) *sql.DB {
	tb.Helper()
	r, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// awaitCount polls query (a COUNT) until it returns want.
func awaitCount(tb testing.TB, r *sql.DB, want int, query string, args ...any) {
	tb.Helper()
	awaitCountWithin(tb, r, benchWait, want, query, args...)
}

// awaitCountWithin is awaitCount with a deadline of its own.
func awaitCountWithin(tb testing.TB, r *sql.DB, wait time.Duration, want int, query string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	var n int
	for {
		if err := r.QueryRow(query, args...).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %d, want %d", query, n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const confirmedQuery = `SELECT COUNT(*) FROM devices WHERE desired_version > 0 AND reported_version = desired_version AND reported_state = desired_state`

// benchPortal is a seeded portal with its devices connected and every device's
// desired state confirmed, and a manager signed in.
type benchPortal struct {
	*Portal
	pg     bool // on PostgreSQL: reader is pgx's, queries are rebound
	world  *benchWorld
	fleet  fleet
	reader *sql.DB
	mgr    *Client
	hc     *http.Client // the manager's cookies, for clicks
	sse    *http.Client // the same cookies, no time-out, for streams
	csrf   string
}

func startBenchPortal(b *testing.B) *benchPortal {
	b.Helper()
	return startBenchPortalOn(b, onSQLite)
}

// startBenchPortalOn is startBenchPortal on backend: on PostgreSQL the
// seeded world is copied into a fresh database of the cluster (durable when
// benchmarks run) and the portal runs on it with the data directory's keys.
func startBenchPortalOn(b *testing.B, backend benchBackend) *benchPortal {
	b.Helper()
	w := seedWorld(b)
	bp := &benchPortal{world: w, pg: backend == onPostgres}
	if bp.pg {
		url := migrateWorld(b, w)
		bp.Portal = MustStartPortalEnv(b, w.DataDir, map[string]string{"DOORLEDGER_DATABASE_URL": url})
		bp.reader = openPGReader(b, url)
	} else {
		bp.Portal = MustStartPortal(b, w.DataDir)
		bp.reader = openReader(b, w.DataDir)
	}
	p := bp.Portal
	if p.MQTT == "" {
		b.Fatalf("no embedded broker URL in:\n%s", p.Stdout.String())
	}
	start := time.Now()
	bp.fleet = startFleet(b, p.MQTT, w.Devices)
	awaitCount(b, bp.reader, benchDevices, confirmedQuery)
	b.Logf("seeded %d consented devices in %s; their simulators connected and confirmed in %s",
		len(w.Devices), w.SeedTaken.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	bp.signIn(b)
	return bp
}

// signIn signs the world's manager in, with one client for clicks and one
// for streams.
func (bp *benchPortal) signIn(b testing.TB) {
	b.Helper()
	bp.mgr = NewClient(b, bp.URL)
	bp.mgr.MustLogin(bp.world.Manager, bp.world.Password)
	// Streams on connections of their own, as a browser holds its page's
	// EventSource on one connection and sends the button's POST on the page's
	// kept-alive other. On one shared pool the stream of each revoke took the
	// idle connection and every click dialled a new one (docs/benchmarks.md).
	bp.hc = &http.Client{Jar: bp.mgr.http.Jar, CheckRedirect: bp.mgr.http.CheckRedirect}
	bp.sse = &http.Client{Jar: bp.mgr.http.Jar, CheckRedirect: bp.mgr.http.CheckRedirect, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	bp.csrf = bp.mgr.CSRF("/buildings")
}

// post sends what an htmx button sends: a POST with the CSRF header.
func (bp *benchPortal) post(ctx context.Context, path string, htmx bool) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bp.URL+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-CSRF-Token", bp.csrf)
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	resp, err := bp.hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sseStream reads a server-sent-events stream as htmx's sse extension does.
type sseStream struct {
	body   io.ReadCloser
	r      *bufio.Reader
	cancel context.CancelFunc
}

func (bp *benchPortal) openStream(path string) (*sseStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	return openSSE(ctx, cancel, bp.sse, bp.URL+path)
}

// openSSE opens the stream at url with client; cancel ends ctx, and with it
// the stream, at Close.
func openSSE(ctx context.Context, cancel context.CancelFunc, client *http.Client, url string) (*sseStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return &sseStream{body: resp.Body, r: bufio.NewReader(resp.Body), cancel: cancel}, nil
}

// next returns the next event's data (its data lines joined).
func (s *sseStream) next() (string, error) {
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data != nil {
				return strings.Join(data, "\n"), nil
			}
			continue
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
		}
	}
}

func (s *sseStream) Close() {
	s.cancel()
	s.body.Close()
}

// percentiles returns the p50 and p99 of ds (nearest rank).
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return rank(0.50), rank(0.99)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

var profiles int

// startTimedProfile profiles the timed part when DOORLEDGER_BENCH_CPUPROFILE
// names a file (suffixed with the benchmark's name).
func startTimedProfile(b *testing.B) func() {
	path := os.Getenv("DOORLEDGER_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	profiles++
	name := strings.NewReplacer("/", "_", " ", "_").Replace(b.Name())
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", path, name, profiles))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("cpu profile (not with go test -cpuprofile): %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
