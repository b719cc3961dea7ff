package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// storedTime is how unlock_events stores times (UTC, microseconds).
const storedTime = "2006-01-02T15:04:05.000000Z"

// TestUnlockBurstBatches records batches that hold more granted unlocks than
// the burst limit, spread over hours or packed into minutes, with windows a
// microsecond either side of the limit, clock-skewed events among them and
// batches recorded concurrently, then checks every stored burst flag against
// the rule applied to the stored rows in the order they were recorded (by
// id): a granted event whose clock is trusted is a burst when the building's
// granted events recorded before it whose effective time is within
// (occurred - window, occurred], plus itself, exceed the limit (a skewed
// event counts at the time it was received). The group commit skips counting when a
// bound says no event can be a burst, and otherwise counts each event's
// window in memory (or, past a bound, in the database: the second run); a
// wrong bound or count shows up here as a missed or an extra flag.
func TestUnlockBurstBatches(t *testing.T) {
	t.Run("memory", testUnlockBurstBatches)
	t.Run("database", func(t *testing.T) {
		defer sqlite.SetBurstMemoryMax(sqlite.SetBurstMemoryMax(-1))
		testUnlockBurstBatches(t)
	})
}

func testUnlockBurstBatches(t *testing.T) {
	const limit, window = 5, 10 * time.Minute
	w := newUnlockWorld(t, "UTC", time.Time{})
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrB), w.B, doorledger.UnlockSettings{
		RetentionDays: 1095, BurstCount: limit, BurstMinutes: int(window / time.Minute)}); err != nil {
		t.Fatal(err)
	}
	devs := make([]int64, 4)
	for i := range devs {
		devs[i], _ = w.enabledDevice(t, w.B)
	}
	now := *w.Now
	rng := rand.New(rand.NewPCG(5, 5))
	seq := 0
	ev := func(at time.Time, r doorledger.UnlockResult) doorledger.UnlockEvent {
		seq++
		return doorledger.UnlockEvent{DeviceID: devs[rng.IntN(len(devs))], EventID: fmt.Sprintf("b-%d", seq), OccurredAt: at,
			ReceivedAt: now, Method: doorledger.MethodCourierApp, Result: r}
	}
	result := func() doorledger.UnlockResult {
		if rng.IntN(10) == 0 {
			return doorledger.UnlockDenied
		}
		return doorledger.UnlockGranted
	}
	// spread: n events over span from start, in order, at random gaps.
	spread := func(start time.Time, span time.Duration, n int) []doorledger.UnlockEvent {
		out := make([]doorledger.UnlockEvent, n)
		at := start
		for i := range out {
			out[i] = ev(at, result())
			at = at.Add(time.Duration(rng.Int64N(int64(2 * span / time.Duration(n)))))
		}
		return out
	}
	// spaced: n granted events gap apart from start.
	spaced := func(start time.Time, gap time.Duration, n int) []doorledger.UnlockEvent {
		out := make([]doorledger.UnlockEvent, n)
		for i := range out {
			out[i] = ev(start.Add(time.Duration(i)*gap), doorledger.UnlockGranted)
		}
		return out
	}
	day := now.Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	var batches [][]doorledger.UnlockEvent
	// A day's traffic in one batch, one unlock every 3 minutes: 200, far
	// more than the limit, but at most 4 in any window: never a burst.
	steady := make([]doorledger.UnlockEvent, 200)
	for i := range steady {
		steady[i] = ev(day.Add(time.Duration(i)*3*time.Minute), result())
	}
	batches = append(batches, steady)
	// The same with a cluster of 8 granted within 3 minutes in the middle.
	cluster := make([]doorledger.UnlockEvent, 0, 208)
	for i := range 200 {
		if i == 100 {
			cluster = append(cluster, spaced(day.Add(29*time.Hour+time.Minute), 20*time.Second, 8)...)
		}
		cluster = append(cluster, ev(day.Add(24*time.Hour+time.Duration(i)*3*time.Minute), result()))
	}
	batches = append(batches, cluster)
	// limit granted window/limit apart: the limit in a window, not a burst;
	// one more: the first falls out of the last one's window, still none;
	// a microsecond closer, the last is a burst.
	batches = append(batches, spaced(day.Add(48*time.Hour), window/limit, limit))
	batches = append(batches, spaced(day.Add(49*time.Hour), window/limit, limit+1))
	batches = append(batches, spaced(day.Add(50*time.Hour), window/limit-time.Microsecond, limit+1))
	// One recorded just before, then the limit within a window: together
	// one more than the limit, so the last is a burst.
	batches = append(batches, spaced(day.Add(51*time.Hour), time.Minute, 1), spaced(day.Add(51*time.Hour+time.Minute), time.Minute, limit))
	// Ties: a vendor's export to the second; the earlier ones at the same
	// instant are in the window.
	batches = append(batches, spaced(day.Add(52*time.Hour), 0, limit+2))
	// Clock-skewed granted events (dated three days after they were
	// received, so never checked themselves) count, at the time received,
	// for the trusted ones after them in the window; at their own dates
	// they would count for none.
	skewAt := day.Add(72 * time.Hour)
	skewed := spaced(skewAt.Add(72*time.Hour), time.Minute, 3)
	for i := range skewed {
		skewed[i].ReceivedAt = skewAt.Add(time.Duration(i) * time.Minute)
	}
	trusted := spaced(skewAt.Add(3*time.Minute), time.Minute, 3)
	for i := range trusted {
		trusted[i].ReceivedAt = skewAt.Add(time.Hour)
	}
	batches = append(batches, append(append(spread(skewAt.Add(-5*time.Hour), 4*time.Hour, 40), skewed...), trusted...))
	for _, batch := range batches {
		if _, err := w.svc.RecordUnlocksResult(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	// Batches over the same hours from four callers at once: they share
	// group commits in an order the test does not choose.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		batch := spread(day.Add(96*time.Hour+time.Duration(i)*time.Minute), 12*time.Hour, 60)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.svc.RecordUnlocksResult(context.Background(), batch)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	rows, err := w.d.Reader().Query(`SELECT event_id, effective_at, result, anomalies FROM unlock_events WHERE building_id = ? ORDER BY id`, w.B)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var granted []string // effective_at of the granted events recorded so far, as stored
	bursts, checked := 0, 0
	for rows.Next() {
		var id, at, res string
		var bits int64
		if err := rows.Scan(&id, &at, &res, &bits); err != nil {
			t.Fatal(err)
		}
		if res != string(doorledger.UnlockGranted) {
			if bits&16 != 0 {
				t.Errorf("%s (denied): flagged burst", id)
			}
			continue
		}
		want := false
		if bits&32 == 0 { // clock trusted: its effective time is its device's
			occurred, err := time.Parse(storedTime, at)
			if err != nil {
				t.Fatal(err)
			}
			from, n := occurred.Add(-window).Format(storedTime), 0
			for _, g := range granted {
				if g > from && g <= at {
					n++
				}
			}
			want = n+1 > limit
			checked++
		}
		if got := bits&16 != 0; got != want {
			t.Errorf("%s at %s: burst %v, want %v", id, at, got, want)
		}
		if want {
			bursts++
		}
		granted = append(granted, at)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The cases above must have made both answers, many times over.
	if bursts < 5 || checked-bursts < 400 {
		t.Errorf("%d bursts among %d checked events: the batches do not test what they mean to", bursts, checked)
	}
}
