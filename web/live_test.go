package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/labstack/echo/v4"
)

// A list stream renders at most once per gap, however often it is woken.
func TestStreamEveryFoldsWakeUps(t *testing.T) {
	s := &Server{hub: NewHub(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/devices/events", nil)
	c := echo.New().NewContext(req, httptest.NewRecorder())
	var renders atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- s.streamEvery(c, nil, "progress", []string{DevicesKey}, time.Hour, func(context.Context) (templ.Component, bool, error) {
			renders.Add(1)
			return templ.Raw("x"), false, nil
		})
	}()
	for renders.Load() == 0 { // the first render comes at once
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		s.hub.Notify(DevicesKey)
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := renders.Load(); n != 1 {
		t.Errorf("%d renders within the gap, want 1", n)
	}
}

// Each user's streams are capped on their own: another user's stream closes
// none of them, the user's 21st closes the user's oldest.
func TestStreamRegistryPerUser(t *testing.T) {
	r := newStreamRegistry()
	var ctxs []context.Context
	for range streamsPerUser {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		r.add(1, cancel)
		ctxs = append(ctxs, ctx)
	}
	other, cancelOther := context.WithCancelCause(context.Background())
	defer cancelOther(nil)
	removeOther := r.add(2, cancelOther)
	for i, ctx := range ctxs {
		if ctx.Err() != nil {
			t.Fatalf("user 1's stream %d closed by user 2's", i+1)
		}
	}
	_, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	remove := r.add(1, cancel)
	if !errors.Is(context.Cause(ctxs[0]), errStreamReplaced) || ctxs[1].Err() != nil || other.Err() != nil {
		t.Fatalf("after user 1's 21st: oldest %v, second %v, user 2's %v; want only the oldest closed",
			context.Cause(ctxs[0]), ctxs[1].Err(), other.Err())
	}
	remove()
	removeOther()
	if n, m := len(r.open[1]), len(r.open[2]); n != streamsPerUser-1 || m != 0 {
		t.Fatalf("open after removing: user 1 %d, user 2 %d; want %d and 0", n, m, streamsPerUser-1)
	}
}

// LiveUnlocks passes on its sink's IngestBusy: the transports refuse a
// device's events unread (before parsing them) only when the sink they are
// given says it is busy, and the portal gives them this wrapper. Without it
// the refusal came only after parsing, inside the SQLite service.
func TestLiveUnlocksPassesIngestBusy(t *testing.T) {
	for _, busy := range []bool{false, true} {
		live, ok := LiveUnlocks(busyEvents{busy}, NewHub()).(doorledger.BusySink)
		if !ok {
			t.Fatal("LiveUnlocks hides its sink's IngestBusy")
		}
		if got := live.IngestBusy(); got != busy {
			t.Errorf("IngestBusy() = %v; want the sink's %v", got, busy)
		}
	}
}

// busyEvents is an event sink that only says whether it is busy (what
// sqlite.UnlockService says past its MaxQueued).
type busyEvents struct{ busy bool }

func (s busyEvents) RecordUnlocks(context.Context, []doorledger.UnlockEvent) error { return nil }
func (s busyEvents) IngestBusy() bool                                              { return s.busy }
