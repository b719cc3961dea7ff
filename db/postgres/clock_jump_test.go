package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// The machine's clock set an hour forward or back while the portal runs
// (issue 19, clock jump), as package sqlite's clock_jump_test.go: the DB's
// wall clock (Now) jumps, its monotonic clock (Mono) does not. A waiting
// command is not timed out by a jump forward nor held back by one back; a
// confirmation's latency is what it took, and so is the one the journal
// says. And the device's last sighting is never moved back.
func TestClockJumpCommands(t *testing.T) {
	for _, jump := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(jump.String(), func(t *testing.T) {
			w, d, _ := deviceWorld(t)
			var mono time.Duration
			d.Mono = func() time.Duration { return mono }
			pass := func(by time.Duration) { *w.Now = w.Now.Add(by); mono += by }
			ctx := context.Background()
			mgr := doorledger.NewContextWithUser(ctx, w.MgrA)
			id, _ := w.ConsentedDevice(t)
			if _, err := w.Devices.SetDesiredState(mgr, id, doorledger.StateEnabled, ""); err != nil {
				t.Fatal(err)
			}
			expired := func() int {
				t.Helper()
				if _, err := w.Controller.ExpireUnconfirmed(ctx, 30*time.Second); err != nil {
					t.Fatal(err)
				}
				return len(w.Journal(t, 0, "command.not_confirmed"))
			}
			pass(10 * time.Second)
			*w.Now = w.Now.Add(jump)
			if n := expired(); n != 0 {
				t.Errorf("after 10 s and a jump of %s: %d commands not confirmed, want none yet", jump, n)
			}
			pass(5 * time.Second)
			w.Report(t, id, doorledger.StateEnabled, 1)
			c := w.MustCommand(t, id, 1)
			if c.Status != doorledger.CommandConfirmed || c.Latency() != 15*time.Second {
				t.Errorf("confirmed across a jump of %s: status %s, latency %s, want confirmed in 15s", jump, c.Status, c.Latency())
			}
			var detail struct {
				LatencyMS int64 `json:"latency_ms"`
			}
			if err := json.Unmarshal([]byte(w.JournalEntry(t, 0, "command.confirmed").Detail), &detail); err != nil || detail.LatencyMS != 15000 {
				t.Errorf("journal's latency_ms = %d (%v), want 15000", detail.LatencyMS, err)
			}

			// The next command times out after its own 30 s, whatever the jump.
			if _, err := w.Devices.SetDesiredState(mgr, id, doorledger.StateDisabled, ""); err != nil {
				t.Fatal(err)
			}
			*w.Now = w.Now.Add(-jump)
			pass(31 * time.Second)
			if n := expired(); n != 1 {
				t.Errorf("after 31 s (and a jump of %s): %d commands not confirmed, want 1", -jump, n)
			}

			// DeviceSeen keeps the latest sighting (the report's, an hour
			// ahead after the jump forward, is older than this one).
			seen := w.Now.Add(2 * time.Hour)
			for _, at := range []time.Time{seen, seen.Add(-time.Hour)} {
				if err := w.Devices.(interface {
					DeviceSeen(context.Context, int64, time.Time) error
				}).DeviceSeen(ctx, id, at); err != nil {
					t.Fatal(err)
				}
			}
			if got := w.MustDevice(t, id).LastSeenAt; !got.Equal(seen) {
				t.Errorf("LastSeenAt = %v, want %v (an older sighting does not move it back)", got, seen)
			}
		})
	}
}
