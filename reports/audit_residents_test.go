package reports_test

import (
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// The audit report lists the residents' reports of the range with what came
// of them, after the journal, and never a resident's contact address.
func TestAuditReport_ResidentReports(t *testing.T) {
	r := SampleAuditReport(t)
	r.ResidentReports = []*doorledger.ResidentReport{
		{ID: 12, BuildingID: 7, CreatedAt: time.Date(2026, 11, 11, 18, 30, 0, 0, time.UTC), Location: "grey box behind the mailboxes, see http://evil.example",
			HasPhoto: true, Outcome: doorledger.ReportFoundDevice, FoundDeviceID: 5, Note: "relay behind the mailboxes",
			ResolvedAt: time.Date(2026, 11, 12, 10, 1, 0, 0, time.UTC), ResolvedBy: "manager@example.org"},
		{ID: 13, BuildingID: 7, CreatedAt: time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC), Location: "sticker on the garage door",
			Contact: "resident@example.net"},
	}
	text := MustLayoutText(t, MustAuditReport(t, r))
	for _, want := range []string{"Residents' reports of unlisted devices", "#12", "grey box behind the mailboxes",
		"recorded as found device #5", "#13", "sticker on the garage door", "still open"} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(text, "resident@example.net") {
		t.Error("the report prints a resident's contact address")
	}
}
