package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger/web"
)

// Slow and broken clients against the real portal (docs/reliability.md): 50
// slowloris connections (request headers one byte at a time, never ending),
// 500 idle keep-alive connections and 30 live streams opened by one user who
// never reads them. While they are open, the portal's goroutines and heap
// stay within a bound linear in the connections, and another user's page and
// revoke answer; then the server ends what it must: ReadHeaderTimeout closes
// every slowloris connection, IdleTimeout every idle one, and the goroutines
// come back to where they were. The time-outs are shortened for the test; the
// attack itself runs on one goroutine so runtime.NumGoroutine counts the
// portal's (it runs in this process).
func TestSlowAndBrokenClients(t *testing.T) {
	const (
		slowloris = 50
		idle      = 500
		stalled   = 30
	)
	timeouts := web.Timeouts{ReadHeader: 2 * time.Second, Idle: 2 * time.Second, StreamWrite: time.Second}
	p := mustStartPortalHook(t, "", func(a *app) { a.cfg.webTimeouts = timeouts }, nil)
	mgr, device, _, _ := consentedDevice(t, p)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	addr := strings.TrimPrefix(p.URL, "http://")
	u, _ := url.Parse(p.URL)
	var cookies []string
	for _, c := range admin.http.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}

	goroutines0, heap0 := portalFootprint()
	t.Logf("before: %d goroutines, heap in use %.1f MiB", goroutines0, mib(heap0))

	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// 500 idle keep-alive connections: one request each, answered, then nothing.
	idleConns := make([]net.Conn, idle)
	for i := range idleConns {
		conn := dial()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("idle connection %d: %d, close=%v", i, resp.StatusCode, resp.Close)
		}
		idleConns[i] = conn
	}
	// 30 live streams of the admin's attention list, never read, with a
	// small receive buffer: the user's oldest past 20 are closed.
	for range stalled {
		conn := dial()
		conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(conn, "GET /attention/events HTTP/1.1\r\nHost: portal\r\nAccept: text/event-stream\r\nCookie: %s\r\n\r\n", strings.Join(cookies, "; "))
	}
	// Slowloris: headers one byte at a time from one goroutine, for as long
	// as the server keeps the connection.
	var open atomic.Int64
	slowConns := make([]net.Conn, slowloris)
	for i := range slowConns {
		slowConns[i] = dial()
		io.WriteString(slowConns[i], "GET / HTTP/1.1\r\nHost: portal\r\nX-Slow: ")
	}
	open.Store(slowloris)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		closed := make([]bool, slowloris)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for open.Load() > 0 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for i, conn := range slowConns {
				if closed[i] {
					continue
				}
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := io.WriteString(conn, "a"); err != nil {
					closed[i] = true
					open.Add(-1)
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// While all of it is open: the footprint is bounded, other users served.
	goroutines1, heap1 := portalFootprint()
	conns := int64(idle + stalled + slowloris)
	t.Logf("under attack (%d connections, %d slowloris still open): %d goroutines, heap in use %.1f MiB (+%.1f KiB per connection)",
		conns, open.Load(), goroutines1, mib(heap1), float64(int64(heap1)-int64(heap0))/1024/float64(conns))
	if max := goroutines0 + 2*int(conns) + 100; goroutines1 > max {
		t.Errorf("%d goroutines under attack, bound %d", goroutines1, max)
	}
	if max := heap0 + uint64(conns)*64<<10 + 32<<20; heap1 > max {
		t.Errorf("heap in use %.1f MiB under attack, bound %.1f MiB", mib(heap1), mib(max))
	}
	if status, body := mgr.Get(device); status != http.StatusOK {
		t.Fatalf("the manager's device page under attack: %d\n%s", status, body)
	}
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("a revoke under attack: %d\n%s", status, body)
	}
	awaitPage(t, mgr, device, "revoked by a manager")

	// The server ends what it must: every slowloris connection by
	// ReadHeaderTimeout, every idle one by IdleTimeout.
	deadline := time.Now().Add(60 * time.Second)
	for open.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slowloris connections still open", open.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var stillIdle atomic.Int64
	stillIdle.Store(idle)
	for _, conn := range idleConns {
		go func() {
			conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := conn.Read(make([]byte, 1)); err == io.EOF {
				stillIdle.Add(-1)
			}
		}()
	}
	for stillIdle.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle keep-alive connections still open", stillIdle.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Back to where it was, but for the 20 streams the admin may keep.
	for {
		g, heap := portalFootprint()
		if g <= goroutines0+2*20+20 {
			t.Logf("after: %d goroutines, heap in use %.1f MiB", g, mib(heap))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the attack ended, %d before", g, goroutines0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portalFootprint is the process's goroutines and heap in use after a GC:
// the portal's, as it runs in this test process.
func portalFootprint() (int, uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
