//go:build slow

package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A slowloris client at one byte a second against the portal's own
// ReadHeaderTimeout (10 s, web.Timeouts' default): the server closes the
// connection before the headers ever end (TestSlowAndBrokenClients runs the
// same attack at scale with the time-outs shortened).
func TestSlowSlowlorisDefaultTimeout(t *testing.T) {
	p := MustStartPortal(t, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: portal\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sent := 0
	for ; sent < 120; sent++ {
		time.Sleep(time.Second)
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "a"); err != nil {
			t.Logf("closed by the server after %d header bytes at one a second (%v)", sent, time.Since(start).Round(time.Second))
			return
		}
	}
	t.Fatalf("the server still reads headers sent one byte a second after %d bytes", sent)
}
