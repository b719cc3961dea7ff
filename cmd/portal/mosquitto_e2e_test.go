package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
)

// The portal on an external Mosquitto: `portal mosquitto-config` writes the
// broker's password and ACL files from the database, a device authenticates
// there with the credential the portal issued, and a revoke reaches it and is
// confirmed through the broker.
func TestEndToEndExternalMosquitto(t *testing.T) {
	mosq := testtool.Require(t, "mosquitto")
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, secret := consentedDevice(t, p)
	p.Stop(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"DOORLEDGER_MQTT_PASSWORD": "portal-broker-pass"}
	getenv := func(k string) string { return env[k] }
	var out, errb bytes.Buffer
	confDir := filepath.Join(t.TempDir(), "mosquitto")
	if err := run(context.Background(), []string{"mosquitto-config", "-data", dir, "-out", confDir, "-listen", addr, "-run-as", "root"}, getenv, &out, &errb); err != nil {
		t.Fatalf("mosquitto-config: %v\n%s", err, errb.String())
	}
	cmd := exec.Command(mosq, "-c", filepath.Join(confDir, "mosquitto.conf"))
	var mlog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &mlog, &mlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not start: %v\n%s", err, mlog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	p = MustStartPortalEnv(t, dir, env, "-mqtt-url", "mqtt://"+addr)
	mgr.base = p.URL
	p.MQTT = "mqtt://" + addr
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)
}
