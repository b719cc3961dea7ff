package sqlite_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// LastUnlocks (the building page's "last unlock" column, one read) gives
// each device of the building its newest event by effective time, as one
// History page of one event per device did, and nothing to those without a
// grant on the building.
func TestUnlockLastUnlocks(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	now := *w.Now
	d1, _ := w.enabledDevice(t, w.A)
	d2, _ := w.enabledDevice(t, w.A)
	quiet, _ := w.enabledDevice(t, w.A)
	dB, _ := w.enabledDevice(t, w.B)
	w.record(t,
		w.At(d1, "d1-old", now.Add(-2*time.Hour), doorledger.UnlockGranted),
		w.At(d1, "d1-new", now.Add(-time.Hour), doorledger.UnlockDenied),
		// A wrong clock a day ahead: it counts at the time received, now.
		unlockEv(d2, "d2-skewed", now.Add(24*time.Hour), doorledger.UnlockGranted),
		w.At(d2, "d2-plain", now.Add(-time.Minute), doorledger.UnlockGranted),
		w.At(0, "relay", now.Add(-time.Second), doorledger.UnlockGranted),
		w.At(dB, "other-building", now, doorledger.UnlockGranted),
	)
	last, err := w.svc.LastUnlocks(uctx(w.BoardA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[d1] == nil || last[d2] == nil || last[quiet] != nil {
		t.Fatalf("last unlocks: %v, want devices %d and %d", last, d1, d2)
	}
	for _, dev := range []int64{d1, d2} {
		page, err := w.svc.History(uctx(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, DeviceID: dev, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := last[dev], page.Events[0]; got.ID != want.ID || got.EventID != want.EventID || !got.OccurredAt.Equal(want.OccurredAt) {
			t.Errorf("device %d: last %+v, history's newest %+v", dev, got, want)
		}
	}
	if got := last[d2].EventID; got != "d2-skewed" {
		t.Errorf("device %d: last %s, want d2-skewed (received now)", d2, got)
	}
	if _, err := w.svc.LastUnlocks(uctx(w.MgrB), w.A); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("a manager of another building: %v, want ENOTFOUND", err)
	}
	if _, err := w.svc.LastUnlocks(uctx(w.InstA), w.A); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("an installer: %v, want ENOTFOUND", err)
	}
}
