package unlockcsv

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "abc": "abc", "=1+2": "'=1+2", "+41": "'+41", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b", " =x": " =x",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWrite pages through more than a page of events with a real reader
// over a slice, newest first from the cursor as a backend's query reads
// them, and checks the file: header, cells, order, count.
func TestWrite(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC) // summer time since 01:00 UTC
	n := Page + 3
	events := make([]*doorledger.UnlockEvent, n) // newest first, as the export reads them
	for i := range events {
		at := base.Add(-time.Duration(i) * time.Minute)
		events[i] = &doorledger.UnlockEvent{ID: int64(n - i), DeviceID: int64(i % 3), DeviceRef: fmt.Sprintf("door-%d", i), EventID: fmt.Sprintf("e%d", i),
			Method: "pin", ActorRef: "courier", Result: doorledger.UnlockGranted, Source: "mqtt", OccurredAt: at, ReceivedAt: at.Add(time.Second)}
	}
	events[0].ActorRef, events[0].DeviceRef, events[0].Anomalies = "=HYPERLINK(\"x\")", "+1", []string{"burst", "outside_hours"}
	events[0].AcknowledgedAt, events[0].AcknowledgedBy, events[0].AckNote = base.Add(time.Hour), "ana@example.org", "-checked"
	var pages []doorledger.UnlockCursor
	read := func(f doorledger.UnlockFilter, each func(*doorledger.UnlockEvent) error) error {
		pages = append(pages, f.After)
		got := 0
		for _, e := range events {
			if !f.After.At.IsZero() && !(e.EffectiveAt().Before(f.After.At) || e.EffectiveAt().Equal(f.After.At) && e.ID < f.After.ID) {
				continue
			}
			if got == Page {
				break
			}
			if err := each(e); err != nil {
				return err
			}
			got++
		}
		return nil
	}
	var buf bytes.Buffer
	written, err := Write(context.Background(), &buf, doorledger.UnlockFilter{BuildingID: 1, Limit: 5}, zurich, read)
	if err != nil {
		t.Fatal(err)
	}
	if written != int64(n) {
		t.Errorf("wrote %d, want %d", written, n)
	}
	if len(pages) != 2 || !pages[0].At.IsZero() || pages[1].ID != events[Page-1].ID {
		t.Errorf("pages read from %v, want the start then after the %dth event", pages, Page)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(recs), n+1; got != want {
		t.Fatalf("%d records, want %d", got, want)
	}
	if got, want := strings.Join(recs[0], ","), "occurred_at,occurred_at_utc,received_at_utc,device_id,device_ref,event_id,method,actor_ref,result,anomalies,source,acknowledged_at_utc,acknowledged_by,ack_note,effective_at"; got != want {
		t.Errorf("header %s, want %s", got, want)
	}
	want := []string{"2026-03-29T03:30:00+02:00", "2026-03-29T01:30:00Z", "2026-03-29T01:30:01Z", "", "'+1", "e0", "pin", "'=HYPERLINK(\"x\")",
		"granted", "burst outside_hours", "mqtt", "2026-03-29T02:30:00Z", "ana@example.org", "'-checked", "2026-03-29T03:30:00+02:00"}
	if got := recs[1]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("first row\n%q, want\n%q", got, want)
	}
	if got := recs[n]; got[0] != "2026-03-27T17:08:00+01:00" || got[3] != "1" || got[5] != fmt.Sprintf("e%d", n-1) || got[11] != "" {
		t.Errorf("last row %q", got)
	}
}
