package devicectl

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// BenchmarkParseEvents measures ParseEvents on what a simulated device sends
// (json.Marshal of an EventMessage): the usual one-event object, and a batch
// of ten; and, to compare within one run, the object decoded by scanEvent
// and by encoding/json alone.
func BenchmarkParseEvents(b *testing.B) {
	ev := EventMessage{EventID: "0f5c2a9e41d84b7c9a6e3d2f1b0c8a77", OccurredAt: time.Date(2026, 12, 8, 2, 0, 0, 123456789, time.UTC),
		Method: "keypad", ActorRef: "sim-0f5c2a9e", Result: doorledger.UnlockGranted}
	one, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]EventMessage, 10)
	for i := range batch {
		batch[i] = ev
	}
	ten, err := json.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		payload []byte
		n       int
	}{{"object", one, 1}, {"array10", ten, 10}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				evs, err := ParseEvents(7, bc.payload, time.Time{})
				if err != nil || len(evs) != bc.n {
					b.Fatal(len(evs), err)
				}
			}
		})
	}
	b.Run("object-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := scanEvents(one, nil); !ok {
				b.Fatal("not scanned")
			}
		}
	})
	b.Run("object-encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEventsJSON(one); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("array10-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := scanEvents(ten, nil); !ok {
				b.Fatal("not scanned")
			}
		}
	})
	b.Run("array10-encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEventsJSON(ten); err != nil {
				b.Fatal(err)
			}
		}
	})
}
