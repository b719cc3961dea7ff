package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/postgres"
)

// keyRecorder collects the keys a listener receives.
type keyRecorder struct {
	mu   sync.Mutex
	keys []string
	got  chan struct{}
}

func newKeyRecorder() *keyRecorder { return &keyRecorder{got: make(chan struct{}, 1000)} }

func (r *keyRecorder) add(k string) {
	r.mu.Lock()
	r.keys = append(r.keys, k)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *keyRecorder) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.keys {
		if x == k {
			return true
		}
	}
	return false
}

func (r *keyRecorder) await(t *testing.T, keys ...string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		all := true
		for _, k := range keys {
			all = all && r.has(k)
		}
		if all {
			return
		}
		select {
		case <-r.got:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("keys %q not received; got %q", keys, r.keys)
		}
	}
}

// A change notified through one instance's database handle reaches the
// listener of another instance on the same database, in one notification
// for many keys; when the listener's connection is killed, it connects
// again, says it may have missed keys (""), and receives later ones.
func TestChangesAcrossInstances(t *testing.T) {
	a, _ := MustOpenDB(t)
	b := postgres.NewDB(a.URL)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(context.Background())
	rec := newKeyRecorder()
	done := make(chan error, 1)
	go func() { done <- b.ListenChanges(ctx, rec.add) }()
	defer func() { cancel(); <-done }()

	// The listener may not be listening yet: notify until it hears.
	notifyUntil := func(key string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !rec.has(key) {
			if time.Now().After(deadline) {
				t.Fatalf("key %q never received", key)
			}
			if err := a.NotifyChanges(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	start := time.Now()
	notifyUntil("ping")
	t.Logf("listening after %v", time.Since(start).Round(time.Millisecond))
	if err := a.NotifyChanges(context.Background(), "device:12", "devices", "unlocks:3"); err != nil {
		t.Fatal(err)
	}
	rec.await(t, "device:12", "devices", "unlocks:3")

	// Kill the listener's connection from the server side.
	if _, err := a.Pool().Exec(context.Background(),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN doorledger_changes' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	notifyUntil("after-reconnect")
	rec.await(t, "")
	t.Logf("listening again %v after its connection was killed", time.Since(killed).Round(time.Millisecond))

	if err := a.NotifyChanges(context.Background(), "bad\nkey"); err == nil {
		t.Error("a key with a newline was sent")
	}
}
