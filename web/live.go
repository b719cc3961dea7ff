package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// Hub wakes live pages when something they show may have changed: a device
// reported, a command was recorded. It carries no data and nothing depends on
// it for correctness — every stream also re-reads the database on a short tick,
// so a portal behind a load balancer (where the report may land on another
// instance) still converges, only a little later.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a wake-up after each Notify of one
// of keys, and a function to unsubscribe.
func (h *Hub) Subscribe(keys ...string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	for _, k := range keys {
		if h.subs[k] == nil {
			h.subs[k] = map[chan struct{}]struct{}{}
		}
		h.subs[k][ch] = struct{}{}
	}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		for _, k := range keys {
			delete(h.subs[k], ch)
			if len(h.subs[k]) == 0 {
				delete(h.subs, k)
			}
		}
		h.mu.Unlock()
	}
}

// Notify wakes every subscriber of key; it never blocks.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// DeviceKey names one device's page; DevicesKey wakes every page that shows
// many devices (lockdown and revoke-all progress).
func DeviceKey(id int64) string { return fmt.Sprintf("device:%d", id) }

// DevicesKey is notified whenever any device changes.
const DevicesKey = "devices"

// Stream limits: a stream re-reads at least every streamTick and ends after
// streamMax (the browser's EventSource reconnects by itself).
const (
	streamTick = time.Second
	streamMax  = 10 * time.Minute
)

// listStreamGap is the least time between two renders of a stream that shows
// many devices. Every report of any device wakes those streams, and each
// render re-reads all their devices: during a lockdown of 500 devices the
// lockdown page's stream rendered 30–70 times and was 43% of the CPU
// (docs/benchmarks.md, issue 4), slowing the reports it was showing. Wake-ups
// within the gap are folded into one render at its end.
const listStreamGap = 200 * time.Millisecond

// stream serves server-sent events: each time the rendered fragment changes it
// is sent as event name, until the client leaves or render says done.
func (s *Server) stream(c echo.Context, event string, keys []string, render func(ctx context.Context) (templ.Component, bool, error)) error {
	return s.streamEvery(c, event, keys, 0, render)
}

// streamEvery is stream with at least gap between two renders.
func (s *Server) streamEvery(c echo.Context, event string, keys []string, gap time.Duration, render func(ctx context.Context) (templ.Component, bool, error)) error {
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(c.Request().Context(), streamMax)
	defer cancel()
	wake, unsubscribe := s.hub.Subscribe(keys...)
	defer unsubscribe()
	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	var last string
	var rendered time.Time
	for {
		if wait := gap - time.Since(rendered); gap > 0 && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		select { // this render covers every wake-up so far
		case <-wake:
		default:
		}
		rendered = time.Now()
		comp, done, err := render(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("stream render", "route", c.Path(), "err", err)
			return nil
		}
		var buf bytes.Buffer
		if err := comp.Render(ctx, &buf); err != nil {
			return nil
		}
		if html := buf.String(); html != last {
			last = html
			fmt.Fprintf(w, "event: %s\n", event)
			for _, line := range strings.Split(html, "\n") {
				fmt.Fprintf(w, "data: %s\n", line)
			}
			fmt.Fprint(w, "\n")
			w.Flush()
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}
