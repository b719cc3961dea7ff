package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A second portal on a running portal's data directory is refused with a
// message naming the process that holds it; once that portal stops, the
// directory serves again.
func TestSecondPortalOnDataDirRefused(t *testing.T) {
	p := MustStartPortal(t, "")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"serve", "-addr", "127.0.0.1:0", "-mqtt-addr", "127.0.0.1:0", "-data", p.DataDir}, func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "in use by another portal (process "+strconv.Itoa(os.Getpid())+")") ||
		!strings.Contains(err.Error(), "PostgreSQL and an external MQTT broker") {
		t.Fatalf("second portal on %s: %v\n%s", p.DataDir, err, out.String())
	}
	if strings.Contains(out.String(), "listening") {
		t.Errorf("the second portal started listening:\n%s", out.String())
	}
	p.Stop(t)
	MustStartPortal(t, p.DataDir).Stop(t)
}
