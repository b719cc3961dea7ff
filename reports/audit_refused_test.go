package reports_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
)

// A refused revoke: the report's command section, summary and inventory say a
// device refused its revoke, in the portal's words and on a red band, and
// never count it confirmed.
func TestAuditReport_DeviceRefused(t *testing.T) {
	r := SampleAuditReport(t)
	refusedAt := time.Date(2026, 11, 10, 17, 45, 2, 400e6, time.UTC)
	for _, d := range r.Devices {
		if d.ID == 4 { // told to disable at v2 when its consent was withdrawn
			d.ReportedState, d.ReportedVersion, d.CommandStatus = doorledger.StateEnabled, 2, doorledger.CommandRefused
		}
	}
	for _, c := range r.Commands {
		if c.ID == 902 {
			c.ConfirmedAt, c.RefusedAt, c.Status = time.Time{}, refusedAt, doorledger.CommandRefused
		}
	}
	pdf := MustAuditReport(t, r)
	text := MustLayoutText(t, pdf)
	for _, want := range []string{
		// The summary: devices by status (the label wraps beside its
		// count), and the revocations.
		"Disabled · device refused: 1 still enabled",
		"REFUSED by the device 1 (the device received the disable and reported it is still enabled)",
		"Confirmed by the device 0",
		// The inventory.
		"disabled · device refused: still enabled",
		// The command section.
		"REFUSED by the device: still enabled",
		"refused by the device at 2026-11-10 18:45:02 CET",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if containsText(text, "Disable (command 902, v2) requested by system at 2026-11-10 18:45:00 CET (\"consent #43 withdrawn\"); confirmed") {
		t.Error("the refused revoke is said to be confirmed")
	}

	// The red band (colorAlert) is drawn: behind the inventory's row of the
	// device and the command's row.
	qpdf := testtool.Require(t, "qpdf")
	in, out := filepath.Join(t.TempDir(), "in.pdf"), filepath.Join(t.TempDir(), "out.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(qpdf, "--qdf", "--object-streams=disable", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --qdf: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("0.984 0.878 0.878 rg")); n < 3 {
		t.Errorf("%d red bands in the PDF, want at least 3 (the device, and the two alarming commands)", n)
	}
	if n := strings.Count(MustLayoutText(t, MustAuditReport(t, SampleAuditReport(t))), "device refused"); n != 0 {
		t.Errorf("the sample without a refusal mentions one %d times", n)
	}
}
