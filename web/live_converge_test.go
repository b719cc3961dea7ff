package web

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// convergeStream is one device page's stream on a server whose ticks the
// test sends: it renders state, and gate (when set) holds a render after it
// has read state, as a render holds its slot while the database answers.
type convergeStream struct {
	s      *Server
	ticks  chan time.Time
	state  atomic.Value // string
	hold   atomic.Bool  // the next render waits for gate
	gate   chan struct{}
	inside chan struct{} // a held render has read state
	events chan string   // each event's data
}

func newConvergeStream(t *testing.T) *convergeStream {
	t.Helper()
	cs := &convergeStream{ticks: make(chan time.Time, 1), gate: make(chan struct{}), inside: make(chan struct{}, 1), events: make(chan string, 100)}
	cs.s = &Server{hub: NewHub(), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ticks: func() (<-chan time.Time, func()) { return cs.ticks, func() {} }}
	cs.state.Store("v0")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := echo.New().NewContext(r, w)
		_ = cs.s.stream(c, nil, "state", []string{DeviceKey(1)}, func(ctx context.Context) (templ.Component, bool, error) {
			html := cs.state.Load().(string)
			if cs.hold.CompareAndSwap(true, false) {
				cs.inside <- struct{}{}
				select {
				case <-cs.gate:
				case <-ctx.Done():
				}
			}
			return templ.Raw(html), false, nil
		})
	}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Close() })
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				cs.events <- data
			}
		}
	}()
	cs.expect(t, "v0")
	return cs
}

// expect waits for the stream to send want, failing on any other event.
func (cs *convergeStream) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-cs.events:
		if got != want {
			t.Fatalf("stream sent %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second): // a failure bound only
		t.Fatalf("stream never sent %q", want)
	}
}

// takeSlots takes both render slots, as busy lockdown pages do; it returns
// their release.
func (cs *convergeStream) takeSlots(t *testing.T) func() {
	t.Helper()
	var rel []func()
	for range streamRenders {
		r := cs.s.renders.acquireCtx(context.Background())
		rel = append(rel, r)
	}
	return func() {
		for _, r := range rel {
			r()
		}
	}
}

// A page that no wake-up reaches (the news landed on another instance) still
// converges on the tick while every render slot stays taken: a tick-only
// re-read is skipped a few times, then waits for a slot. Before, it was
// skipped every time, and the page showed stale state for as long as the
// slots were busy (docs/reliability.md, Load).
func TestStreamTickReReadNotSkippedForever(t *testing.T) {
	cs := newConvergeStream(t)
	release := cs.takeSlots(t)
	cs.state.Store("v1") // changed, and nobody notifies
	sent := 0
	deadline := time.Now().Add(30 * time.Second) // a failure bound only
	for cs.s.renders.waiting.Load() == 0 {
		if sent > streamTickSkips+5 {
			release()
			t.Fatalf("%d ticks with every slot taken and the stream never waited for one: its page stays stale", sent)
		}
		if time.Now().After(deadline) {
			t.Fatal("after 30 s the stream neither took a tick nor waited for a slot")
		}
		select {
		case cs.ticks <- time.Now():
			sent++
		case <-time.After(time.Millisecond): // re-check waiting
		}
	}
	release()
	cs.expect(t, "v1")
}

// A wake-up that comes together with a tick whose re-read is skipped (every
// slot taken) is not lost: the stream waits for a slot and shows the news.
// Before, the skipped tick's turn took the wake-up from the channel, and the
// page showed the state read before the news until the slots came free at a
// tick. Go's select picks at random between a ready tick and wake-up, so the
// case is repeated: the old code fails it with probability 1 - 2^-20.
func TestStreamWakeUpNotLostWithSkippedTick(t *testing.T) {
	cs := newConvergeStream(t)
	for i := 1; i <= 20; i++ {
		// The stream renders (its slot taken) and has read the old state.
		cs.hold.Store(true)
		cs.s.hub.Notify(DeviceKey(1))
		select {
		case <-cs.inside:
		case <-time.After(30 * time.Second): // a failure bound only
			t.Fatal("the stream did not render on a wake-up")
		}
		// The other slot is taken, and another stream waits for the one
		// the render holds: it gets it as soon as the render ends.
		other := cs.s.renders.acquireCtx(context.Background())
		got := make(chan func(), 1)
		go func() { got <- cs.s.renders.acquireCtx(context.Background()) }()
		for cs.s.renders.waiting.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		// The news and a tick both arrive while it renders.
		want := "v" + string(rune('a'+i))
		cs.state.Store(want)
		cs.s.hub.Notify(DeviceKey(1))
		cs.ticks <- time.Now()
		close(cs.gate)
		waiter := <-got
		cs.gate = make(chan struct{})                // read by the next held render only
		deadline := time.Now().Add(10 * time.Second) // a failure bound only
		for cs.s.renders.waiting.Load() == 0 {
			if time.Now().After(deadline) {
				other()
				waiter()
				t.Fatalf("round %d: the stream lost the wake-up for %q: it does not wait for a slot", i, want)
			}
			time.Sleep(time.Millisecond)
		}
		other()
		waiter()
		cs.expect(t, want)
		select { // a tick left over when the wake-up was taken first
		case <-cs.ticks:
		default:
		}
	}
}
