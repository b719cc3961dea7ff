package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
)

// The portal on an external Mosquitto: `portal mosquitto-config` writes the
// broker's password and ACL files from the database, a device authenticates
// there with the credential the portal issued, and a revoke reaches it and is
// confirmed through the broker.
// extMosquitto is a Mosquitto configured by `portal mosquitto-config` from a
// data directory, running until the test ends.
type extMosquitto struct {
	t         *testing.T
	addr      string
	dataDir   string
	confDir   string
	env       map[string]string
	instances int
	cmd       *exec.Cmd
	log       syncBuffer
}

// startMosquitto writes the broker's files from the (stopped) portal's data
// directory and starts Mosquitto on a free port.
func startMosquitto(t *testing.T, dataDir string) *extMosquitto {
	t.Helper()
	return startMosquittoInstances(t, dataDir, 1)
}

// startMosquittoInstances is startMosquitto with accounts for n portal
// instances (mosquitto-config -instances n).
func startMosquittoInstances(t *testing.T, dataDir string, n int) *extMosquitto {
	t.Helper()
	return startMosquittoEnv(t, dataDir, n, nil)
}

// startMosquittoEnv is startMosquittoInstances with environment variables
// for mosquitto-config and the portals (e.g. DOORLEDGER_DATABASE_URL).
func startMosquittoEnv(t *testing.T, dataDir string, n int, env map[string]string) *extMosquitto {
	t.Helper()
	testtool.Require(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &extMosquitto{t: t, addr: ln.Addr().String(), dataDir: dataDir, confDir: filepath.Join(t.TempDir(), "mosquitto"),
		env: map[string]string{"DOORLEDGER_MQTT_PASSWORD": "portal-broker-pass"}, instances: n}
	ln.Close()
	for k, v := range env {
		m.env[k] = v
	}
	m.writeConfig()
	m.start(t)
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	return m
}

// start starts Mosquitto with the files in confDir on addr (again, after stop)
// and waits until it accepts connections.
func (m *extMosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(testtool.Require(t, "mosquitto"), "-c", filepath.Join(m.confDir, "mosquitto.conf"))
	m.cmd.Stdout, m.cmd.Stderr = &m.log, &m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", m.addr); err == nil {
			c.Close()
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not start: %v\n%s", err, m.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeConfig runs `portal mosquitto-config` for the data directory.
func (m *extMosquitto) writeConfig() {
	m.t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return m.env[k] }
	if err := run(context.Background(), []string{"mosquitto-config", "-data", m.dataDir, "-out", m.confDir, "-listen", m.addr, "-run-as", "root", "-instances", strconv.Itoa(max(m.instances, 1))}, getenv, &out, &errb); err != nil {
		m.t.Fatalf("mosquitto-config: %v\n%s", err, errb.String())
	}
}

// startPortal starts the portal on the data directory with this broker.
func (m *extMosquitto) startPortal() *Portal {
	m.t.Helper()
	p := MustStartPortalEnv(m.t, m.dataDir, m.env, "-mqtt-url", "mqtt://"+m.addr)
	p.MQTT = "mqtt://" + m.addr
	return p
}

func TestEndToEndExternalMosquitto(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, secret := consentedDevice(t, p)
	p.Stop(t)

	p = startMosquitto(t, dir).startPortal()
	mgr.base = p.URL
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)
}
