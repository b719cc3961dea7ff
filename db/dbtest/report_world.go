package dbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// ReportWorld is the unlock world with helpers for the report service.
type ReportWorld struct {
	*UnlockWorld
	n int // unlock events recorded, for unique event ids
}

// NewReportWorld builds the report world with building A in time zone tzA.
func NewReportWorld(tb testing.TB, s Services, tzA string) *ReportWorld {
	tb.Helper()
	return &ReportWorld{UnlockWorld: NewUnlockWorld(tb, s, tzA, time.Time{})}
}

// Generator is the report generator's context: the system.
func Generator() context.Context {
	return doorledger.NewSystemContext(context.Background(), "report generator")
}

var gen = Generator

// UnlocksAt records one event of an unregistered device of the building at
// each time, and returns their event ids.
func (w *ReportWorld) UnlocksAt(t testing.TB, building int64, times ...time.Time) []string {
	t.Helper()
	var evs []doorledger.UnlockEvent
	var ids []string
	for _, at := range times {
		w.n++
		id := fmt.Sprintf("r-%04d", w.n)
		evs = append(evs, doorledger.UnlockEvent{BuildingID: building, DeviceRef: "relay-9", EventID: id, OccurredAt: at,
			ReceivedAt: at, Method: doorledger.MethodKeypad, ActorRef: "pkg " + id, Result: doorledger.UnlockDenied})
		ids = append(ids, id)
	}
	w.Record(t, evs...)
	return ids
}

// Request requests a report as u.
func (w *ReportWorld) Request(t testing.TB, u *doorledger.User, building int64, format, from, to string) *doorledger.ReportRecord {
	t.Helper()
	r, err := w.Reports.RequestReport(As(u), doorledger.ReportRequest{BuildingID: building, Format: format, From: from, To: to})
	if err != nil {
		t.Fatalf("request %s %s..%s of building %d: %v", format, from, to, building, err)
	}
	return r
}

// Claim takes the next report for the generator and checks it is want.
func (w *ReportWorld) Claim(t testing.TB, want string) *doorledger.ReportRecord {
	t.Helper()
	r, err := w.Reports.NextReport(gen())
	if err != nil {
		t.Fatal(err)
	}
	if r == nil || r.ID != want {
		t.Fatalf("NextReport = %+v, want %s", r, want)
	}
	return r
}

// Finish claims the report and finishes it with a made-up file and a head
// signed now; it returns the file's SHA-256.
func (w *ReportWorld) Finish(t testing.TB, id string) string {
	t.Helper()
	w.Claim(t, id)
	head, err := w.Logs.SignHead(gen())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("the file of " + id))
	if err := w.Reports.FinishReport(gen(), id, hex.EncodeToString(sum[:]), 1234, head, doorledger.ReportHolds{}); err != nil {
		t.Fatalf("finish %s: %v", id, err)
	}
	return hex.EncodeToString(sum[:])
}

// Day returns the date days from today in loc.
func Day(now time.Time, loc *time.Location, days int) string {
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+days, 0, 0, 0, 0, loc).Format("2006-01-02")
}
