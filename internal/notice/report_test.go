package notice

import (
	"testing"

	"github.com/doorledger/doorledger"
)

// TestReportReadyMail pins the monthly report's mail byte for byte: both
// backends queue it.
func TestReportReadyMail(t *testing.T) {
	r := &doorledger.ReportRecord{ID: "AR-7-20261201T000000Z-3f9a", BuildingName: "Alder Court", From: "2026-11-01", To: "2026-11-30",
		SHA256: "ab12"}
	subject, body := ReportReadyMail(r, "https://portal.example.com")
	if want := "Monthly audit report: Alder Court, November 2026"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	want := "The audit report of Alder Court for November 2026 (2026-11-01 to 2026-11-30, building time) is ready.\n\n" +
		"Report:   AR-7-20261201T000000Z-3f9a\nSHA-256:  ab12\nDownload: https://portal.example.com/reports/AR-7-20261201T000000Z-3f9a\n\n" +
		"The SHA-256 identifies the file: to check that a copy you hold is the one Doorledger issued and that it was not altered, " +
		"upload it on the portal's \"Verify a report\" page.\n\n" +
		"You receive this mail because you subscribed to the building's monthly report; you can turn it off on the building's reports page.\n"
	if body != want {
		t.Errorf("body =\n%s\nwant\n%s", body, want)
	}
}
