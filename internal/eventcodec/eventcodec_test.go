package eventcodec

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// codecEvents are events as a report's scan yields them (UTC times in
// microseconds, the building left to the walk), covering each branch of the
// encoding: acknowledged or not, no received time, anomaly kinds, empty
// texts, texts with separators, non-ASCII and large lengths, negative
// differences between the received and occurred times.
func codecEvents() []doorledger.UnlockEvent {
	at := time.Date(2026, 11, 22, 9, 30, 0, 123456000, time.UTC)
	long := string(bytes.Repeat([]byte("ü"), 300))
	return []doorledger.UnlockEvent{
		{ID: 1, DeviceID: 7, DeviceRef: "relay-1", EventID: "e1", OccurredAt: at, ReceivedAt: at.Add(1500 * time.Millisecond),
			Method: "keypad", ActorRef: "courier 4", Result: doorledger.UnlockGranted, Source: "mqtt"},
		{ID: 2, DeviceRef: "unknown", EventID: "e2", OccurredAt: at.Add(time.Minute), Result: doorledger.UnlockDenied, Source: "csv",
			Anomalies: []string{doorledger.AnomalyUnknownDevice}},
		{ID: 1 << 40, DeviceID: 1 << 33, DeviceRef: "r\x1f2", EventID: long, OccurredAt: at.Add(time.Hour), ReceivedAt: at.Add(-time.Hour),
			Method: "app", ActorRef: "a\x1fb", Result: doorledger.UnlockGranted, Source: "webhook",
			Anomalies:      []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent, doorledger.AnomalyOutsideHours, doorledger.AnomalyClockSkew},
			AcknowledgedAt: at.Add(48 * time.Hour), AcknowledgedBy: "Μαρία (manager)", AckNote: "gate fixed\x1fagain"},
		{ID: 4, DeviceID: 7, OccurredAt: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), ReceivedAt: at,
			Anomalies: []string{doorledger.AnomalyBurst}, AcknowledgedAt: at, AcknowledgedBy: "", AckNote: ""},
	}
}

// TestCodecRoundTrip checks that events appended one after another
// into one buffer, as a report's first walk keeps them, read back in order
// exactly as they were, with nothing left over.
func TestCodecRoundTrip(t *testing.T) {
	want := codecEvents()
	var buf []byte
	for i := range want {
		buf = Append(buf, &want[i])
	}
	rest := buf
	for i := range want {
		var got doorledger.UnlockEvent
		var err error
		if rest, err = Read(rest, &got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !slices.Equal(got.Anomalies, want[i].Anomalies) {
			t.Errorf("event %d: anomalies %q, want %q", i, got.Anomalies, want[i].Anomalies)
		}
		got.Anomalies, want[i].Anomalies = nil, nil
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes left after the last event", len(rest))
	}
}

// TestCodecReusedEvent checks that decoding into the event of the
// previous one, as replay does, leaves nothing of it behind: an
// acknowledgement, a received time or anomalies it had and the next lacks.
func TestCodecReusedEvent(t *testing.T) {
	events := codecEvents()
	acked, plain := events[2], events[1]
	buf := Append(Append(nil, &acked), &plain)
	var e doorledger.UnlockEvent
	rest, err := Read(buf, &e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Read(rest, &e); err != nil {
		t.Fatal(err)
	}
	if e.Acknowledged() || e.AcknowledgedBy != "" || e.AckNote != "" || !e.ReceivedAt.IsZero() || !slices.Equal(e.Anomalies, plain.Anomalies) {
		t.Errorf("second event keeps the first's: %+v", e)
	}
}

// TestCodecDamaged checks that every truncation of an encoded event is
// refused with ErrDamaged, never a panic or a half-read event taken as whole.
func TestCodecDamaged(t *testing.T) {
	for i, ev := range codecEvents() {
		b := Append(nil, &ev)
		for n := range len(b) {
			var e doorledger.UnlockEvent
			if _, err := Read(b[:n], &e); !errors.Is(err, ErrDamaged) {
				t.Errorf("event %d cut at %d of %d bytes: %v, want ErrDamaged", i, n, len(b), err)
			}
		}
	}
}

// FuzzCodec checks that readEvent never panics on any input, and that
// what it reads, encoded again, reads back the same.
func FuzzCodec(f *testing.F) {
	for _, ev := range codecEvents() {
		f.Add(Append(nil, &ev))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e doorledger.UnlockEvent
		rest, err := Read(b, &e)
		if err != nil {
			return
		}
		if len(rest) > len(b) {
			t.Fatalf("rest of %d bytes from %d", len(rest), len(b))
		}
		var again doorledger.UnlockEvent
		if _, err := Read(Append(nil, &e), &again); err != nil {
			t.Fatalf("re-encoded %+v: %v", e, err)
		}
		if !slices.Equal(again.Anomalies, e.Anomalies) || again.ID != e.ID || again.DeviceID != e.DeviceID ||
			!again.OccurredAt.Equal(e.OccurredAt) || !again.AcknowledgedAt.Equal(e.AcknowledgedAt) ||
			again.DeviceRef != e.DeviceRef || again.EventID != e.EventID || again.Method != e.Method || again.ActorRef != e.ActorRef ||
			again.Result != e.Result || again.Source != e.Source || again.AcknowledgedBy != e.AcknowledgedBy || again.AckNote != e.AckNote {
			t.Fatalf("re-encoded\n %+v\nreads %+v", e, again)
		}
	})
}
