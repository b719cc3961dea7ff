//go:build slow

package main

// The crash test of unlock ingest: the portal runs as a separate process,
// simulated devices publish unlock events without pause, and the portal is killed with
// SIGKILL again and again and started again on the same data directory and
// ports. An event a device saw acknowledged leaves its outbox and is never
// sent again, so it must already be committed: after every kill a copy of the
// database as the dead process left it must hold every event acknowledged so
// far, and at the end the database must hold every event exactly once and
// pass PRAGMA integrity_check (and the tamper-evident log `portal audit
// verify`). Run with:
//
//	go test -tags slow -run Slow -v -count=1 ./cmd/portal/

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger/devicectl"
)

const (
	crashDevices   = 16                     // simulated devices publishing at once
	crashKills     = 10                     // SIGKILLs of the portal
	crashMinUp     = 500 * time.Millisecond // a ready portal lives this long at least
	crashMaxUp     = 2 * time.Second        // and at most, before its kill
	crashEarlyKill = 150 * time.Millisecond // some kills hit the start-up instead, within this
	crashMaxOutbox = 300                    // a device stops unlocking while this many wait
	crashAdminPass = "crash test admin password"
	crashEventPre  = "crash-"
)

// crashEarly says whether kill k hits the portal while it starts (opening the
// database after the previous crash, re-publishing desired state) rather than
// while it runs.
func crashEarly(k int) bool { return k%4 == 2 }

func TestSlowCrashIngest(t *testing.T) {
	began := time.Now()
	tmp := t.TempDir()
	cp := newCrashPortal(t, tmp)
	cp.start(t)
	cp.awaitReady(t)
	devs := crashSetup(t, "http://"+cp.httpAddr, crashDevices)
	t.Logf("portal pid %d ready on http://%s, mqtt://%s; %d devices with credentials (setup %s)",
		cp.cmd.Process.Pid, cp.httpAddr, cp.mqttAddr, len(devs), time.Since(began).Round(time.Millisecond))

	// The devices: each keeps its outbox in a state directory, as a real one
	// keeps it in flash, and gets the desired state its consent set.
	simLog := &countingHandler{counts: map[string]int{}}
	stateDir := filepath.Join(tmp, "devices")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sims := make([]*crashSim, len(devs))
	for i, d := range devs {
		sim, err := devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: "mqtt://" + cp.mqttAddr, DeviceID: d.id, Secret: d.secret,
			StateDir: stateDir, Logger: slog.New(simLog)})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sim.Stop(ctx)
		})
		sims[i] = &crashSim{id: d.id, sim: sim}
	}
	for _, s := range sims {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := s.sim.AwaitVersion(ctx, 1)
		cancel()
		if err != nil {
			t.Fatalf("device %d never applied its desired state: %v", s.id, err)
		}
	}

	// Producers: each device unlocks every few milliseconds with ids we choose.
	prodCtx, stopProducers := context.WithCancel(context.Background())
	var producers sync.WaitGroup
	var unlockErrs atomic.Int64
	for _, s := range sims {
		producers.Add(1)
		go func() {
			defer producers.Done()
			s.produce(prodCtx, &unlockErrs)
		}()
	}
	defer func() { stopProducers(); producers.Wait() }()

	// The kills. snaps[k][i] is how many of device i's events it had seen
	// acknowledged once instance k was dead; firstSeen is the instance whose
	// database first held an event (len(snaps) for the last, clean one).
	snaps := make([][]int, 0, crashKills)
	firstSeen := map[string]int{}
	var lived, restarts []time.Duration
	var inFlight int // committed but not acknowledged when the portal died, summed over kills
	var duringStart int
	ready := true
	for k := range crashKills {
		if crashEarly(k) {
			time.Sleep(randDuration(0, crashEarlyKill))
		} else {
			if !ready {
				cp.awaitReady(t)
			}
			time.Sleep(randDuration(crashMinUp, crashMaxUp))
		}
		up := time.Since(cp.startedAt)
		wasReady := cp.ready
		cp.kill(t)
		lived = append(lived, up)

		// Nothing can acknowledge while no portal runs: PUBACKs still in the
		// devices' sockets came from the dead process, so from commits it made.
		time.Sleep(randDuration(50*time.Millisecond, 300*time.Millisecond))
		snap := make([]int, len(sims))
		for i, s := range sims {
			snap[i] = s.acked()
		}
		snaps = append(snaps, snap)

		present, integrity := crashCopyCheck(t, cp.dataDir, filepath.Join(tmp, fmt.Sprintf("kill-%d", k)))
		if integrity != "ok" {
			t.Errorf("kill %d: integrity_check of the database the killed portal left: %s", k+1, integrity)
		}
		for key := range present {
			if _, ok := firstSeen[key]; !ok {
				firstSeen[key] = k
			}
		}
		acked, missing, notAcked := 0, []string(nil), 0
		for i, s := range sims {
			ids := s.published()
			acked += snap[i]
			for j, eid := range ids {
				key := crashKey(s.id, eid)
				switch _, ok := present[key]; {
				case j < snap[i] && !ok:
					missing = append(missing, key)
				case j >= snap[i] && ok:
					notAcked++
				}
			}
		}
		inFlight += notAcked
		phase := "running"
		if !wasReady {
			phase = "starting"
			duringStart++
		}
		t.Logf("kill %d: SIGKILL after %s (%s); acknowledged so far %d, in the database %d, committed but not acknowledged %d, integrity %s",
			k+1, up.Round(time.Millisecond), phase, acked, len(present), notAcked, integrity)
		if len(missing) > 0 {
			t.Errorf("kill %d: %d acknowledged events are not in the database the killed portal left (LOST), e.g. %v",
				k+1, len(missing), missing[:min(len(missing), 10)])
		}

		restart := time.Now()
		cp.start(t)
		ready = false
		if !crashEarly(k + 1) {
			cp.awaitReady(t)
			ready = true
			restarts = append(restarts, time.Since(restart))
		}
	}
	if !ready {
		cp.awaitReady(t)
	}

	// Let the last instance take load, then drain: every event must be
	// acknowledged in the end.
	time.Sleep(time.Second)
	stopProducers()
	producers.Wait()
	drain, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	for _, s := range sims {
		if err := s.sim.AwaitDelivered(drain); err != nil {
			t.Errorf("device %d: %d events never acknowledged: %v", s.id, s.sim.Undelivered(), err)
		}
	}
	cancel()
	for _, s := range sims {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.sim.Stop(ctx)
		cancel()
	}
	last := len(snaps) // the instance that runs now
	final := make([]int, len(sims))
	for i, s := range sims {
		final[i] = s.acked()
	}
	cp.stop(t)

	// The final database: each event exactly once, counted on the table
	// itself (NOT INDEXED: a broken unique index must not hide a duplicate).
	r, err := sql.Open("sqlite", "file:"+filepath.Join(cp.dataDir, "doorledger.db")+"?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	integrity := integrityCheck(t, r)
	if integrity != "ok" {
		t.Errorf("final integrity_check: %s", integrity)
	}
	counts := map[string]int{}
	rows, err := r.Query(`SELECT device_id, event_id, COUNT(*) FROM unlock_events NOT INDEXED WHERE event_id LIKE ?1 GROUP BY device_id, event_id`, crashEventPre+"%")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var dev sql.NullInt64
		var eid string
		var n int
		if err := rows.Scan(&dev, &eid, &n); err != nil {
			t.Fatal(err)
		}
		counts[crashKey(dev.Int64, eid)] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var fk int
	if err := r.QueryRow(`SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 0 {
		t.Errorf("foreign_key_check: %d rows violate a foreign key", fk)
	}

	published, acked := 0, 0
	var lost, dups []string
	redelivered := 0 // committed by an instance that died, acknowledged by a later one: sent again, ignored
	ackedBeforeLastKill := 0
	for i, s := range sims {
		ids := s.published()
		published += len(ids)
		acked += final[i]
		ackedBeforeLastKill += snaps[len(snaps)-1][i]
		for j, eid := range ids {
			key := crashKey(s.id, eid)
			n := counts[key]
			delete(counts, key)
			switch {
			case n == 0:
				lost = append(lost, key)
				continue
			case n > 1:
				dups = append(dups, fmt.Sprintf("%s ×%d", key, n))
			}
			ackEpoch := last
			for k, snap := range snaps {
				if j < snap[i] {
					ackEpoch = k
					break
				}
			}
			commitEpoch, ok := firstSeen[key]
			if !ok {
				commitEpoch = last
			}
			if commitEpoch < ackEpoch {
				redelivered++
			}
		}
	}
	strays := slices.Sorted(maps.Keys(counts))

	notCommitted, refused := cp.stderrCount(t, "device message not committed"), cp.stderrCount(t, "device message refused")
	t.Logf("devices %d, kills %d (%d during start-up), portal lived %s, restart to ready %s",
		len(sims), crashKills, duringStart, durations(lived), durations(restarts))
	t.Logf("events published %d, acknowledged %d (%d before the last kill), in the database %d distinct",
		published, acked, ackedBeforeLastKill, published-len(lost))
	t.Logf("committed but not acknowledged at a kill %d (summed over kills); redelivered after a crash and ignored as duplicates %d",
		inFlight, redelivered)
	t.Logf("device publish retries %d, messages refused and dropped by devices %d, unlock save errors %d; portal: not committed %d, refused %d",
		simLog.count("publish failed; will retry"), simLog.count("message refused; dropped"), unlockErrs.Load(), notCommitted, refused)
	t.Logf("integrity_check %s; took %s", integrity, time.Since(began).Round(time.Millisecond))
	if acked != published {
		t.Errorf("%d events published, %d acknowledged", published, acked)
	}
	if len(lost) > 0 {
		t.Errorf("%d events LOST (acknowledged, not in the database), e.g. %v; devices dropped %d refused messages:\n%s",
			len(lost), lost[:min(len(lost), 10)], simLog.count("message refused; dropped"), simLog.samples())
	}
	if len(dups) > 0 {
		t.Errorf("%d events stored more than once, e.g. %v", len(dups), dups[:min(len(dups), 10)])
	}
	if len(strays) > 0 {
		t.Errorf("%d events in the database that no device published, e.g. %v", len(strays), strays[:min(len(strays), 10)])
	}

	// The tamper-evident log covers every unlock event: the crashes must not
	// have left it out of step with the table.
	verify := exec.Command(cp.bin, "audit", "verify", "-data", cp.dataDir)
	verify.Env = cp.env
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Errorf("portal audit verify after the crashes: %v\n%s", err, out)
	} else {
		t.Logf("portal audit verify: %s", strings.TrimSpace(lastLine(string(out))))
	}
	if d := time.Since(began); d > 3*time.Minute {
		t.Errorf("the crash test took %s; it should stay under about 2 minutes", d.Round(time.Second))
	}
}

// crashSim is a simulated device and the ids of the events it was asked to
// send, in order. The device's outbox is first in, first out and only its
// sender removes from it (the acknowledged head), so while no Unlock runs,
// the first len(ids) - Undelivered() events are exactly the acknowledged ones.
type crashSim struct {
	id  int64
	sim *devicectl.SimDevice

	mu  sync.Mutex // held across Unlock and the append to ids
	ids []string
}

func (s *crashSim) produce(ctx context.Context, errs *atomic.Int64) {
	for ctx.Err() == nil {
		if s.sim.Undelivered() >= crashMaxOutbox {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		eid := fmt.Sprintf("%s%d-%06d", crashEventPre, s.id, len(s.ids))
		_, err := s.sim.Unlock(devicectl.EventMessage{EventID: eid, ActorRef: "courier-" + eid[len(eid)-3:]})
		s.ids = append(s.ids, eid) // in the outbox even if saving the state file failed
		s.mu.Unlock()
		if err != nil {
			errs.Add(1)
		}
		time.Sleep(randDuration(time.Millisecond, 8*time.Millisecond))
	}
}

// acked returns how many of the device's events have been acknowledged.
func (s *crashSim) acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids) - s.sim.Undelivered()
}

func (s *crashSim) published() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

func crashKey(device int64, eventID string) string { return fmt.Sprintf("%d/%s", device, eventID) }

// crashPortal is the portal binary run as a child process, restarted on the
// same data directory and ports.
type crashPortal struct {
	bin, dataDir, logDir string
	httpAddr, mqttAddr   string
	env                  []string

	cmd       *exec.Cmd
	stdout    *syncBuffer
	exited    chan error
	startedAt time.Time
	ready     bool
	runs      int
}

// newCrashPortal builds the portal into tmp and readies a child process of it
// (not started) on a data directory under tmp and free loopback ports. At
// cleanup it is killed if still running, after its logs are printed if t failed.
func newCrashPortal(t *testing.T, tmp string) *crashPortal {
	t.Helper()
	cp := &crashPortal{
		bin:     buildPortal(t, tmp),
		dataDir: filepath.Join(tmp, "data"),
		logDir:  filepath.Join(tmp, "logs"),
	}
	if err := os.MkdirAll(cp.logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cp.httpAddr, cp.mqttAddr = freeLoopbackAddr(t), freeLoopbackAddr(t)
	cp.env = crashEnv()
	t.Cleanup(cp.cleanup)
	t.Cleanup(func() {
		if t.Failed() {
			cp.dumpLogs(t)
		}
	})
	return cp
}

// buildPortal compiles ./cmd/portal once into dir.
func buildPortal(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	bin := filepath.Join(dir, "portal")
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, "./cmd/portal")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/portal: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// crashEnv is the test's environment without any DOORLEDGER_ setting, plus
// the portal's test settings.
func crashEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOORLEDGER_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOORLEDGER_BCRYPT_COST=4", "DOORLEDGER_ADMIN_PASSWORD="+crashAdminPass)
}

func (cp *crashPortal) start(t *testing.T) {
	t.Helper()
	cp.runs++
	stderr, err := os.Create(filepath.Join(cp.logDir, fmt.Sprintf("portal-%02d.stderr", cp.runs)))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close() // the child has its own copy
	cp.stdout = &syncBuffer{}
	cmd := exec.Command(cp.bin, "serve", "-addr", cp.httpAddr, "-mqtt-addr", cp.mqttAddr, "-data", cp.dataDir, "-log-level", "warn")
	cmd.Env = cp.env
	cmd.Stdout, cmd.Stderr = cp.stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start portal: %v", err)
	}
	cp.cmd, cp.startedAt, cp.ready = cmd, time.Now(), false
	exited := make(chan error, 1)
	cp.exited = exited
	go func() { exited <- cmd.Wait() }()
}

// awaitReady waits for the listening line and a healthy /healthz.
func (cp *crashPortal) awaitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-cp.exited:
			cp.exited <- err
			t.Fatalf("portal (run %d) exited before it was ready: %v", cp.runs, err)
		default:
		}
		if strings.Contains(cp.stdout.String(), "Doorledger is listening on http://") {
			resp, err := client.Get("http://" + cp.httpAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					cp.ready = true
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("portal (run %d) not ready after 20 s; stdout:\n%s", cp.runs, cp.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (cp *crashPortal) kill(t *testing.T) {
	t.Helper()
	if err := cp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill portal: %v", err)
	}
	select {
	case err := <-cp.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("portal (run %d) ended with %v before the kill", cp.runs, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("killed portal did not exit")
	}
	cp.cmd = nil
}

// stop sends SIGTERM and expects a clean exit.
func (cp *crashPortal) stop(t *testing.T) {
	t.Helper()
	if err := cp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop portal: %v", err)
	}
	select {
	case err := <-cp.exited:
		if err != nil {
			t.Errorf("portal did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("portal did not exit within 20 s of SIGTERM")
		cp.cmd.Process.Kill()
		<-cp.exited
	}
	cp.cmd = nil
}

// cleanup kills a portal a failed test left running.
func (cp *crashPortal) cleanup() {
	if cp.cmd != nil {
		cp.cmd.Process.Kill()
		<-cp.exited
		cp.cmd = nil
	}
}

// stderrCount counts the lines holding s in every run's stderr.
func (cp *crashPortal) stderrCount(t *testing.T, s string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cp.logDir, "portal-*.stderr"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), s)
	}
	return n
}

// dumpLogs prints the tail of each run's stderr.
func (cp *crashPortal) dumpLogs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(cp.logDir, "portal-*.stderr"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) == 1 && lines[0] == "" {
			continue
		}
		t.Logf("%s (last lines of %d):\n%s", filepath.Base(f), len(lines), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

// crashCopyCheck copies the database files as the killed process left them
// (the -shm index is rebuilt from the WAL), opens the copy so that SQLite
// recovers it as a restart would, and returns its integrity_check result and
// the test's events it holds.
func crashCopyCheck(t *testing.T, dataDir, dir string) (map[string]struct{}, string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"doorledger.db", "doorledger.db-wal"} {
		if err := copyFile(filepath.Join(dataDir, name), filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	c, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	integrity := integrityCheck(t, c)
	present := map[string]struct{}{}
	rows, err := c.Query(`SELECT device_id, event_id FROM unlock_events WHERE event_id LIKE ?1`, crashEventPre+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev sql.NullInt64
		var eid string
		if err := rows.Scan(&dev, &eid); err != nil {
			t.Fatal(err)
		}
		present[crashKey(dev.Int64, eid)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return present, integrity
}

// integrityCheck returns PRAGMA integrity_check's rows, "ok" when sound.
func integrityCheck(t *testing.T, c *sql.DB) string {
	t.Helper()
	rows, err := c.Query(`PRAGMA integrity_check`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}

type crashDevice struct {
	id     int64
	secret string
}

// crashSetup walks the consent story over HTTP once per device, in one
// building: a roster, a manager and an installer; per device a request,
// the owner's signature through the mailed link and a credential.
func crashSetup(t *testing.T, base string, n int) []crashDevice {
	t.Helper()
	admin := NewClient(t, base)
	admin.MustLogin(testAdminEmail, crashAdminPass)
	status, building, body := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Crash Court"}, "address": {"9 Crash St"}, "timezone": {"America/Chicago"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(building, "/buildings/") {
		t.Fatalf("create building: %d %q\n%s", status, building, body)
	}
	admin.Post(building, building+"/signers", url.Values{"signer_name": {"Ana Owner"}, "signer_title": {"Owner"}, "signer_email": {"ana@example.com"}})
	for _, u := range []url.Values{
		{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}},
		{"name": {"Ivan Installer"}, "email": {"ivan@example.com"}, "role": {"installer"}, "company": {"FastKey"}, "password": {"correct horse battery"}},
	} {
		if status, _, body := admin.Post("/users/new", "/users", u); status != http.StatusSeeOther {
			t.Fatalf("create user %s: %d\n%s", u.Get("email"), status, body)
		}
		_, body := admin.Get("/users")
		m := regexp.MustCompile(`href="/users/(\d+)">` + regexp.QuoteMeta(u.Get("name"))).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("user %s not listed", u.Get("name"))
		}
		admin.Post(building, building+"/grants", url.Values{"user_id": {m[1]}})
	}
	inst := NewClient(t, base)
	inst.MustLogin("ivan@example.com", "correct horse battery")
	_, body = inst.Get(building + "/consents/new")
	sm := regexp.MustCompile(`<option value="(\d+)"[^>]*>Ana Owner`).FindStringSubmatch(body)
	if sm == nil {
		t.Fatalf("no signer on the consent form:\n%s", body)
	}
	sig := signatureDataURL(t)
	termsRE := regexp.MustCompile(`name="terms_sha256" value="([0-9a-f]{64})"`)
	for i := range n {
		serial := fmt.Sprintf("SN-CRASH-%02d", i+1)
		status, _, body := inst.PostMultipart(building+"/consents/new", building+"/consents", url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {serial},
			"location": {fmt.Sprintf("panel %d", i+1)}, "opens": {"lobby door"}, "signer_id": {sm[1]}, "mode": {"link"}}, nil)
		if status != http.StatusSeeOther {
			t.Fatalf("consent request %s: %d\n%s", serial, status, body)
		}
		sign := outboxLink(t, admin, "/sign/")
		signer := NewClient(t, base)
		_, body = signer.Get(sign)
		terms := termsRE.FindStringSubmatch(body)
		if terms == nil || !strings.Contains(body, serial) {
			t.Fatalf("signing page %s is not for %s:\n%s", sign, serial, body)
		}
		if status, _, body := signer.Post(sign, sign, url.Values{"terms_sha256": {terms[1]}, "typed_name": {"Ana Owner"}, "agree": {"1"}, "signature": {sig}}); status != http.StatusOK {
			t.Fatalf("sign %s: %d\n%s", serial, status, body)
		}
	}
	mgr := NewClient(t, base)
	mgr.MustLogin("mia@example.com", "correct horse battery")
	_, body = mgr.Get(building)
	var paths []string
	for _, m := range regexp.MustCompile(`href="(/devices/\d+)"`).FindAllStringSubmatch(body, -1) {
		if !slices.Contains(paths, m[1]) {
			paths = append(paths, m[1])
		}
	}
	if len(paths) != n {
		t.Fatalf("building page lists %d devices, want %d:\n%s", len(paths), n, body)
	}
	// Burst detection off: with it on, every granted event of a building in a
	// burst costs a COUNT over the burst window (db/sqlite/unlock_ingest.go countGranted),
	// which at this test's rate (thousands of events within the window) slows
	// ingest to a few hundred events a second and leaves the kills nothing in
	// flight to catch. Every other check of the ingest path stays on.
	settings := building + "/unlock-settings"
	_, body = mgr.Get(settings)
	form := formValues(body)
	form.Set("burst_count", "0")
	if status, _, body := mgr.Post(settings, settings, form); status != http.StatusSeeOther {
		t.Fatalf("unlock settings %v: %d\n%s", form, status, body)
	}
	devs := make([]crashDevice, 0, n)
	for _, p := range paths {
		secret := mgr.MustIssueSecret(p)
		var id int64
		fmt.Sscanf(strings.TrimPrefix(p, "/devices/"), "%d", &id)
		devs = append(devs, crashDevice{id: id, secret: secret})
	}
	return devs
}

// formValues reads the current values of a page's form fields: inputs
// (checkboxes only when checked) and textareas.
func formValues(body string) url.Values {
	v := url.Values{}
	nameRE, valueRE := regexp.MustCompile(`\bname="([^"]+)"`), regexp.MustCompile(`\bvalue="([^"]*)"`)
	for _, tag := range regexp.MustCompile(`<input\b[^>]*>`).FindAllString(body, -1) {
		name := nameRE.FindStringSubmatch(tag)
		if name == nil || name[1] == "_csrf" || (strings.Contains(tag, `type="checkbox"`) && !strings.Contains(tag, " checked")) {
			continue
		}
		value := ""
		if m := valueRE.FindStringSubmatch(tag); m != nil {
			value = html.UnescapeString(m[1])
		}
		v.Set(name[1], value)
	}
	for _, m := range regexp.MustCompile(`(?s)<textarea\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</textarea>`).FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// countingHandler counts the devices' warnings and errors by message and
// keeps the first few of them.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
	first  []string
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Message]++
	if r.Level >= slog.LevelError && len(h.first) < 10 {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.first = append(h.first, b.String())
	}
	return nil
}

func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[msg]
}

func (h *countingHandler) samples() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.first, "\n")
}

func randDuration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
}

// durations summarises a list as "min–max (n)".
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s–%s (%d)", slices.Min(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond), len(ds))
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			last = sc.Text()
		}
	}
	return last
}
