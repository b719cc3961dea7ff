//go:build slow

package main

import (
	"bufio"
	"context"
	"database/sql"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// Two portal instances on one database and one Mosquitto, sharing the
// devices' traffic through a shared subscription group (issue 15). Instance
// B, a process of its own, is killed with SIGKILL: its share of what the
// device sends next is queued in B's broker session, where Mosquitto keeps
// it for B. Instance A, once B's session lease lapsed, drains that session:
// every event the broker acknowledged to the device is stored once, and
// `portal audit verify` passes.
func TestSlowSharedBrokerTakeover(t *testing.T) {
	dir := t.TempDir()
	p0 := MustStartPortal(t, dir)
	_, _, id, secret := consentedDevice(t, p0)
	p0.Stop(t)

	m := startMosquittoInstances(t, dir, 2)
	common := []string{"-mqtt-url", "mqtt://" + m.addr, "-mqtt-share-group", "doorledger",
		"-mqtt-peers", "doorledger-portal,doorledger-portal-2", "-lease-ttl", "900ms", "-log-level", "warn"}

	bin := buildPortal(t, t.TempDir())
	b := exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0", "-data", dir, "-instance", "b", "-mqtt-user", "doorledger-portal-2"}, common...)...)
	b.Env = append(crashEnv(), "DOORLEDGER_MQTT_PASSWORD="+m.env["DOORLEDGER_MQTT_PASSWORD"])
	out, err := b.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var bErr syncBuffer
	b.Stderr = &bErr
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Process.Kill(); b.Wait() })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(60 * time.Second):
		t.Fatalf("instance B did not start:\n%s", bErr.String())
	}

	a := MustStartPortalEnv(t, dir, m.env, append([]string{"-instance", "a", "-mqtt-user", "doorledger-portal"}, common...)...)
	a.MQTT = "mqtt://" + m.addr
	lastPortal = a
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(m.log.String(), " as doorledger-portal-2 ") || !strings.Contains(m.log.String(), " as doorledger-portal "); {
		if time.Now().After(deadline) {
			t.Fatalf("both instances did not connect to Mosquitto:\n%s", m.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sim := startSim(t, a, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := func() (n, distinct int) {
		t.Helper()
		if err := db.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM unlock_events WHERE device_id = ?`, id).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		return n, distinct
	}
	send := func(k int) {
		t.Helper()
		for range k {
			if _, err := sim.Unlock(devicectl.EventMessage{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := sim.AwaitDelivered(ctx) // acknowledged by the broker: each in a message of its own
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	awaitStored := func(want int) time.Duration {
		t.Helper()
		start := time.Now()
		for deadline := start.Add(60 * time.Second); ; {
			n, distinct := stored()
			if n != distinct {
				t.Fatalf("%d events stored, %d distinct: some twice", n, distinct)
			}
			if n == want {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d acknowledged events stored\nA:\n%s\nB:\n%s", n, want, a.Stderr.String(), bErr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send(20)
	awaitStored(20)

	// B dies: no release, no goodbye to the broker.
	if err := b.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	killed := time.Now()
	send(30)
	took := awaitStored(50)
	t.Logf("instance B killed; all 50 acknowledged events stored once %v after the last was sent (%v after the kill)", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(m.log.String(), "as doorledger-portal-2") {
		t.Error("no one took over B's client id")
	}

	a.Stop(t)
	var vout, verr strings.Builder
	if err := run(context.Background(), []string{"audit", "verify", "-data", dir}, func(string) string { return "" }, &vout, &verr); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, vout.String())
	}
}
