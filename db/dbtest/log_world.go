package dbtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// LogWorld is a building and an admin, for the tests of the verifiable log.
type LogWorld struct {
	Services
	Building       int64
	Admin          *doorledger.User
	EventsRecorded int // unlock events recorded, for unique event ids
}

// NewLogWorld builds the log world on s.
func NewLogWorld(tb testing.TB, s Services) *LogWorld {
	tb.Helper()
	w := &LogWorld{Services: s}
	b, err := s.Buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		tb.Fatal(err)
	}
	w.Building = b.ID
	if w.Admin, err = s.Users.CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin",
		Role: doorledger.RoleAdmin, Password: "correct horse battery"}); err != nil {
		tb.Fatal(err)
	}
	return w
}

// Audits writes n audit entries the way the services do (one per building created).
func (w *LogWorld) Audits(tb testing.TB, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		if _, err := w.Buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: fmt.Sprintf("B%d", i),
			Address: fmt.Sprintf("%d Birch Street", i), Timezone: "UTC"}); err != nil {
			tb.Fatal(err)
		}
	}
}

// RecordUnlocks records n unlock events of an unknown device, at t (zero: now).
func (w *LogWorld) RecordUnlocks(tb testing.TB, n int, t time.Time) {
	tb.Helper()
	var events []doorledger.UnlockEvent
	for i := 0; i < n; i++ {
		w.EventsRecorded++
		ev := doorledger.UnlockEvent{BuildingID: w.Building, DeviceRef: "SN-1", EventID: fmt.Sprintf("e-%d", w.EventsRecorded),
			OccurredAt: *w.Now, Method: "keypad", ActorRef: "pkg " + fmt.Sprint(i), Result: doorledger.UnlockGranted}
		if !t.IsZero() {
			ev.OccurredAt, ev.ReceivedAt = t.Add(time.Duration(i)*time.Second), t.Add(time.Duration(i)*time.Second)
		}
		events = append(events, ev)
	}
	if err := w.Unlocks.RecordUnlocks(sys(), events); err != nil {
		tb.Fatal(err)
	}
}

// Sequence sequences the log and signs its head.
func (w *LogWorld) Sequence(tb testing.TB) *doorledger.LogHead {
	tb.Helper()
	h, err := w.Logs.SignHead(sys())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// Verify verifies the log as the system.
func (w *LogWorld) Verify(tb testing.TB) *doorledger.LogVerification {
	tb.Helper()
	v, err := w.Logs.Verify(sys())
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// Index is the log index of an entry of kind.
func (w *LogWorld) Index(tb testing.TB, kind string, id int64) int64 {
	tb.Helper()
	i, err := w.Logs.EntryIndex(sys(), kind, id)
	if err != nil {
		tb.Fatal(err)
	}
	return i
}

// UnlockIDs returns the ids of the building's unlock events, in order.
func (w *LogWorld) UnlockIDs(tb testing.TB) []int64 {
	tb.Helper()
	var ids []int64
	f := doorledger.UnlockFilter{BuildingID: w.Building, Limit: 500}
	for {
		page, err := w.Unlocks.History(sys(), f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		if page.Next == (doorledger.UnlockCursor{}) {
			break
		}
		f.After = page.Next
	}
	slices.Sort(ids)
	return ids
}
