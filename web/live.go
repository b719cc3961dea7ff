package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/labstack/echo/v4"
)

// Hub wakes live pages when something they show may have changed: a device
// reported, a command was recorded. It carries no data and nothing depends on
// it for correctness — every stream also re-reads the database on a short tick,
// so a portal behind a load balancer (where the report may land on another
// instance) still converges, only a little later. Instances that share a
// database relay their keys to each other (Relay, Wake), so their pages
// wake at once too.
type Hub struct {
	mu    sync.Mutex
	subs  map[string]map[chan struct{}]struct{}
	relay func(key string)
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

// Relay has every key notified from now on also given to fn, which carries
// it to the other instances' hubs (their Wake); fn must not block. Set it
// before the hub is in use.
func (h *Hub) Relay(fn func(key string)) { h.relay = fn }

// Notify wakes every subscriber of key, and relays it; it never blocks.
func (h *Hub) Notify(key string) {
	h.Wake(key)
	if h.relay != nil {
		h.relay(key)
	}
}

// Wake wakes every subscriber of key without relaying it: for a key
// another instance relayed. It never blocks.
func (h *Hub) Wake(key string) {
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
// streamMax (the browser's EventSource reconnects by itself). On each tick it
// also re-checks its session, so logging out (here or everywhere), a password
// change or a disabled account ends it within a tick. One user keeps at most
// streamsPerUser open (a manager's tabs and the attention list); a new one
// past that closes the oldest.
const (
	streamTick     = time.Second
	streamMax      = 10 * time.Minute
	streamsPerUser = 20
)

// streamTickSkips is how many re-reads in a row that only the tick asks for
// a stream may skip while every render slot is taken; the next one waits
// for a slot. The tick is what makes a page converge when no wake-up comes
// (the news landed on another instance), so it may be put off, never
// skipped for good: with 40 lockdown pages keeping both slots busy, a device
// page skipped every tick and kept showing a command "pending" that the
// database had confirmed (docs/reliability.md, Load).
const streamTickSkips = 3

// endEvent is the event that closes a stream for good: the page's script
// closes its EventSource (which would otherwise reconnect) and shows the
// message (static/app.js).
const endEvent = "end"

// Why a stream ended for good, as the page says it.
const (
	streamSessionEnded = "Live updates stopped: your session has ended. Reload the page to sign in again."
	streamTooMany      = "Live updates stopped here: you have more than 20 live pages open. Reload the page to resume them."
)

// errStreamReplaced is the cause that closes a user's oldest stream when
// the user opens one past streamsPerUser.
var errStreamReplaced = errors.New("stream replaced by a newer one of the same user")

// streamRegistry keeps each user's open streams, oldest first.
type streamRegistry struct {
	mu   sync.Mutex
	open map[int64][]*openStream
}

// openStream is one open stream: end closes it with a cause.
type openStream struct{ end context.CancelCauseFunc }

func newStreamRegistry() *streamRegistry {
	return &streamRegistry{open: map[int64][]*openStream{}}
}

// add registers a stream of userID, closing the user's oldest ones past
// streamsPerUser, and returns the function that unregisters it.
func (r *streamRegistry) add(userID int64, end context.CancelCauseFunc) (remove func()) {
	me := &openStream{end: end}
	r.mu.Lock()
	list := append(r.open[userID], me)
	for len(list) > streamsPerUser {
		list[0].end(errStreamReplaced)
		list = list[1:]
	}
	r.open[userID] = list
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		list := slices.DeleteFunc(r.open[userID], func(o *openStream) bool { return o == me })
		if len(list) == 0 {
			delete(r.open, userID)
		} else {
			r.open[userID] = list
		}
	}
}

// streamRenders is how many streams may re-read the database and render at
// once. Every open stream re-reads on each tick and wake-up; with 200 pages
// open, their reads took every read connection and, in SQLite's page cache
// (one lock for every connection of the process), slowed the single writer
// until device messages waited past their time-out and were sent again
// (docs/reliability.md, Load). A stream woken by news (or opening) queues for
// a slot; a re-read the tick alone asks for is skipped while every slot is
// taken. Under load a page shows a change a little later, and ingest and
// commands keep going.
const streamRenders = 2

// renderSlots bounds the streams re-reading at once (streamRenders). Its
// zero value is ready to use.
type renderSlots struct {
	once    sync.Once
	slots   chan struct{}
	waiting atomic.Int64 // streams waiting for a slot
}

// acquireCtx waits for a slot and returns its release, or nil when ctx ends first.
func (r *renderSlots) acquireCtx(ctx context.Context) (release func()) {
	if release = r.tryAcquire(); release != nil {
		return release
	}
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case r.slots <- struct{}{}:
		return func() { <-r.slots }
	case <-ctx.Done():
		return nil
	}
}

// tryAcquire takes a free slot and returns its release, or nil when every slot is taken.
func (r *renderSlots) tryAcquire() (release func()) {
	r.once.Do(func() { r.slots = make(chan struct{}, streamRenders) })
	select {
	case r.slots <- struct{}{}:
		return func() { <-r.slots }
	default:
		return nil
	}
}

// listStreamGap is the least time between two renders of a stream that shows
// many devices. Every report of any device wakes those streams, and each
// render re-reads all their devices: during a lockdown, rendering on every
// wake-up took much of the CPU and slowed the reports the page was showing
// (docs/architecture.md, Device control). Wake-ups within the gap are folded
// into one render at its end.
const listStreamGap = 200 * time.Millisecond

// stream serves server-sent events: each time the rendered fragment changes it
// is sent as event name, until the client leaves, render says done, or users
// says the session that opened it has ended.
func (s *Server) stream(c echo.Context, users doorledger.UserService, event string, keys []string, render func(ctx context.Context) (templ.Component, bool, error)) error {
	return s.streamEvery(c, users, event, keys, 0, render)
}

// streamEvery is stream with at least gap between two renders.
func (s *Server) streamEvery(c echo.Context, users doorledger.UserService, event string, keys []string, gap time.Duration, render func(ctx context.Context) (templ.Component, bool, error)) error {
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	open, closeStream := context.WithCancelCause(c.Request().Context())
	defer closeStream(nil)
	ctx, cancel := context.WithTimeout(open, streamMax)
	defer cancel()
	sid, _ := c.Get("sid").(string)
	if u := doorledger.UserFromContext(ctx); u != nil && s.streams != nil {
		defer s.streams.add(u.ID, closeStream)()
	}
	// done says whether the stream ends here, saying why when it ends for good.
	done := func() bool {
		if ctx.Err() == nil {
			return false
		}
		if errors.Is(context.Cause(open), errStreamReplaced) {
			s.endStream(w, streamTooMany)
		}
		return true
	}
	wake, unsubscribe := s.hub.Subscribe(keys...)
	defer unsubscribe()
	ticks, stopTicks := s.streamTicker()
	defer stopTicks()
	var last string
	var rendered, checked time.Time
	ticked := false // the next render is asked for by the tick alone
	skipped := 0    // tick-only re-reads skipped in a row
	checked = time.Now()
	for {
		if wait := gap - time.Since(rendered); gap > 0 && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				done()
				return nil
			case <-t.C:
			}
		}
		// A render that something asked for (the first, a wake-up) waits
		// for a slot; one that only the tick asks for is skipped when every
		// slot is taken, at most streamTickSkips times in a row: under load,
		// streams re-read for news first.
		var release func()
		if ticked && skipped < streamTickSkips {
			release = s.renders.tryAcquire()
		} else if release = s.renders.acquireCtx(ctx); release == nil {
			done()
			return nil
		}
		if release == nil {
			skipped++
		} else {
			skipped = 0
			// This render covers every wake-up so far. Taken only once
			// the render is sure: a wake-up that came with the tick of a
			// skipped re-read stays to be served, not dropped.
			select {
			case <-wake:
			default:
			}
			rendered = time.Now()
			comp, finished, err := render(ctx)
			if err != nil {
				release()
				if done() {
					return nil
				}
				s.log.Error("stream render", "route", c.Path(), "err", err)
				return nil
			}
			var buf bytes.Buffer
			err = comp.Render(ctx, &buf)
			release() // not held while the client takes the event
			if err != nil {
				return nil
			}
			if html := buf.String(); html != last {
				last = html
				if err := s.writeEvent(w, event, html); err != nil {
					return nil // the client stopped reading (or left): the stream ends
				}
			}
			if finished {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			done()
			return nil
		case <-wake:
			ticked = false
		case <-ticks:
			ticked = true
		}
		// The session is re-read at most once a tick, however often the
		// stream is woken: the database's word, not the user in the request's
		// context, which was read when the stream opened.
		if sid != "" && time.Since(checked) >= streamTick {
			checked = time.Now()
			if err := users.CheckSession(ctx, sid); err != nil {
				if done() {
					return nil
				}
				if doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
					s.log.Error("stream session check", "route", c.Path(), "err", err)
				}
				s.endStream(w, streamSessionEnded)
				return nil
			}
		}
	}
}

// streamTicker returns a stream's tick channel and the function that stops it.
func (s *Server) streamTicker() (<-chan time.Time, func()) {
	if s.ticks != nil {
		return s.ticks()
	}
	t := time.NewTicker(streamTick)
	return t.C, t.Stop
}

// writeEvent sends one server-sent event; each line of data is a data: line.
// The write must be taken by the client within the StreamWrite timeout: a
// client that stopped reading would otherwise hold the handler, its buffers
// and its stream slot for as long as the connection lives, blocked on a full
// TCP buffer. The deadline is lifted after each event, so the connection can
// serve another request once the stream ends.
func (s *Server) writeEvent(w *echo.Response, event, data string) error {
	rc := http.NewResponseController(w.Writer) // its errors, which echo's Flush swallows
	if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.Timeouts.withDefaults().StreamWrite)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", event)
	for _, line := range strings.Split(data, "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// endStream sends endEvent with the message the page shows.
func (s *Server) endStream(w *echo.Response, msg string) { _ = s.writeEvent(w, endEvent, msg) }
