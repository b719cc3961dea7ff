package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// A client that opens a stream and stops reading it does not hold the
// stream: once the TCP buffers are full, the write that cannot be taken
// within the StreamWrite timeout ends the stream, and its handler returns.
// Before the write deadline the handler blocked on the full buffer for as
// long as the connection lived (past streamMax, and past a newer stream
// replacing it).
func TestStreamEndsWhenClientStopsReading(t *testing.T) {
	s := &Server{hub: NewHub(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{Timeouts: Timeouts{StreamWrite: 200 * time.Millisecond}}}
	var renders atomic.Int64
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ended)
		c := echo.New().NewContext(r, w)
		_ = s.stream(c, nil, "x", []string{DevicesKey}, func(context.Context) (templ.Component, bool, error) {
			n := renders.Add(1)
			return templ.Raw(fmt.Sprintf("%d %s", n, strings.Repeat("x", 64<<10))), false, nil
		})
	}))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing more; the server keeps having news.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-ended:
			t.Logf("stream ended after %d renders (%d KiB written or attempted)", renders.Load(), renders.Load()*64)
			return
		case <-time.After(5 * time.Millisecond):
		}
		s.hub.Notify(DevicesKey)
		if time.Now().After(deadline) {
			t.Fatalf("the stream of a client that stopped reading still runs after %d renders: its writer is blocked on a full TCP buffer", renders.Load())
		}
	}
}
