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

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
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
	SeedTaken time.Duration
}

func benchDataDir(b *testing.B) string {
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

// seedDir fills a new data directory, before the portal starts, through the
// db services as the people would: a manager and an installer granted six
// buildings, one consent request per device, signed by the building's signer
// through its mailed link (the trigger-guarded path that enables the device),
// and a credential per device. The mail this queues is marked sent, so the
// portal's dispatcher does not log 3,000 messages while the benchmark runs.
func seedDir(b testing.TB, dir string) *benchWorld {
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
	for i, n := range benchBuildings {
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
	if enabled != benchDevices {
		b.Fatalf("seeded %d enabled devices, want %d", enabled, benchDevices)
	}
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
	deadline := time.Now().Add(benchWait)
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

// fleet is a set of connected simulated devices.
type fleet interface {
	Stop()
}

// startFleet connects one simulator per device to the broker at brokerURL,
// in this process or (DOORLEDGER_BENCH_SIMS=process) in a child process, and
// returns once every one is connected and subscribed.
func startFleet(b *testing.B, brokerURL string, devs []seededDevice) fleet {
	b.Helper()
	var f fleet
	if os.Getenv("DOORLEDGER_BENCH_SIMS") == "process" {
		f = startChildFleet(b, brokerURL, devs)
	} else {
		f = startLocalFleet(b, brokerURL, devs)
	}
	b.Cleanup(f.Stop)
	return f
}

// localFleet runs the simulators in this process.
type localFleet struct {
	sims []*devicectl.SimDevice
	once sync.Once
}

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func startLocalFleet(tb testing.TB, brokerURL string, devs []seededDevice) *localFleet {
	tb.Helper()
	f := &localFleet{sims: make([]*devicectl.SimDevice, len(devs))}
	errs := make(chan error, len(devs))
	sem := make(chan struct{}, connectBatch)
	var wg sync.WaitGroup
	for i, dev := range devs {
		cfg := devicectl.SimConfig{BrokerURL: brokerURL, DeviceID: dev.ID, Secret: dev.Secret, Logger: discardLog}
		sim, err := devicectl.NewSimDevice(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		f.sims[i] = sim
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Start's context is the device's lifetime; the wait has its own.
			if err := sim.Start(context.Background()); err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), benchWait)
			defer cancel()
			if err := sim.AwaitConnected(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		f.Stop()
		tb.Fatalf("connect simulators: %v", err)
	}
	return f
}

func (f *localFleet) Stop() {
	f.once.Do(func() {
		sem := make(chan struct{}, connectBatch)
		var wg sync.WaitGroup
		for _, s := range f.sims {
			if s == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s.Stop(ctx)
			}()
		}
		wg.Wait()
	})
}

// childFleet runs the simulators in a child process: the test binary again,
// running TestBenchSimFleet. Closing its stdin stops it.
type childFleet struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mem   memFigures // the child's memory once every simulator is connected
	once  sync.Once
}

func startChildFleet(tb testing.TB, brokerURL string, devs []seededDevice) *childFleet {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchSimFleet$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DOORLEDGER_BENCH_FLEET=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	f := &childFleet{cmd: cmd, stdin: stdin}
	var in bytes.Buffer
	fmt.Fprintln(&in, brokerURL)
	for _, d := range devs {
		fmt.Fprintf(&in, "%d %s\n", d.ID, d.Secret)
	}
	fmt.Fprintln(&in, "go")
	if _, err := stdin.Write(in.Bytes()); err != nil {
		f.Stop()
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "fleet mem "); ok {
			if _, err := fmt.Sscan(rest, &f.mem.HeapInuse, &f.mem.StackInuse, &f.mem.Sys, &f.mem.RSS, &f.mem.Goroutines); err != nil {
				f.Stop()
				tb.Fatalf("child fleet said %q: %v", line, err)
			}
			go io.Copy(io.Discard, stdout)
			return f
		}
		if rest, ok := strings.CutPrefix(line, "fleet error "); ok {
			f.Stop()
			tb.Fatalf("child fleet: %s", rest)
		}
	}
	f.Stop()
	tb.Fatalf("child fleet exited before it was ready: %v", sc.Err())
	return nil
}

func (f *childFleet) Stop() {
	f.once.Do(func() {
		f.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- f.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			f.cmd.Process.Kill()
			<-done
		}
	})
}

// TestBenchSimFleet is the benchmarks' simulator process, not a test: it reads
// the broker URL, then "id secret" lines up to "go", connects every device,
// prints its memory, and runs until stdin closes.
func TestBenchSimFleet(t *testing.T) {
	if os.Getenv("DOORLEDGER_BENCH_FLEET") != "1" {
		t.Skip("the benchmarks' simulator process (DOORLEDGER_BENCH_FLEET=1)")
	}
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		t.Fatal("no broker URL")
	}
	brokerURL := in.Text()
	var devs []seededDevice
	for in.Scan() && in.Text() != "go" {
		var d seededDevice
		if _, err := fmt.Sscan(in.Text(), &d.ID, &d.Secret); err != nil {
			fmt.Printf("fleet error bad line %q\n", in.Text())
			return
		}
		devs = append(devs, d)
	}
	f := startLocalFleet(t, brokerURL, devs)
	defer f.Stop()
	m := readMem()
	fmt.Printf("fleet mem %d %d %d %d %d\n", m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines)
	for in.Scan() {
	}
}

// memFigures is a process's memory after a full collection.
type memFigures struct {
	HeapInuse, StackInuse, Sys, RSS uint64 // bytes
	Goroutines                      int
}

// readMem collects garbage, returns freed memory to the OS, and reads the
// Go runtime's figures and the resident set size from /proc.
func readMem() memFigures {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memFigures{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
	if buf, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(buf), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.RSS = kb << 10
			}
		}
	}
	return m
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// benchPortal is a seeded portal with its devices connected and every device's
// desired state confirmed, and a manager signed in.
type benchPortal struct {
	*Portal
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
	w := seedWorld(b)
	p := MustStartPortal(b, w.DataDir)
	if p.MQTT == "" {
		b.Fatalf("no embedded broker URL in:\n%s", p.Stdout.String())
	}
	bp := &benchPortal{Portal: p, world: w, reader: openReader(b, w.DataDir)}
	start := time.Now()
	bp.fleet = startFleet(b, p.MQTT, w.Devices)
	awaitCount(b, bp.reader, benchDevices, confirmedQuery)
	b.Logf("seeded %d consented devices in %s; their simulators connected and confirmed in %s",
		len(w.Devices), w.SeedTaken.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	bp.mgr = NewClient(b, p.URL)
	bp.mgr.MustLogin(w.Manager, w.Password)
	// Streams on connections of their own, as a browser holds its page's
	// EventSource on one connection and sends the button's POST on the page's
	// kept-alive other. On one shared pool the stream of each revoke took the
	// idle connection and every click dialled a new one (docs/benchmarks.md).
	bp.hc = &http.Client{Jar: bp.mgr.http.Jar, CheckRedirect: bp.mgr.http.CheckRedirect}
	bp.sse = &http.Client{Jar: bp.mgr.http.Jar, CheckRedirect: bp.mgr.http.CheckRedirect, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	bp.csrf = bp.mgr.CSRF("/buildings")
	return bp
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bp.URL+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := bp.sse.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %d", path, resp.StatusCode)
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

var (
	desiredVersionRE = regexp.MustCompile(`version (\d+)`)
	progressRE       = regexp.MustCompile(`data-confirmed="(\d+)" data-total="(\d+)"`)
)

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
func (bp *benchPortal) reenable(b *testing.B, ids []int64) {
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
	if err = bp.reader.QueryRow(`SELECT requested_at, sent_at, confirmed_at FROM commands WHERE device_id = ? AND version = ?`, device, version).Scan(&r, &s, &c); err != nil {
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
func BenchmarkRevoke(b *testing.B) {
	bp := startBenchPortal(b)
	// Every 5th device: spread over the six buildings.
	var ids []int64
	n := benchRevokes
	if v, err := strconv.Atoi(os.Getenv("DOORLEDGER_BENCH_REVOKES")); err == nil && v > 0 && v <= benchDevices {
		n = v
	}
	for i := 0; i < len(bp.world.Devices) && len(ids) < n; i += len(bp.world.Devices) / n {
		ids = append(ids, bp.world.Devices[i].ID)
	}
	floor := startFloor(b)
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
// simulators connected to it over TCP, and a SQLite database for the
// durable round trip.
type floorRig struct {
	br       *devicectl.Broker
	f        *floorReports
	desired  *sql.Stmt // UPDATE floor SET desired = ? WHERE id = ?
	ids      []int64
	versions map[int64]int64
	n        int
}

func startFloor(b *testing.B) *floorRig {
	b.Helper()
	r := &floorRig{f: &floorReports{reports: map[int64]chan floorReport{}}, versions: map[int64]int64{}}
	devs := make([]seededDevice, benchDevices)
	for i := range devs {
		devs[i] = seededDevice{ID: int64(i + 1), Secret: "floor"}
		r.ids = append(r.ids, devs[i].ID)
		r.f.reports[devs[i].ID] = make(chan floorReport, 4)
	}
	// The portal's pragmas (db.dsn): a commit costs what the portal's do.
	path := filepath.Join(benchDataDir(b), "floor.db")
	fdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fdb.Close() })
	fdb.SetMaxOpenConns(1)
	if _, err := fdb.Exec(`CREATE TABLE floor (id INTEGER PRIMARY KEY, desired INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO floor (id) SELECT i FROM n`, benchDevices); err != nil {
		b.Fatal(err)
	}
	r.f.db = fdb
	if r.desired, err = fdb.Prepare(`UPDATE floor SET desired = ? WHERE id = ?`); err != nil {
		b.Fatal(err)
	}
	if r.f.stmt, err = fdb.Prepare(`UPDATE floor SET reported = ? WHERE id = ?`); err != nil {
		b.Fatal(err)
	}
	if r.br, err = devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: r.f, Events: r.f, Logger: discardLog}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.br.Close() })
	startFleet(b, "mqtt://"+r.br.Addr(), devs) // stopped at cleanup, before the broker closes
	return r
}

// roundTrip times one Push of a new desired state to the next device until
// that device's ReportState of it reaches the sink; durable: from before a
// commit of the desired state until the report's commit returned. It also
// returns the time the two commits took (0 when not durable).
func (r *floorRig) roundTrip(b *testing.B, durable bool) (total, commits time.Duration) {
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

// BenchmarkLockdown500 times a building lockdown of 500 connected devices
// (1,000 connected in all), from the manager's POST until every device has
// confirmed it is disabled: "page" as the manager sees it, on the lockdown
// page's stream (its n-of-N progress reaching 500 of 500); "db" with nobody
// watching, read afterwards from the database (the lockdown transaction's
// clock to the last confirming report's clock).
func BenchmarkLockdown500(b *testing.B) {
	bp := startBenchPortal(b)
	var ids []int64
	for _, d := range bp.world.Devices {
		if d.Building == bp.world.Lockdown {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) != benchLockdownN {
		b.Fatalf("%d devices in the lockdown building, want %d", len(ids), benchLockdownN)
	}
	locked := false
	for _, watched := range []bool{true, false} {
		name := "db"
		if watched {
			name = "page"
		}
		b.Run(name, func(b *testing.B) {
			var shown, dbAll, post, firstConf, perReport []time.Duration
			var events []int
			for b.Loop() {
				if locked {
					b.StopTimer()
					bp.reenable(b, ids)
					b.StartTimer()
				}
				var st *sseStream
				if watched {
					var err error
					if st, err = bp.openStream(fmt.Sprintf("/buildings/%d/lockdown/events", bp.world.Lockdown)); err != nil {
						b.Fatal(err)
					}
					if _, err := st.next(); err != nil {
						b.Fatal(err)
					}
				}
				stopProfile := startTimedProfile(b)
				click := time.Now()
				status, err := bp.post(context.Background(), fmt.Sprintf("/buildings/%d/lockdown", bp.world.Lockdown), false)
				post = append(post, time.Since(click))
				if err != nil || status != http.StatusSeeOther {
					b.Fatalf("lockdown: %d %v", status, err)
				}
				locked = true
				if watched {
					n := 0
					for {
						ev, err := st.next()
						if err != nil {
							b.Fatalf("lockdown stream: %v", err)
						}
						n++
						if m := progressRE.FindStringSubmatch(ev); m != nil && m[1] == m[2] && m[2] == strconv.Itoa(benchLockdownN) {
							break
						}
					}
					shown = append(shown, time.Since(click))
					events = append(events, n)
					st.Close()
				} else {
					// Nobody watches: look rarely, so looking costs nothing; the
					// time is read from the database below.
					for {
						time.Sleep(100 * time.Millisecond)
						var n int
						if err := bp.reader.QueryRow(confirmedQuery+` AND desired_state = 'disabled' AND building_id = ?`, bp.world.Lockdown).Scan(&n); err != nil {
							b.Fatal(err)
						}
						if n == benchLockdownN {
							break
						}
						if time.Since(click) > benchWait {
							b.Fatalf("lockdown: %d of %d confirmed after %s", n, benchLockdownN, benchWait)
						}
					}
				}
				stopProfile()

				var from, first, last string
				if err := bp.reader.QueryRow(`SELECT MIN(requested_at), MIN(confirmed_at), MAX(confirmed_at) FROM commands
					WHERE building_id = ? AND reason = 'building lockdown'
					AND requested_at = (SELECT MAX(requested_at) FROM commands WHERE building_id = ? AND reason = 'building lockdown')`,
					bp.world.Lockdown, bp.world.Lockdown).Scan(&from, &first, &last); err != nil {
					b.Fatal(err)
				}
				t0, err1 := time.Parse(time.RFC3339Nano, from)
				t1, err2 := time.Parse(time.RFC3339Nano, first)
				t2, err3 := time.Parse(time.RFC3339Nano, last)
				if err := errors.Join(err1, err2, err3); err != nil {
					b.Fatal(err)
				}
				dbAll = append(dbAll, t2.Sub(t0))
				firstConf = append(firstConf, t1.Sub(t0))
				perReport = append(perReport, t2.Sub(t1)/(benchLockdownN-1))
			}
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			if watched {
				b.ReportMetric(slices.Max(shown).Seconds(), "s-page-all-confirmed")
				b.Logf("page shows %d of %d confirmed after %v, in %v stream events", benchLockdownN, benchLockdownN, shown, events)
			}
			b.ReportMetric(slices.Max(dbAll).Seconds(), "s-db-all-confirmed")
			b.Logf("POST answered after %v; first confirmation's clock %v and last's %v after the lockdown's; between them one confirmation every %v",
				post, firstConf, dbAll, perReport)
		})
	}
}

// BenchmarkPortalMemory1000 measures the portal's memory with 1,000 devices
// connected. In the other benchmarks the portal runs in the test process
// through run(), beside the simulators and whatever earlier benchmarks left
// behind; here it runs alone in a child process (the test binary again,
// TestBenchPortalProcess, calling run() through MustStartPortal), the
// simulators in another, and each process reports its own figures. The
// portal's process is then asked to run the 1,000 simulators itself, to show
// what an in-process figure would have counted.
func BenchmarkPortalMemory1000(b *testing.B) {
	w := seedWorld(b)
	reader := openReader(b, w.DataDir)
	for b.Loop() {
		pc := startPortalChild(b, w.DataDir)
		idle := pc.mem(b)

		fl := startChildFleet(b, pc.mqtt, w.Devices)
		awaitCount(b, reader, benchDevices, confirmedQuery)
		time.Sleep(time.Second) // let the connects' last writes and notifications settle
		portal := pc.mem(b)
		fl.Stop()

		pc.send(b, "fleet", w.Devices)
		time.Sleep(time.Second)
		both := pc.mem(b)
		pc.Stop()

		b.ReportMetric(0, "ns/op")
		b.ReportMetric(mb(portal.HeapInuse), "portal-heap-MB")
		b.ReportMetric(mb(portal.StackInuse), "portal-stack-MB")
		b.ReportMetric(mb(portal.RSS), "portal-rss-MB")
		b.ReportMetric(mb(fl.mem.RSS), "sims-proc-rss-MB")
		b.ReportMetric(mb(both.RSS), "portal+sims-rss-MB")
		line := func(what string, m memFigures) {
			b.Logf("%-38s heap in use %5.1f MB, stacks %5.1f MB, Go sys %6.1f MB, RSS %6.1f MB, %5d goroutines",
				what, mb(m.HeapInuse), mb(m.StackInuse), mb(m.Sys), mb(m.RSS), m.Goroutines)
		}
		line("portal process, idle (0 devices):", idle)
		line("portal process, 1,000 devices:", portal)
		line("simulators' process (1,000):", fl.mem)
		line("portal process running the 1,000 sims:", both)
		b.Logf("per connected device, portal: heap %.1f KB, stacks %.1f KB, RSS %.1f KB",
			float64(portal.HeapInuse-min(idle.HeapInuse, portal.HeapInuse))/benchDevices/1024,
			float64(portal.StackInuse-min(idle.StackInuse, portal.StackInuse))/benchDevices/1024,
			float64(portal.RSS-min(idle.RSS, portal.RSS))/benchDevices/1024)
	}
}

// portalChild is a portal running alone in a child process.
type portalChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	mqtt  string
	once  sync.Once
}

func startPortalChild(b *testing.B, dataDir string) *portalChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchPortalProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DOORLEDGER_BENCH_PORTAL="+dataDir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pc := &portalChild{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	b.Cleanup(pc.Stop)
	pc.mqtt = pc.await(b, "portal mqtt ")
	return pc
}

// await reads the child's output up to a line with prefix and returns its rest.
func (pc *portalChild) await(b *testing.B, prefix string) string {
	b.Helper()
	for pc.out.Scan() {
		if rest, ok := strings.CutPrefix(pc.out.Text(), prefix); ok {
			return rest
		}
	}
	b.Fatalf("portal process ended before %q: %v", prefix, pc.out.Err())
	return ""
}

// send gives the child a command, with device lines for "fleet", and waits
// until it is done.
func (pc *portalChild) send(b *testing.B, command string, devs []seededDevice) {
	b.Helper()
	var in bytes.Buffer
	fmt.Fprintln(&in, command)
	if devs != nil {
		for _, d := range devs {
			fmt.Fprintf(&in, "%d %s\n", d.ID, d.Secret)
		}
		fmt.Fprintln(&in, "go")
	}
	if _, err := pc.stdin.Write(in.Bytes()); err != nil {
		b.Fatal(err)
	}
	pc.await(b, "portal done "+command)
}

func (pc *portalChild) mem(b *testing.B) memFigures {
	b.Helper()
	if _, err := fmt.Fprintln(pc.stdin, "mem"); err != nil {
		b.Fatal(err)
	}
	var m memFigures
	if _, err := fmt.Sscan(pc.await(b, "portal mem "), &m.HeapInuse, &m.StackInuse, &m.Sys, &m.RSS, &m.Goroutines); err != nil {
		b.Fatal(err)
	}
	return m
}

func (pc *portalChild) Stop() {
	pc.once.Do(func() {
		pc.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- pc.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			pc.cmd.Process.Kill()
			<-done
		}
	})
}

// TestBenchPortalProcess is the memory benchmark's portal process, not a test:
// it starts the portal on the seeded data directory, prints its broker URL,
// and answers "mem" (its memory) and "fleet" (device lines up to "go": run
// those simulators in this process) until stdin closes.
func TestBenchPortalProcess(t *testing.T) {
	dir := os.Getenv("DOORLEDGER_BENCH_PORTAL")
	if dir == "" {
		t.Skip("the memory benchmark's portal process (DOORLEDGER_BENCH_PORTAL=dir)")
	}
	p := MustStartPortal(t, dir)
	fmt.Printf("portal mqtt %s\n", p.MQTT)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "mem":
			m := readMem()
			fmt.Printf("portal mem %d %d %d %d %d\n", m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines)
		case "fleet":
			var devs []seededDevice
			for in.Scan() && in.Text() != "go" {
				var d seededDevice
				if _, err := fmt.Sscan(in.Text(), &d.ID, &d.Secret); err != nil {
					t.Fatalf("bad device line %q", in.Text())
				}
				devs = append(devs, d)
			}
			f := startLocalFleet(t, p.MQTT, devs)
			t.Cleanup(f.Stop)
			fmt.Println("portal done fleet")
		}
	}
}
