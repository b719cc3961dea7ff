package devicectl_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// unconfirmedStore is a Store holding one command the device has not
// confirmed; it counts how often the controller looks for such commands.
type unconfirmedStore struct {
	mu      sync.Mutex
	expires int
}

func (s *unconfirmedStore) PendingDesired(context.Context) ([]doorledger.DesiredState, error) {
	return nil, nil
}
func (s *unconfirmedStore) MarkSentMany(context.Context, []doorledger.DesiredState) error { return nil }
func (s *unconfirmedStore) FlushSent(context.Context) error                               { return nil }
func (s *unconfirmedStore) MarkSent(context.Context, int64, error) error                  { return nil }
func (s *unconfirmedStore) ExpireUnconfirmed(context.Context, time.Duration) ([]doorledger.DesiredState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expires++
	return []doorledger.DesiredState{{DeviceID: 7, Version: 3, CommandID: 11, State: doorledger.StateDisabled}}, nil
}

// An instance retries unconfirmed commands only while Retrying says so (it
// holds the command retries' lease): one instance retries, not every one.
func TestControllerRetriesOnlyWhileRetrying(t *testing.T) {
	store, mqtt := &unconfirmedStore{}, &mqttRecorder{}
	var retrying atomic.Bool
	var asked atomic.Int64
	c := &devicectl.Controller{Store: store, Transport: mqtt, Logger: testLogger(), RetryEvery: 5 * time.Millisecond,
		Retrying: func() bool { asked.Add(1); return retrying.Load() }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitUntil(t, "the controller asks whether to retry 5 times", func() bool { return asked.Load() >= 5 })
	store.mu.Lock()
	expires := store.expires
	store.mu.Unlock()
	mqtt.mu.Lock()
	pushed := len(mqtt.pushed)
	mqtt.mu.Unlock()
	if expires != 0 || pushed != 0 {
		t.Fatalf("not retrying: looked for unconfirmed commands %d times, pushed %d; want none", expires, pushed)
	}
	retrying.Store(true)
	waitUntil(t, "the unconfirmed command is pushed again", func() bool {
		mqtt.mu.Lock()
		defer mqtt.mu.Unlock()
		return len(mqtt.pushed) > 0 && mqtt.pushed[0].CommandID == 11
	})
}

// waitUntil polls cond until it holds, for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
