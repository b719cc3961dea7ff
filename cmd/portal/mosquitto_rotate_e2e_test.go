package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger/internal/testtool"
)

// On an external Mosquitto the portal cannot end a session itself. The
// documented step after rotating a secret — regenerate the files with
// `portal mosquitto-config` and send Mosquitto SIGHUP — ends it: Mosquitto
// checks every connected client against the reloaded password file and
// disconnects those whose credential no longer holds.
func TestEndToEndExternalMosquittoRotation(t *testing.T) {
	mosq := testtool.Require(t, "mosquitto")
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, oldSecret := consentedDevice(t, p)
	p.Stop(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"DOORLEDGER_MQTT_PASSWORD": "portal-broker-pass"}
	getenv := func(k string) string { return env[k] }
	confDir := filepath.Join(t.TempDir(), "mosquitto")
	writeConfig := func() {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"mosquitto-config", "-data", dir, "-out", confDir, "-listen", addr, "-run-as", "root"}, getenv, &out, &errb); err != nil {
			t.Fatalf("mosquitto-config: %v\n%s", err, errb.String())
		}
	}
	writeConfig()
	cmd := exec.Command(mosq, "-c", filepath.Join(confDir, "mosquitto.conf"))
	var mlog syncBuffer
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

	cut := make(chan *paho.Disconnect, 1)
	old, err := dialDevice(t, p, id, oldSecret, func(d *paho.Disconnect) { cut <- d })
	if err != nil {
		t.Fatalf("connect with the old secret: %v", err)
	}
	if err := publishEvent(old, id, "before-rotation"); err != nil {
		t.Fatal(err)
	}
	newSecret := rotateCredential(t, mgr, device)

	// Until Mosquitto reloads, the old session lives on: the portal cannot end it.
	if err := publishEvent(old, id, "before-reload"); err != nil {
		t.Fatalf("the old session before the reload: %v", err)
	}
	writeConfig()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cut:
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Mosquitto kept the old session after the reload\n%s", mlog.String())
	}
	if err := publishEvent(old, id, "after-reload"); err == nil {
		t.Fatal("the old session published after the reload")
	}
	if _, err := dialDevice(t, p, id, oldSecret, nil); err == nil {
		t.Fatal("the old secret connects after the reload")
	}
	fresh, err := dialDevice(t, p, id, newSecret, nil)
	if err != nil {
		t.Fatalf("connect with the new secret: %v\n%s", err, mlog.String())
	}
	if err := publishEvent(fresh, id, "new-secret"); err != nil {
		t.Fatal(err)
	}
}
