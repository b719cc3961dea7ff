package reports_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/reports"
)

// A skewed device clock: an event a device with a wrong clock dated after the range
// (or long before it) belongs to the range it was received in. The PDF and
// the CSV print it there, with both times.
func TestAuditReport_ClockSkew(t *testing.T) {
	r := SampleAuditReport(t)
	_, end, err := r.Range()
	if err != nil {
		t.Fatal(err)
	}
	received := end.Add(-time.Minute) // 2026-11-21 23:59 in Zürich
	ahead := doorledger.UnlockEvent{ID: 5000, BuildingID: 7, DeviceID: 3, EventID: "skew-ahead", OccurredAt: end.Add(72 * time.Hour),
		ReceivedAt: received, Method: doorledger.MethodKeypad, ActorRef: "PKG-AHEAD", Result: doorledger.UnlockGranted, Source: doorledger.SourceHTTP,
		Anomalies: []string{doorledger.AnomalyClockSkew}}
	sample := r.Events
	r.Events = func(yield func(*doorledger.UnlockEvent) error) error {
		if err := sample(yield); err != nil {
			return err
		}
		ev := ahead
		return yield(&ev)
	}

	text := MustLayoutText(t, MustAuditReport(t, r))
	for _, want := range []string{
		"Every event, oldest first (301)",
		"2026-11-21 23:59:00 CET #3 SN-4F2A-0091-ZX keypad PKG-AHEAD granted clock skew received; device clock: 2026-11-25 00:00:00 CET",
	} {
		if !containsText(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}

	var buf bytes.Buffer
	if err := reports.AuditReportCSV(&buf, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "2026-11-25T00:00:00+01:00,3,") || !strings.Contains(last, ",2026-11-21T23:59:00+01:00,5000,http,") ||
		!strings.HasSuffix(last, ",2026-11-21T23:59:00+01:00") || !strings.Contains(last, "clock skew") {
		t.Errorf("CSV row of the skewed event: %s\nwant the device's time first, the time received, and the effective time last", last)
	}
}
