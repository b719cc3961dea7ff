package web

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// Open streams re-read and render streamRenders at a time: the others wait
// for a slot, so that 200 open pages cannot take every read connection and
// starve the writer (docs/reliability.md, Load). Each stream's first render
// here waits for the test; once every stream is either rendering or waiting
// for a slot, no more than streamRenders may be rendering.
func TestStreamRendersShareSlots(t *testing.T) {
	const streams = 6 // more than streamRenders
	s := &Server{hub: NewHub(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var inside, most atomic.Int64
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := echo.New().NewContext(r, w)
		first := true
		_ = s.stream(c, nil, "x", []string{DevicesKey}, func(ctx context.Context) (templ.Component, bool, error) {
			n := inside.Add(1)
			defer inside.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if first {
				first = false
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			return templ.Raw("rendered"), false, nil
		})
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	got := make(chan struct{}, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err == nil {
				got <- struct{}{}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second) // a failure bound only
	for inside.Load()+s.renders.waiting.Load() < streams {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d streams rendering, %d waiting, of %d", inside.Load(), s.renders.waiting.Load(), streams)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := inside.Load(); n > streamRenders {
		t.Errorf("%d streams rendering at once, want at most %d", n, streamRenders)
	}
	close(gate)
	for range streams {
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatal("a stream waiting for a slot never rendered")
		}
	}
	if m := most.Load(); m > streamRenders {
		t.Errorf("at most %d streams rendered at once, want at most %d", m, streamRenders)
	}
	cancel()
	wg.Wait()
}
