package devicectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// heldSink is an EventSink (and DeviceReports) that does not say when it is
// busy, as postgres.UnlockService does not, and holds every RecordUnlocks
// call until release is closed: events waiting for their commit.
type heldSink struct {
	release chan struct{}
	entered chan int // the events of each call held
}

func (s *heldSink) RecordUnlocks(ctx context.Context, evs []doorledger.UnlockEvent) error {
	s.entered <- len(evs)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *heldSink) AuthenticateDevice(context.Context, int64, string) error { return nil }
func (s *heldSink) ReportState(context.Context, doorledger.ReportedState) error {
	return nil
}

// eventsPayload is an events message of n events.
func eventsPayload(t *testing.T, device int64, n int) []byte {
	t.Helper()
	msgs := make([]EventMessage, n)
	for i := range msgs {
		msgs[i] = EventMessage{EventID: fmt.Sprintf("d%d-%d", device, i), OccurredAt: time.Now().UTC(),
			Method: "code", Result: doorledger.UnlockGranted}
	}
	buf, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// With maxEventsInFlight events waiting for their commit in a sink that
// does not say when it is busy, a device's events are refused unread (and
// sent again later), so that its report, which the broker handles after
// them, does not wait behind everything queued; its report still goes
// through. Without the bound the events call waits for the sink (here until
// its time-out).
func TestIngestRefusesEventsBeyondInFlight(t *testing.T) {
	sink := &heldSink{release: make(chan struct{}), entered: make(chan int, 4)}
	in := &ingester{devices: sink, events: sink, timeout: 5 * time.Second, stats: &counters{}}
	ctx := context.Background()
	answers := make(chan outcome, 2)
	for held := 0; held < maxEventsInFlight; {
		device := int64(10 + held/MaxEventsPerMessage)
		n := min(MaxEventsPerMessage, maxEventsInFlight-held)
		go func() {
			o, _ := in.ingest(ctx, device, KindEvents, eventsPayload(t, device, n))
			answers <- o
		}()
		held += <-sink.entered
	}

	o, err := in.ingest(ctx, 1, KindEvents, eventsPayload(t, 1, 1))
	if o != failed || !errors.Is(err, errIngestBusy) {
		t.Fatalf("events with %d in flight: %v, %v; want refused as busy", maxEventsInFlight, o, err)
	}
	if got := in.stats.snapshot().Busy; got != 1 {
		t.Errorf("Busy = %d; want 1", got)
	}
	if o, err := in.ingest(ctx, 1, KindReported, []byte(`{"state":"disabled","version":7}`)); o != committed {
		t.Errorf("the device's report while its events are refused: %v, %v; want committed", o, err)
	}

	close(sink.release)
	for range 2 {
		if o := <-answers; o != committed {
			t.Errorf("a held message answered %v; want committed", o)
		}
	}
	go func() { <-sink.entered }()
	if o, err := in.ingest(ctx, 1, KindEvents, eventsPayload(t, 1, 1)); o != committed {
		t.Errorf("the events sent again once the others committed: %v, %v; want committed", o, err)
	}
}
