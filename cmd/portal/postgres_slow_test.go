//go:build slow

package main

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/jackc/pgx/v5"
)

// Issue 15 end to end: PostgreSQL, Mosquitto and two portal instances
// sharing both (one shared-subscription group) and one data directory (the
// keys). A consent is signed through instance A; a revoke clicked on B
// shows confirmed on the device page A serves; A, a process of its own, is
// killed with SIGKILL while a building lockdown waits for the device, and
// B finishes it; every unlock event the broker acknowledged is stored
// once; `portal audit verify` passes on the database.
func TestSlowPostgresTwoInstances(t *testing.T) {
	dbURL := pgCluster.Database(t)
	dir := t.TempDir()
	m := startMosquittoEnv(t, dir, 2, map[string]string{"DOORLEDGER_DATABASE_URL": dbURL})
	common := []string{"-mqtt-url", "mqtt://" + m.addr, "-mqtt-share-group", "doorledger",
		"-mqtt-peers", "doorledger-portal,doorledger-portal-2", "-lease-ttl", "900ms", "-command-timeout", "2s"}

	// A first, in a process of its own: it creates the administrator with
	// crashEnv's password.
	bin := buildPortal(t, t.TempDir())
	a, aURL, aErr := startPortalProcess(t, bin, append(crashEnv(), "DOORLEDGER_DATABASE_URL="+dbURL,
		"DOORLEDGER_MQTT_PASSWORD="+m.env["DOORLEDGER_MQTT_PASSWORD"]),
		append([]string{"serve", "-addr", "127.0.0.1:0", "-data", dir, "-instance", "a", "-mqtt-user", "doorledger-portal", "-log-level", "warn"}, common...)...)
	b := MustStartPortalEnv(t, dir, m.env, append([]string{"-instance", "b", "-mqtt-user", "doorledger-portal-2"}, common...)...)
	b.MQTT = "mqtt://" + m.addr
	lastPortal = b
	defer func() {
		if t.Failed() {
			t.Logf("instance A:\n%s\ninstance B:\n%s\nMosquitto:\n%s", aErr.String(), b.Stderr.String(), m.log.String())
		}
	}()

	// The consent story, through A; Mosquitto reloads its files with the
	// device's credential.
	mgr, device, id, secret := consentedDevice(t, &Portal{URL: aURL, AdminPass: crashAdminPass})
	m.writeConfig()
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, b, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)

	// A's page of the device, open while the revoke is clicked on B.
	onA := mustOpenStream(t, mgr, aURL+device+"/events")
	onA.await(t, 1)
	mgr.base = b.URL
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke through B: %d\n%s", status, body)
	}
	clicked := time.Now()
	applied := make(chan time.Duration, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sim.AwaitVersion(ctx, 2)
		applied <- time.Since(clicked)
	}()
	onA.await(t, 2)
	shown := time.Since(clicked)
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	t.Logf("revoke clicked on B: the device applied it %v and A's page showed it confirmed %v after B answered",
		(<-applied).Round(time.Millisecond), shown.Round(time.Millisecond))
	onA.Close()

	// Unlock events, each acknowledged by the broker.
	send := func(k int) {
		t.Helper()
		for range k {
			if _, err := sim.Unlock(devicectl.EventMessage{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := sim.AwaitDelivered(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	send(10)

	// A lockdown through A while the device is offline; A dies before the
	// device hears of it.
	mgr.base = aURL
	if status, _, body := mgr.Post(device, device+"/enable", nil); status != http.StatusSeeOther {
		t.Fatalf("enable through A: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 3, doorledger.StateEnabled)
	_, page := mgr.Get(device)
	building := regexp.MustCompile(`href="(/buildings/\d+)"`).FindStringSubmatch(page)
	if building == nil {
		t.Fatalf("no building link on the device page:\n%s", page)
	}
	ctx := context.Background()
	if err := sim.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	lockdown := building[1] + "/lockdown"
	if status, _, body := mgr.Post(lockdown, lockdown, url.Values{"reason": {"end-to-end lockdown"}}); status != http.StatusSeeOther {
		t.Fatalf("lockdown through A: %d\n%s", status, body)
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	killed := time.Now()
	if err := sim.Online(); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, sim, 4, doorledger.StateDisabled)
	mgr.base = b.URL
	onB := mustOpenStream(t, mgr, b.URL+device+"/events")
	onB.await(t, 4)
	onB.Close()
	t.Logf("A killed mid-lockdown: B showed the device confirmed disabled %v later", time.Since(killed).Round(time.Millisecond))
	send(10)

	// Every acknowledged event stored once.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(60 * time.Second); ; {
		var n, distinct int
		if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id) FROM unlock_events WHERE device_id = $1`, id).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != distinct {
			t.Fatalf("%d events stored, %d distinct: some twice", n, distinct)
		}
		if n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 acknowledged events stored", n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	b.Stop(t)
	var vout, verr syncBuffer
	if err := run(ctx, []string{"audit", "verify", "-data", dir, "-database-url", dbURL}, func(string) string { return "" }, &vout, &verr); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, vout.String(), verr.String())
	}
	t.Logf("audit verify:\n%s", vout.String())
}

// startPortalProcess starts the portal binary with env and args, waits
// until it listens, and returns the process, its URL and its stderr; it is
// killed at cleanup if still running.
func startPortalProcess(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	listening := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (http://\S+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
	}()
	select {
	case u := <-listening:
		return cmd, u, stderr
	case <-time.After(60 * time.Second):
		t.Fatalf("portal %v did not start:\n%s", args, stderr.String())
		return nil, "", nil
	}
}

// pageStream is a device page's live stream, as the manager's browser reads it.
type pageStream struct{ *sseStream }

// mustOpenStream opens the stream at u with c's cookies.
func mustOpenStream(t *testing.T, c *Client, u string) pageStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	st, err := openSSE(ctx, cancel, &http.Client{Jar: c.http.Jar}, u)
	if err != nil {
		t.Fatal(err)
	}
	return pageStream{st}
}

// await reads the stream until it shows the device's desired version
// confirmed.
func (s pageStream) await(t *testing.T, version int64) {
	t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("stream ended before version %d showed confirmed: %v", version, err)
		}
		if v, ok := desiredOf(ev); ok && v == version {
			return
		}
	}
}
