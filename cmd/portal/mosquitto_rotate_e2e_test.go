package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// On an external Mosquitto the portal cannot end a session itself. The
// documented step after rotating a secret — regenerate the files with
// `portal mosquitto-config` and send Mosquitto SIGHUP — ends it: Mosquitto
// checks every connected client against the reloaded password file and
// disconnects those whose credential no longer holds.
func TestEndToEndExternalMosquittoRotation(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, oldSecret := consentedDevice(t, p)
	p.Stop(t)
	mosq := startMosquitto(t, dir)
	p = mosq.startPortal()
	mgr.base = p.URL

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
	mosq.writeConfig()
	if err := mosq.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cut:
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Mosquitto kept the old session after the reload\n%s", mosq.log.String())
	}
	if err := publishEvent(old, id, "after-reload"); err == nil {
		t.Fatal("the old session published after the reload")
	}
	if _, err := dialDevice(t, p, id, oldSecret, nil); err == nil {
		t.Fatal("the old secret connects after the reload")
	}
	fresh, err := dialDevice(t, p, id, newSecret, nil)
	if err != nil {
		t.Fatalf("connect with the new secret: %v\n%s", err, mosq.log.String())
	}
	if err := publishEvent(fresh, id, "new-secret"); err != nil {
		t.Fatal(err)
	}
}
