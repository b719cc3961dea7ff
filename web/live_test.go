package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a-h/templ"
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
		done <- s.streamEvery(c, "progress", []string{DevicesKey}, time.Hour, func(context.Context) (templ.Component, bool, error) {
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
