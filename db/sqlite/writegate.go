package sqlite

import (
	"context"
	"slices"
	"sync"
)

// writeGate decides which write transaction gets SQLite's single writer
// next. Without it the write pool hands its one connection to a waiter
// chosen at random (database/sql), so under a stream of unlock events a
// device's confirming report, or a manager's revoke, waited behind one
// event batch after another: a revoke took 53–296× its idle time from click
// to confirmed page (docs/reliability.md, Load).
//
// The gate is held from BeginTx until the transaction commits or rolls back.
// Its callers are served in two lanes: every write is urgent except bulk
// work (the unlock events' group commits), which gets the writer only when
// no urgent write waits for it. Within a lane, first come first served. A
// bulk write already running is never interrupted: an urgent one waits for
// it to end, at most one group's transaction.
//
// Bulk work cannot starve for long: urgent writes are short and few (a
// device's report group, a revoke, a lease renewal) against the hundreds a
// second of event batches, and the unlock committer gathers everything that
// arrived meanwhile into its next group.
//
// Statements executed on the pool outside a transaction (DeviceSeen, the
// outbox's attempts) do not pass the gate: they take the connection when it
// is free, as before.
type writeGate struct {
	mu     sync.Mutex
	held   bool
	urgent []chan struct{} // waiting, first come first
	bulk   []chan struct{}
}

// acquire waits for the writer; bulk callers only get it when no urgent
// caller waits. It returns ctx's error if ctx ends first (nothing held).
func (g *writeGate) acquire(ctx context.Context, bulk bool) error {
	g.mu.Lock()
	if !g.held && (!bulk || len(g.urgent) == 0) {
		g.held = true
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if bulk {
		g.bulk = append(g.bulk, ch)
	} else {
		g.urgent = append(g.urgent, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		n := len(g.urgent) + len(g.bulk)
		g.urgent = slices.DeleteFunc(g.urgent, func(c chan struct{}) bool { return c == ch })
		g.bulk = slices.DeleteFunc(g.bulk, func(c chan struct{}) bool { return c == ch })
		removed := len(g.urgent)+len(g.bulk) < n
		g.mu.Unlock()
		if !removed { // handed over meanwhile: pass it on
			g.release()
		}
		return ctx.Err()
	}
}

// release hands the writer to the first urgent caller waiting, else to the
// first bulk one, else frees it.
func (g *writeGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case len(g.urgent) > 0:
		close(g.urgent[0])
		g.urgent = g.urgent[1:]
	case len(g.bulk) > 0:
		close(g.bulk[0])
		g.bulk = g.bulk[1:]
	default:
		g.held = false
	}
}
