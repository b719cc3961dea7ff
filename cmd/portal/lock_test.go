package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second portal on a running portal's data directory, with the embedded
// broker, is refused with a message naming the process that holds it; once
// that portal stops, the directory serves again.
func TestSecondPortalOnDataDirRefused(t *testing.T) {
	p := MustStartPortal(t, "")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"serve", "-addr", "127.0.0.1:0", "-mqtt-addr", "127.0.0.1:0", "-data", p.DataDir}, func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "in use by another portal (process "+strconv.Itoa(os.Getpid())+")") ||
		!strings.Contains(err.Error(), "embedded MQTT broker runs alone") {
		t.Fatalf("second portal on %s: %v\n%s", p.DataDir, err, out.String())
	}
	if strings.Contains(out.String(), "listening") {
		t.Errorf("the second portal started listening:\n%s", out.String())
	}
	p.Stop(t)
	MustStartPortal(t, p.DataDir).Stop(t)
}

// Portals on an external broker share a data directory; none runs beside a
// portal with the embedded broker, either way round.
func TestExternalBrokerPortalsShareDataDir(t *testing.T) {
	noBroker := noBrokerURL(t)
	serve := func(dir string, args ...string) error {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0", "-mqtt-addr", "127.0.0.1:0", "-data", dir}, args...), func(string) string { return "" }, &out, &errb)
	}

	embedded := MustStartPortal(t, "")
	if err := serve(embedded.DataDir, "-mqtt-url", noBroker); err == nil || !strings.Contains(err.Error(), "in use by another portal") {
		t.Errorf("an external-broker portal beside an embedded one: %v", err)
	}
	embedded.Stop(t)

	a := MustStartPortal(t, embedded.DataDir, "-mqtt-url", noBroker)
	b := MustStartPortal(t, embedded.DataDir, "-mqtt-url", noBroker)
	if err := serve(embedded.DataDir); err == nil || !strings.Contains(err.Error(), "in use by another portal (another process)") {
		t.Errorf("an embedded-broker portal beside external-broker ones: %v", err)
	}
	a.Stop(t)
	b.Stop(t)
}

// noBrokerURL is an MQTT URL where nothing answers: portals started on it run
// (they connect in the background) with no device traffic, for tests of
// what several instances on one database share.
func noBrokerURL(t *testing.T) string { return "mqtt://" + freeLoopbackAddr(t) }

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
