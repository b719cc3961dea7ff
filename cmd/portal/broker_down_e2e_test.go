package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// The external broker down (issue 19): Mosquitto is stopped while the portal
// and a device run, a revoke is made meanwhile and the device records door
// openings. Past the command time-out (1 s here, standing for minutes) the
// device page says the revoke waits for the broker, not that the device did
// not confirm, and /readyz answers 503 naming the broker. Mosquitto started
// again on the same port: the revoke is published and confirmed, /readyz
// answers 200, and every opening the device recorded arrives.
func TestEndToEndExternalBrokerDown(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, secret := consentedDevice(t, p)
	p.Stop(t)

	const timeout = time.Second
	m := startMosquitto(t, dir)
	p = MustStartPortalEnv(t, dir, m.env, "-mqtt-url", "mqtt://"+m.addr, "-command-timeout", timeout.String())
	p.MQTT = "mqtt://" + m.addr
	lastPortal = p
	mgr.base = p.URL
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	awaitReady(t, p, http.StatusOK, "ready")
	if status, body := get(t, p.URL+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the broker up: %d %s", status, body)
	}

	// Mosquitto stops (SIGTERM, as `systemctl stop` does).
	stopped := time.Now()
	m.stop(t)
	awaitReady(t, p, http.StatusServiceUnavailable, "MQTT broker")
	t.Logf("/readyz 503 %v after the stop", time.Since(stopped).Round(time.Millisecond))
	if status, body := get(t, p.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz with the broker down: %d %s, want 200: the portal is alive", status, body)
	}
	const openings = 5
	for i := 1; i <= openings; i++ {
		if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("broker-down-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	revoked := time.Now()
	// Past several time-outs the page still blames the broker, not the device.
	for time.Since(revoked) < 3*timeout {
		_, body := mgr.Get(device)
		if !strings.Contains(body, "Revoke waiting for the broker") || strings.Contains(body, "not confirmed: the device") {
			t.Fatalf("device page with the broker down %v after the revoke:\n%s", time.Since(revoked), outcome(body))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The devices list and the building page say so too, not "not confirmed".
	_, home := mgr.Get(device)
	building := regexp.MustCompile(`href="(/buildings/\d+)"`).FindStringSubmatch(home)
	if building == nil {
		t.Fatalf("device page links no building:\n%s", home)
	}
	for _, page := range []string{"/devices", building[1]} {
		if _, body := mgr.Get(page); !strings.Contains(body, `data-status="waiting_broker"`) || strings.Contains(body, `data-status="not_confirmed"`) {
			t.Errorf("%s with the broker down, past the time-out: want the revoke waiting for the broker\n%s", page, body)
		}
	}
	if n := sim.Undelivered(); n != openings {
		t.Errorf("device holds %d undelivered openings, want %d", n, openings)
	}

	// Mosquitto starts again on the same port.
	down := time.Since(stopped)
	m.start(t)
	started := time.Now()
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	t.Logf("broker down %v; revoke applied by the device %v after the restart", down.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	awaitPage(t, mgr, device, `data-status="confirmed"`)
	awaitPage(t, mgr, device, "Revoked — confirmed by the device")
	t.Logf("device page says confirmed %v after the restart", time.Since(started).Round(time.Millisecond))
	awaitReady(t, p, http.StatusOK, "ready")
	t.Logf("/readyz 200 %v after the restart", time.Since(started).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sim.AwaitDelivered(ctx); err != nil {
		t.Fatalf("device openings not delivered: %v (%d left)", err, sim.Undelivered())
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE actor_ref LIKE 'broker-down-%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == openings {
			t.Logf("%d of %d openings recorded while the broker was down arrived, %v after the restart", n, openings, time.Since(started).Round(time.Millisecond))
			break
		}
		if n > openings || time.Now().After(deadline) {
			t.Fatalf("%d openings recorded while the broker was down, want %d", n, openings)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops Mosquitto gracefully and waits until it has exited.
func (m *extMosquitto) stop(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.cmd.Wait()
}

// awaitReady polls /readyz until it answers status with want in its body.
func awaitReady(t *testing.T, p *Portal, status int, want string) {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, body = get(t, p.URL+"/readyz"); got == status && strings.Contains(body, want) {
			return
		}
	}
	t.Fatalf("/readyz: %d %q, want %d with %q", got, body, status, want)
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// outcome is the device page's outcome paragraph, for failure messages.
func outcome(body string) string {
	if i := strings.Index(body, `id="device-outcome"`); i >= 0 {
		return body[i:min(len(body), i+400)]
	}
	return body
}
