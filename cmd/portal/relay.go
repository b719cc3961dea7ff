package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"

	"github.com/doorledger/doorledger/web"
)

// relayChanges wakes the live pages of every instance sharing the database
// when something they show changed through any one of them (issue 15: a
// revoke clicked on instance A shows confirmed on a page B serves within a
// second). The hub's keys go out through the database (PostgreSQL's
// NOTIFY, db/postgres/notify.go), marked with this process's origin, and
// the keys other instances send wake this hub's pages, until ctx ends; wait
// returns once both have stopped. A key lost (sent before listening began,
// or while the connection was down) costs nothing but time: every live page
// also re-reads on a one-second tick.
func relayChanges(ctx context.Context, changes changeRelay, hub *web.Hub, log *slog.Logger) (wait func()) {
	r := &pageRelay{changes: changes, origin: newOrigin(), pending: map[string]bool{}, wake: make(chan struct{}, 1), log: log}
	hub.Relay(r.add)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.send(ctx) }()
	go func() {
		defer wg.Done()
		err := changes.ListenChanges(ctx, func(msg string) {
			if key, ok := r.fromOthers(msg); ok {
				hub.Wake(key)
			}
		})
		if err != nil {
			log.Error("live pages: listening to other instances", "err", err)
		}
	}()
	return wg.Wait
}

// pageRelay sends the hub's keys, gathered while the previous send ran: a
// lockdown wakes the device list hundreds of times a second, and one
// notification a round carries each key once.
type pageRelay struct {
	changes changeRelay
	origin  string // this process, on each key it sends
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
	log     *slog.Logger
}

// add queues key for the other instances; it never blocks (hub.Relay).
func (r *pageRelay) add(key string) {
	r.mu.Lock()
	r.pending[key] = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// send sends what add queued, until ctx ends.
func (r *pageRelay) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		msgs := make([]string, 0, len(r.pending))
		for k := range r.pending {
			msgs = append(msgs, r.origin+" "+k)
		}
		clear(r.pending)
		r.mu.Unlock()
		if err := r.changes.NotifyChanges(ctx, msgs...); err != nil && ctx.Err() == nil {
			r.log.Warn("live pages: telling other instances", "keys", len(msgs), "err", err)
		}
	}
}

// fromOthers reads a message received: the key, and whether another
// instance sent it (this one woke its own pages when it sent it). ""
// (changes missed while listening was down) wakes nothing: the pages'
// tick re-reads them.
func (r *pageRelay) fromOthers(msg string) (key string, ok bool) {
	origin, key, found := strings.Cut(msg, " ")
	return key, found && origin != r.origin && key != ""
}

// newOrigin names this process among the instances relaying changes.
func newOrigin() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
