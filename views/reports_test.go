package views

import (
	"testing"

	"github.com/doorledger/doorledger"
)

func TestReportStatusWords(t *testing.T) {
	for _, tt := range []struct {
		name     string
		r        doorledger.ReportRecord
		label    string
		class    string
		finished bool
	}{
		{"queued", doorledger.ReportRecord{Status: doorledger.ReportQueued}, "queued", "badge-warn", false},
		{"running, not counted yet", doorledger.ReportRecord{Status: doorledger.ReportRunning}, "writing", "badge-warn", false},
		{"running, counted", doorledger.ReportRecord{Status: doorledger.ReportRunning, Done: 25, Total: 200}, "writing, 12%", "badge-warn", false},
		{"running, all written", doorledger.ReportRecord{Status: doorledger.ReportRunning, Done: 200, Total: 200}, "writing, 100%", "badge-warn", false},
		{"done", doorledger.ReportRecord{Status: doorledger.ReportDone}, "ready", "badge-ok", true},
		{"failed", doorledger.ReportRecord{Status: doorledger.ReportFailed}, "failed", "badge-danger", true},
		{"unknown", doorledger.ReportRecord{Status: "paused"}, "paused", "badge-warn", false},
	} {
		if got := reportStatusLabel(&tt.r); got != tt.label {
			t.Errorf("%s: label %q, want %q", tt.name, got, tt.label)
		}
		if got := reportStatusClass(tt.r.Status); got != tt.class {
			t.Errorf("%s: class %q, want %q", tt.name, got, tt.class)
		}
		if got := reportFinished(&tt.r); got != tt.finished {
			t.Errorf("%s: finished %v, want %v", tt.name, got, tt.finished)
		}
	}
}

func TestReportWords(t *testing.T) {
	for _, tt := range []struct{ name, got, want string }{
		{"pdf", ReportFormatLabel(doorledger.ReportPDF), "PDF audit report"},
		{"csv", ReportFormatLabel(doorledger.ReportCSV), "CSV of the unlock events"},
		{"bundle", ReportFormatLabel(doorledger.ReportBundle), "Evidence bundle (zip)"},
		{"other format", ReportFormatLabel("xml"), "xml"},
		{"path", ReportPath("AR-7-1", ""), "/reports/AR-7-1"},
		{"path escaped", ReportPath("AR 7/1", "/status"), "/reports/AR%207%2F1/status"},
		{"range", reportRange(&doorledger.ReportRecord{From: "2026-03-01", To: "2026-03-31"}), "2026-03-01 to 2026-03-31"},
		{"short hash", shortHash("0123456789abcdef0123"), "0123456789abcdef…"},
		{"short hash, already short", shortHash("0123456789abcdef"), "0123456789abcdef"},
		{"int64s", int64s(-250000), "-250000"},
		{"thousands 0", thousands(0), "0"},
		{"thousands 999", thousands(999), "999"},
		{"thousands 1000", thousands(1000), "1,000"},
		{"thousands 250000", thousands(250000), "250,000"},
		{"thousands 1234567", thousands(1234567), "1,234,567"},
		{"thousands -123", thousands(-123), "-123"},
		{"thousands -123456", thousands(-123456), "-123,456"},
		{"bytes", ByteCount(90), "90 bytes"},
		{"bytes below a KB", ByteCount(1023), "1023 bytes"},
		{"one KB", ByteCount(1024), "1 KB"},
		{"KB rounded down", ByteCount(1535), "1 KB"},
		{"KB rounded up", ByteCount(1536), "2 KB"},
		{"one MB", ByteCount(1 << 20), "1.0 MB"},
		{"MB", ByteCount(3 << 19), "1.5 MB"},
		{"paper bytes rounded up to a KB", byteWords(1), "1 KB"},
		{"paper KB", byteWords(1025), "2 KB"},
		{"paper MB", byteWords(5 << 20), "5.0 MB"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestReportLead(t *testing.T) {
	const rest = " from 2026-03-01 to 2026-03-31, with the anomalies among them, every consent, device and command of the building, and its journal entries."
	for _, tt := range []struct {
		total int64
		want  string
	}{
		{0, "This report holds no unlock events" + rest},
		{1, "This report holds 1 unlock event" + rest},
		{2, "This report holds 2 unlock events" + rest},
		{250000, "This report holds 250,000 unlock events" + rest},
	} {
		r := &doorledger.ReportRecord{From: "2026-03-01", To: "2026-03-31", Total: tt.total}
		if got := reportLead(r); got != tt.want {
			t.Errorf("reportLead(total %d) = %q, want %q", tt.total, got, tt.want)
		}
	}
}

// TestReportLeadHolds: a report whose counts were recorded leads with its
// events, the anomalies among them and the consents and devices it lists.
func TestReportLeadHolds(t *testing.T) {
	const from = " from 2026-03-01 to 2026-03-31, "
	const rest = ", with every command of the building and its journal entries."
	for _, tt := range []struct {
		total int64
		holds doorledger.ReportHolds
		want  string
	}{
		{0, doorledger.ReportHolds{}, "This report holds no unlock events" + from + "no anomalies, 0 consents and 0 devices" + rest},
		{1, doorledger.ReportHolds{Anomalies: 1, OpenAnomalies: 1, Consents: 1, Devices: 1},
			"This report holds 1 unlock event" + from + "1 anomaly (1 still open when it was made), 1 consent and 1 device" + rest},
		{12034, doorledger.ReportHolds{Anomalies: 1500, OpenAnomalies: 0, Consents: 3, Devices: 2},
			"This report holds 12,034 unlock events" + from + "1,500 anomalies (all acknowledged), 3 consents and 2 devices" + rest},
		{40, doorledger.ReportHolds{Anomalies: 7, OpenAnomalies: 2, Consents: 1204, Devices: 5},
			"This report holds 40 unlock events" + from + "7 anomalies (2 still open when it was made), 1,204 consents and 5 devices" + rest},
	} {
		holds := tt.holds
		r := &doorledger.ReportRecord{From: "2026-03-01", To: "2026-03-31", Total: tt.total, Holds: &holds}
		if got := reportLead(r); got != tt.want {
			t.Errorf("reportLead(%d, %+v) =\n%q, want\n%q", tt.total, tt.holds, got, tt.want)
		}
	}
}
