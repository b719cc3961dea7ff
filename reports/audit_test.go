package reports_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/reports"
)

// auditGeneratedAt is when every audit report in these tests was generated.
var auditGeneratedAt = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

const (
	verifierKey = "doorledger.example/log+5f3a9c1e+AQ3lY1uvJ9yqRk3uvW6Vw8qGnYRk2v1cZ0cOQbYw8rTn"
	oddActor    = `Ĩĩ Ŝč Ċ (carrier\) \ "Łódź"` // UTF-16 bytes of these include ( ) \ CR LF

	// The sample's acknowledgements: device 5's first without-consent
	// events acknowledged together with one note, and device 4's first
	// three events after its revocation each on its own, with a note in
	// Cyrillic, Greek and Polish.
	bulkAckBy   = "manager@example.org"
	bulkAckNote = "Relay FOUND-0007 disconnected at the panel; the installer was asked who fitted it."
	ackBy       = "zoe.nunez@example.org"
	ackNote     = "Курьер подтвердил доставку · Ο διαχειριστής ενημερώθηκε · zgłoszono instalatorowi (Łódź)"
)

// bulkAckAt is when device 5's events were acknowledged together.
var bulkAckAt = time.Date(2026, 11, 12, 10, 20, 0, 0, time.UTC)

// SampleAuditReport returns a report of three weeks of SampleBuilding: a
// signed device, a device whose consent was withdrawn (then disabled), a
// device found without consent, and an unregistered device, with events that
// cover every anomaly the ingest flags.
func SampleAuditReport(tb testing.TB) *doorledger.AuditReport {
	tb.Helper()
	b := SampleBuilding()
	b.Signers = []*doorledger.Signer{
		{ID: 5, BuildingID: 7, Name: "Zoë Nuñez", Title: "Board president", Email: "zoe.nunez@example.org", Active: true},
		{ID: 6, BuildingID: 7, Name: "Ana Θεοδώρου", Title: "Treasurer", Email: "ana@example.org", Active: true},
	}
	signed := SampleConsent(tb) // #42 for device 3, by Zoë Nuñez

	withdrawn := SampleConsent(tb)
	withdrawn.ID, withdrawn.DeviceID = 43, 4
	withdrawn.Device = doorledger.DeviceDetails{Vendor: "Parcelio", Model: "Box P2", Serial: "PB2-00417-Ω", Location: "garage side door", Opens: "the garage side door"}
	withdrawn.SignerID, withdrawn.Signer = 6, *b.Signers[1]
	withdrawn.RequestedAt = time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	withdrawn.Signature.TypedName, withdrawn.Signature.SignerID = "Ana Θεοδώρου", 6
	withdrawn.Signature.Method, withdrawn.Signature.IP = doorledger.VerifyLink, "2001:db8::17"
	withdrawn.Signature.SignedAt = time.Date(2026, 5, 2, 9, 12, 0, 0, time.UTC)
	withdrawn.Status, withdrawn.StatusAt, withdrawn.StatusNote = doorledger.ConsentWithdrawn, time.Date(2026, 11, 10, 17, 45, 0, 0, time.UTC), "The garage is no longer used for deliveries."

	lapsed := SampleConsent(tb)
	lapsed.ID, lapsed.Status = 30, doorledger.ConsentLapsed
	lapsed.RequestedAt = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	lapsed.Signature.SignedAt = time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	lapsed.ExpiresAt, lapsed.StatusAt, lapsed.StatusNote = time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), ""

	installed := time.Date(2026, 3, 14, 14, 0, 0, 0, time.UTC)
	devices := []*doorledger.Device{
		{ID: 3, BuildingID: 7, DeviceDetails: signed.Device, InstallerID: 11, Installer: "Łukasz Wróbel", Company: "Wróbel & Sons",
			ConsentID: 42, ConsentState: doorledger.ConsentSigned, DesiredState: doorledger.StateEnabled, DesiredVersion: 3,
			ReportedState: doorledger.StateEnabled, ReportedVersion: 3, LastSeenAt: time.Date(2026, 11, 22, 9, 29, 30, 0, time.UTC), CreatedAt: installed},
		{ID: 4, BuildingID: 7, DeviceDetails: withdrawn.Device, InstallerID: 11, Installer: "Łukasz Wróbel", Company: "Wróbel & Sons",
			ConsentID: 43, ConsentState: doorledger.ConsentWithdrawn, DesiredState: doorledger.StateDisabled, DesiredVersion: 2,
			ReportedState: doorledger.StateDisabled, ReportedVersion: 2, LastSeenAt: time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC), CreatedAt: installed.AddDate(0, 1, 18)},
		{ID: 5, BuildingID: 7, DeviceDetails: doorledger.DeviceDetails{Vendor: "Unknown", Model: "relay", Serial: "FOUND-0007", Location: "inner lobby panel, behind the mailboxes"},
			Unconsented: true, DesiredState: doorledger.StateDisabled, DesiredVersion: 1, CreatedAt: time.Date(2026, 11, 12, 10, 0, 0, 0, time.UTC),
			CommandAt: time.Date(2026, 11, 12, 10, 5, 0, 0, time.UTC), CommandStatus: doorledger.CommandNotConfirmed},
	}
	commands := []*doorledger.Command{
		{ID: 901, DeviceID: 3, BuildingID: 7, State: doorledger.StateEnabled, Version: 3, Reason: "consent #42 renewed", RequestedBy: "manager@example.org",
			RequestedAt: time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 3, 9, 0, 0, 50e6, time.UTC), Attempts: 1,
			ConfirmedAt: time.Date(2026, 11, 3, 9, 0, 1, 200e6, time.UTC), Status: doorledger.CommandConfirmed},
		{ID: 902, DeviceID: 4, BuildingID: 7, State: doorledger.StateDisabled, Version: 2, Reason: "consent #43 withdrawn", RequestedBy: "system",
			RequestedAt: time.Date(2026, 11, 10, 17, 45, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 10, 17, 45, 0, 10e6, time.UTC), Attempts: 1,
			ConfirmedAt: time.Date(2026, 11, 10, 17, 45, 2, 400e6, time.UTC), Status: doorledger.CommandConfirmed},
		{ID: 903, DeviceID: 5, BuildingID: 7, State: doorledger.StateDisabled, Version: 1, Reason: "opened the door without an active consent", RequestedBy: "system",
			RequestedAt: time.Date(2026, 11, 12, 10, 5, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 12, 10, 5, 0, 0, time.UTC), Attempts: 4,
			LastError: "device offline", Status: doorledger.CommandNotConfirmed},
	}
	entries := []*doorledger.AuditEntry{
		{ID: 7001, At: time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC), ActorID: 2, Actor: "manager@example.org", Action: "device.enable", BuildingID: 7,
			ObjectType: "device", ObjectID: 3, IP: "198.51.100.4", Detail: `{"command":901,"version":3}`},
		{ID: 7002, At: time.Date(2026, 11, 10, 17, 45, 0, 0, time.UTC), Actor: "signer 6", Action: "consent.withdrawn", BuildingID: 7,
			ObjectType: "consent", ObjectID: 43, IP: "2001:db8::17", Detail: `{"note":"The garage is no longer used for deliveries.","devices_disabled":1}`},
		{ID: 7003, At: time.Date(2026, 11, 12, 10, 0, 0, 0, time.UTC), ActorID: 2, Actor: "Zoë Nuñez <zoe.nunez@example.org>", Action: "device.found", BuildingID: 7,
			ObjectType: "device", ObjectID: 5, IP: "198.51.100.4", Detail: `{"serial":"FOUND-0007","location":"inner lobby panel, behind the mailboxes"}`},
		{ID: 7004, At: time.Date(2026, 11, 12, 10, 5, 0, 0, time.UTC), Actor: "device 5", Action: "device.unconsented", BuildingID: 7,
			ObjectType: "device", ObjectID: 5, Detail: `{"unlock_event":88,"event_id":"r-88","command":903}`},
	}
	var root doorledger.LogHash
	for i := range root {
		root[i] = byte(i * 7)
	}
	r := &doorledger.AuditReport{
		ID:           "AR-7-20261122T093000Z",
		Building:     b,
		From:         "2026-11-01",
		To:           "2026-11-21",
		GeneratedAt:  auditGeneratedAt,
		GeneratedBy:  "manager@example.org",
		Devices:      devices,
		Consents:     []*doorledger.Consent{signed, withdrawn, lapsed},
		Commands:     commands,
		AuditEntries: entries,
		LogHead: &doorledger.LogHead{Size: 123456, Root: root, At: time.Date(2026, 11, 22, 9, 29, 58, 0, time.UTC),
			Note: "doorledger.example/log\n123456\nAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=\n\n— doorledger.example/log X1qcHiv3yRc8uJk0d3ahzJ8m0Qj7sVnJl0N0vP9uWmXhR8pG4sTt2mKkVbEo5LcY0ZqTz1aZ4A==\n"},
		VerifierKey: verifierKey,
	}
	r.Events = SampleEvents(r, 300)
	return r
}

// SampleEvents returns an Events function that yields n events spread evenly
// over r's range, generated (not stored) in the same order on every call.
func SampleEvents(r *doorledger.AuditReport, n int) func(yield func(*doorledger.UnlockEvent) error) error {
	start, end, err := r.Range()
	if err != nil {
		panic(err)
	}
	step := end.Sub(start) / time.Duration(n+1)
	loc := r.Building.Location()
	return func(yield func(*doorledger.UnlockEvent) error) error {
		var ev doorledger.UnlockEvent // reused, as a database scan would
		acked4 := 0
		for i := 0; i < n; i++ {
			at := start.Add(step * time.Duration(i+1)).Truncate(time.Second)
			ev = doorledger.UnlockEvent{ID: int64(1000 + i), BuildingID: 7, EventID: "evt-" + strconv.Itoa(i), OccurredAt: at, ReceivedAt: at.Add(800 * time.Millisecond),
				Method: doorledger.MethodCourierApp, ActorRef: fmt.Sprintf("AMZ-%08d", 4000000+i*37), Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}
			switch {
			case i%50 == 7: // an unregistered device
				ev.DeviceRef, ev.Result, ev.Anomalies = "relay-Ω-9", doorledger.UnlockDenied, []string{doorledger.AnomalyUnknownDevice}
			case i%4 == 1:
				ev.DeviceID = 4
				if at.After(time.Date(2026, 11, 10, 17, 45, 0, 0, time.UTC)) {
					ev.Anomalies = []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent}
				}
			case i%25 == 3:
				ev.DeviceID, ev.Method = 5, doorledger.MethodKeypad
				ev.Anomalies = []string{doorledger.AnomalyWithoutConsent}
			case i%9 == 2:
				ev.DeviceID, ev.Result, ev.Method = 3, doorledger.UnlockDenied, doorledger.MethodKeypad
			default:
				ev.DeviceID = 3
			}
			if i%13 == 5 {
				ev.ActorRef = oddActor
			}
			if h := at.In(loc).Hour(); ev.Result == doorledger.UnlockGranted && ev.DeviceID != 0 && (h < 7 || h >= 21) {
				ev.Anomalies = append(ev.Anomalies, doorledger.AnomalyOutsideHours)
			}
			switch {
			case ev.DeviceID == 5 && at.Before(bulkAckAt):
				ev.AcknowledgedAt, ev.AcknowledgedBy, ev.AckNote = bulkAckAt, bulkAckBy, bulkAckNote
			case ev.DeviceID == 4 && ev.HasAnomaly(doorledger.AnomalyAfterRevocation) && acked4 < 3:
				acked4++
				ev.AcknowledgedAt, ev.AcknowledgedBy, ev.AckNote = at.Add(90*time.Minute), ackBy, ackNote
			}
			if err := yield(&ev); err != nil {
				return err
			}
		}
		return nil
	}
}

// MustLayoutText is MustPDFText keeping the layout, so that a field's label
// and value, or a table's cells, come out on one line.
func MustLayoutText(tb testing.TB, pdf []byte) string {
	tb.Helper()
	bin := testtool.Require(tb, "pdftotext")
	in := filepath.Join(tb.TempDir(), "in.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", in, "-").Output()
	if err != nil {
		tb.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// MustAuditReport prints r and checks the PDF with qpdf --check.
func MustAuditReport(tb testing.TB, r *doorledger.AuditReport) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := reports.AuditReportPDF(&buf, r); err != nil {
		tb.Fatal(err)
	}
	MustQPDFCheck(tb, testtool.Require(tb, "qpdf"), buf.Bytes())
	return buf.Bytes()
}

// checkPages checks that every page of text names the report id and says it
// is page n of all of them, and returns how many pages there are.
func checkPages(tb testing.TB, text, id string) int {
	tb.Helper()
	pages := strings.Split(strings.TrimSuffix(text, "\f"), "\f")
	for i, page := range pages {
		if want := fmt.Sprintf("Page %d of %d", i+1, len(pages)); !containsText(page, want) {
			tb.Errorf("page %d lacks %q", i+1, want)
		}
		if !containsText(page, id) {
			tb.Errorf("page %d lacks the report id %q", i+1, id)
		}
	}
	return len(pages)
}

func TestAuditReport_Content(t *testing.T) {
	r := SampleAuditReport(t)
	text := MustLayoutText(t, MustAuditReport(t, r))
	checkPages(t, text, "AR-7-20261122T093000Z")

	var granted, denied, anomalous, outside int
	r.Events(func(ev *doorledger.UnlockEvent) error {
		if ev.Result == doorledger.UnlockGranted {
			granted++
		} else {
			denied++
		}
		if len(ev.Anomalies) > 0 {
			anomalous++
		}
		if ev.HasAnomaly(doorledger.AnomalyOutsideHours) {
			outside++
		}
		return nil
	})
	for _, want := range []string{
		// The cover.
		"Building audit report",
		"Οικία Παπαδοπούλου / Дом на Невском",
		"Rue de l’Église 5, 8001 Zürich",
		"Europe/Zurich — every time in this report is building time",
		"2026-11-01 to 2026-11-21, both included (21 days)",
		"Generated by manager@example.org",
		"2026-11-22 10:30:00 CET (2026-11-22 09:30:00 UTC)",
		"Report id AR-7-20261122T093000Z",
		"Unlock events 300",
		// The summary's counts.
		fmt.Sprintf("Events 300: %d granted, %d denied", granted, denied),
		fmt.Sprintf("Anomalous events %d", anomalous),
		fmt.Sprintf("outside hours %d", outside),
		"Enabled · confirmed 1", "Disabled · confirmed 1", "Disabled · not confirmed 1", "Flagged unconsented 1",
		"Withdrawn in the range 1",
		"Disable commands 2", "Confirmed by the device 1", "Not confirmed 1",
		// The inventory.
		"SN-4F2A-0091-ZX", "PB2-00417-Ω", "FOUND-0007",
		"Łukasz Wróbel", "(Wróbel & Sons)",
		"FLAGGED UNCONSENTED",
		// The evidence.
		"Consent #42 — Signed",
		"Signer (from the roster) Zoë Nuñez",
		"Roster title Board president",
		"Ana Θεοδώρου", "Roster title Treasurer",
		"Consent #43 — Withdrawn",
		"Withdrawn at 2026-11-10 18:45:00 CET",
		"The garage is no longer used for deliveries.",
		"Consent #30 — Lapsed",
		"2001:db8::17",
		"203.0.113.7",
		SampleConsent(t).Signature.TermsSHA256,
		"The stored terms hash to this SHA-256.",
		"Signature as drawn",
		// The history.
		"Unlocks per day (building time)",
		"Every event, oldest first (300)",
		"AMZ-04000000",
		oddActor,
		"unregistered: relay-Ω-9",
		"after revocation, without consent",
		// The anomalies and what was done.
		"Unregistered device calling itself “relay-Ω-9”",
		"no command can reach it",
		`Disable (command 903, v1) requested by system at 2026-11-12 11:05:00 CET ("opened the door without an active consent"); NOT CONFIRMED`,
		// Commands and the journal.
		"after 2.4 s",
		"4 times sent; last error: device offline",

		// The log head.
		"Entries covered 123,456",
		"00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9",
		verifierKey,
		"portal audit verify -data DIR -key " + verifierKey,
		"Verify a report",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	// Journal entries read as sentences, each whole, not as their JSON
	// (pdftotext without -layout keeps a cell's lines together).
	raw := MustPDFText(t, MustAuditReport(t, r))
	for _, want := range []string{
		"told device #3 to enable (command #901, version 3)",
		"withdrew consent #43: “The garage is no longer used for deliveries.”; 1 device told to disable",
		"registered device #5, found without consent (serial FOUND-0007, at “inner lobby panel, behind the mailboxes”); kept disabled",
		"device #5 opened the door without an active consent (unlock event #88, the device's event “r-88”): marked unconsented and told to disable (command #903)",
	} {
		if !containsText(raw, want) {
			t.Errorf("journal lacks %q", want)
		}
	}
	for _, not := range []string{`{"`, `"command"`, "consent.withdrawn"} {
		if strings.Contains(raw, not) {
			t.Errorf("the PDF prints %q", not)
		}
	}
	var g4, a4 int
	r.Events(func(ev *doorledger.UnlockEvent) error {
		if ev.DeviceID == 4 {
			g4++
			if len(ev.Anomalies) > 0 {
				a4++
			}
		}
		return nil
	})
	if want := fmt.Sprintf("#4 Parcelio Box P2 · PB2-00417-Ω garage side door %d 0 %d %d", g4, a4, g4); !containsText(text, want) {
		t.Errorf("per-device table lacks %q", want)
	}
	if want := fmt.Sprintf("All devices %d %d %d 300", granted, denied, anomalous); !containsText(text, want) {
		t.Errorf("per-device table lacks %q", want)
	}
	if n := strings.Count(text, oddActor); n < 300/13 {
		t.Errorf("odd actor reference printed %d times, want at least %d", n, 300/13)
	}
}

// A consent in force signed by someone since removed from the roster, and
// one signed with a name that differs from the roster's, are flagged in the
// summary and beside their evidence, with both names.
func TestAuditReport_RosterFlags(t *testing.T) {
	r := SampleAuditReport(t)
	signed := r.Consents[0] // #42, in force
	signed.Signer.Active, signed.Signer.RemovedAt = false, time.Date(2026, 11, 15, 8, 0, 0, 0, time.UTC)
	withdrawn := r.Consents[1] // #43
	withdrawn.Signature.TypedName, withdrawn.Signature.NameDiffers = "Mickey Mouse", true
	text := MustLayoutText(t, MustAuditReport(t, r))
	for _, want := range []string{
		"Signer since removed 1 in force signed by a signer since removed from the roster",
		"Name differs 1 signed with a typed name that differs from the roster",
		"Flag signed by a signer since removed from the roster on 2026-11-15 08:00:00 UTC; valid",
		"Signer (from the roster) Ana Θεοδώρου",
		"Typed name Mickey Mouse",
		"Name check typed name differs from the roster",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
}

// TestAuditReport_EveryEvent checks that the table lists each event once,
// in order, among more events than fit a page many times over.
func TestAuditReport_EveryEvent(t *testing.T) {
	r := SampleAuditReport(t)
	const n = 20000
	r.Events = SampleEvents(r, n)
	pdf := MustAuditReport(t, r)
	text := MustPDFText(t, pdf)
	pages := checkPages(t, text, r.ID)
	if pages < n/70 {
		t.Errorf("%d pages for %d events", pages, n)
	}
	if !containsText(text, "Every event, oldest first (20,000)") {
		t.Error("text lacks the event count")
	}
	rest := text // each event is searched for after the one before it
	for i := 0; i < n; i++ {
		if i%13 == 5 {
			continue // the odd actor instead
		}
		ref := fmt.Sprintf("AMZ-%08d", 4000000+i*37)
		at := strings.Index(rest, ref)
		if at < 0 {
			if strings.Contains(text, ref) {
				t.Fatalf("event %d (%s) is out of order", i, ref)
			}
			t.Fatalf("event %d (%s) is missing", i, ref)
		}
		rest = rest[at+len(ref):]
	}
	if got, want := strings.Count(text, oddActor), (n+7)/13; got != want {
		t.Errorf("odd actor printed %d times, want %d", got, want)
	}
}

func TestAuditReport_Empty(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(r *doorledger.AuditReport)
		want   []string
	}{
		{"NoEvents", func(r *doorledger.AuditReport) { r.Events = nil }, []string{
			"NO UNLOCK EVENTS", "No door was opened, and no opening refused, by any device of this building from 2026-11-01 to 2026-11-21",
			"No unlock events from 2026-11-01 to 2026-11-21.", "No unlock event in this range was flagged", "Unlock events 0",
		}},
		{"OneDayNoEvents", func(r *doorledger.AuditReport) { r.From, r.To, r.Events = "2026-11-21", "2026-11-21", nil }, []string{
			"2026-11-21 to 2026-11-21, both included (1 day)", "NO UNLOCK EVENTS",
		}},
		{"NoDevices", func(r *doorledger.AuditReport) {
			r.Devices, r.Consents, r.Commands, r.Events = nil, nil, nil, nil
		}, []string{
			"NO DEVICES", "This building has no delivery-access devices registered in Doorledger", "This building has no devices.",
			"There are no devices, so no consents.", "No device was told to enable or disable in this range.",
		}},
		{"NoLogHead", func(r *doorledger.AuditReport) { r.LogHead, r.VerifierKey = nil, "" }, []string{
			"NO SIGNED HEAD", "portal audit verify -data DIR -key KEY",
		}},
		{"OverAYear", func(r *doorledger.AuditReport) {
			r.From, r.To = "2024-11-01", "2026-11-21"
			r.Events = SampleEvents(r, 2000)
		}, []string{
			"RANGE LONGER THAN A YEAR", "The range is 751 days long. The chart counts unlocks per week instead of per day",
			"Unlocks per week (building time)", "Busiest week", "108 bars from 2024-11-01 to 2026-11-21",
		}},
		{"Decades", func(r *doorledger.AuditReport) {
			r.From, r.To = "1990-01-01", "2026-11-21"
			r.Events = SampleEvents(r, 500)
		}, []string{"RANGE LONGER THAN A YEAR", "The range is 13,474 days long. The chart counts unlocks per 6 weeks"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := SampleAuditReport(t)
			tt.modify(r)
			text := MustLayoutText(t, MustAuditReport(t, r))
			checkPages(t, text, r.ID)
			for _, want := range tt.want {
				if !containsText(text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
		})
	}
}

func TestAuditReport_Refused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(r *doorledger.AuditReport)
		code   string // "" for an uncoded error
		want   string
	}{
		{"NoBuilding", func(r *doorledger.AuditReport) { r.Building = nil }, "", "building are required"},
		{"BadDate", func(r *doorledger.AuditReport) { r.From = "1 Nov 2026" }, doorledger.EINVALID, `start date "1 Nov 2026" is not a date`},
		{"Backwards", func(r *doorledger.AuditReport) { r.From, r.To = "2026-11-21", "2026-11-01" }, doorledger.EINVALID, "ends (2026-11-01) before it starts (2026-11-21)"},
		{"EventOutsideRange", func(r *doorledger.AuditReport) { r.To = "2026-11-20" }, "", "outside the report's range"},
		{"EventsFail", func(r *doorledger.AuditReport) {
			r.Events = func(yield func(*doorledger.UnlockEvent) error) error { return errors.New("disk on fire") }
		}, "", "disk on fire"},
		{"EventsChange", func(r *doorledger.AuditReport) {
			calls := 0
			events := r.Events
			r.Events = func(yield func(*doorledger.UnlockEvent) error) error {
				calls++
				if calls == 1 {
					return events(yield)
				}
				return SampleEvents(r, 299)(yield)
			}
		}, "", "the events changed while the report was printed"},
		{"TooMany", func(r *doorledger.AuditReport) {
			r.From, r.To = "2025-11-22", "2026-11-21"
			r.Events = func(yield func(*doorledger.UnlockEvent) error) error {
				ev := &doorledger.UnlockEvent{ID: 1, DeviceID: 3, EventID: "x", OccurredAt: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
					Method: "keypad", Result: doorledger.UnlockGranted}
				for range reports.MaxAuditEvents + 1 {
					if err := yield(ev); err != nil {
						return err
					}
				}
				t.Error("yielded every event: the report should have stopped at one more than it prints")
				return nil
			}
		}, doorledger.EINVALID, "From 2025-11-22 to 2026-11-21 the building has 250,001 unlock events; a report prints at most 250,000. Choose a shorter range, or export the history as CSV."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := SampleAuditReport(t)
			tt.modify(r)
			var buf bytes.Buffer
			err := reports.AuditReportPDF(&buf, r)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if got := doorledger.ErrorCode(err); tt.code != "" && got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
	if err := reports.AuditReportPDF(&bytes.Buffer{}, nil); err == nil {
		t.Error("nil report: no error")
	}
}

// TestAuditReport_BadStoredData checks that damaged or hostile stored data
// still gives a valid PDF that says what is wrong.
func TestAuditReport_BadStoredData(t *testing.T) {
	r := SampleAuditReport(t)
	r.Consents[0].Signature.SignaturePNG = []byte("<svg onload=alert(1)>")
	r.Consents[1].Signature.Terms += "\n4. The installer may also open the garage."
	r.Devices[2].Location = "Unit {nb} lobby \u202eevil\u202c 🌻"
	r.AuditEntries[0].Detail = strings.Repeat(`{"a":"(\\)"}`, 200)
	r.Commands[2].LastError = "timeout\r\nafter 30 s\x00"
	text := MustPDFText(t, MustAuditReport(t, r))
	checkPages(t, text, r.ID)
	for _, want := range []string{
		"The stored signature image cannot be shown: The signature must be a PNG image.",
		"WARNING: the stored terms do NOT hash to this SHA-256.",
		"Unit {nb} lobby evil \uFFFD",
		"last error: timeout after 30 s",
		"…",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
}

// TestAuditReport_Golden checks that output is reproducible byte for byte.
// Refresh with: go test ./reports -run Golden -update
func TestAuditReport_Golden(t *testing.T) {
	golden := filepath.Join("testdata", "audit.golden.pdf")
	got := MustAuditReport(t, SampleAuditReport(t))
	if again := MustAuditReport(t, SampleAuditReport(t)); !bytes.Equal(got, again) {
		t.Fatal("two runs with the same input differ")
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", golden, len(got))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(t.TempDir(), "audit.got.pdf")
		_ = os.WriteFile(out, got, 0o644)
		t.Errorf("report differs from %s (%d bytes, want %d); got is at %s; rerun with -update if the change is intended",
			golden, len(got), len(want), out)
	}
}

// TestAuditReport_Acknowledgements checks that the anomalies section says,
// per kind and device, who acknowledged the events, when (building time,
// the zone labelled) and with what note, and which events are still open;
// and the summary counts the open ones.
func TestAuditReport_Acknowledgements(t *testing.T) {
	r := SampleAuditReport(t)
	text := strings.Join(strings.Fields(MustLayoutText(t, MustAuditReport(t, r))), " ")
	loc := r.Building.Location()
	when := func(at time.Time) string { return at.In(loc).Format("2006-01-02 15:04:05 MST") }

	type ack struct {
		line  string
		kinds int
	}
	var anomalous, open, unregistered int
	var c5, a5 int     // device 5's without-consent events, and those acknowledged
	var open5 []string // … still open: "time (event id)"
	var acks4 []ack    // device 4's acknowledgements, one event each
	r.Events(func(ev *doorledger.UnlockEvent) error {
		if len(ev.Anomalies) == 0 {
			if ev.Acknowledged() {
				t.Errorf("sample event %s is acknowledged without a flag", ev.EventID)
			}
			return nil
		}
		anomalous++
		if !ev.Acknowledged() {
			open++
		}
		if ev.DeviceID == 0 {
			unregistered++
		}
		if ev.DeviceID == 5 && ev.HasAnomaly(doorledger.AnomalyWithoutConsent) {
			c5++
			if ev.Acknowledged() {
				a5++
			} else {
				open5 = append(open5, fmt.Sprintf("%s (event %s)", when(ev.OccurredAt), ev.EventID))
			}
		}
		if ev.DeviceID == 4 && ev.Acknowledged() {
			acks4 = append(acks4, ack{fmt.Sprintf("By %s at %s, for 1 event: “%s”", ackBy, when(ev.AcknowledgedAt), ackNote), len(ev.Anomalies)})
		}
		return nil
	})
	if a5 < 2 || len(open5) < 2 || len(acks4) != 3 || unregistered == 0 {
		t.Fatalf("the sample lost its shape: device 5 %d acknowledged, %d open; device 4 %d acknowledged; %d unregistered", a5, len(open5), len(acks4), unregistered)
	}
	for _, want := range []string{
		fmt.Sprintf("Anomalous events %d Still open %d (not acknowledged by a manager); %d acknowledged", anomalous, open, anomalous-open),
		"the managers' acknowledgements with who gave them, when and their note",
		// Device 5's without-consent events: one acknowledgement for several, the rest open.
		fmt.Sprintf("By %s at %s, for %d events: “%s”", bulkAckBy, when(bulkAckAt), a5, bulkAckNote),
		fmt.Sprintf("Still open %d of %d, the first at %s, the last at %s.", len(open5), c5, open5[0], open5[len(open5)-1]),
		"2026-11-12 11:20:00 CET", // building time, labelled
		// The unregistered device: nobody acknowledged it.
		fmt.Sprintf("Still open All %d events: no manager has acknowledged them.", unregistered),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	// Each of device 4's acknowledgements, with its Cyrillic, Greek and
	// Polish note, once in each group of its event (one per kind).
	for _, a := range acks4 {
		if got := strings.Count(text, a.line); got != a.kinds {
			t.Errorf("%q printed %d times, want %d (once per kind of its event)", a.line, got, a.kinds)
		}
	}

	// Every event acknowledged, and a single open one.
	at := time.Date(2026, 11, 5, 23, 30, 0, 0, time.UTC)
	r.Events = someEvents(
		doorledger.UnlockEvent{ID: 1, DeviceID: 3, EventID: "late-1", OccurredAt: at, Method: "keypad", Result: doorledger.UnlockGranted,
			Anomalies: []string{doorledger.AnomalyOutsideHours}, AcknowledgedAt: at.Add(10 * time.Hour), AcknowledgedBy: ackBy, AckNote: "Ναι, ήταν ο ταχυδρόμος."},
		doorledger.UnlockEvent{ID: 2, DeviceID: 5, EventID: "nc-1", OccurredAt: at.Add(time.Minute), Method: "keypad", Result: doorledger.UnlockGranted,
			Anomalies: []string{doorledger.AnomalyWithoutConsent}},
	)
	text = strings.Join(strings.Fields(MustLayoutText(t, MustAuditReport(t, r))), " ")
	for _, want := range []string{
		"Anomalous events 2 Still open 1 (not acknowledged by a manager); 1 acknowledged",
		"Acknowledged By zoe.nunez@example.org at 2026-11-06 10:30:00 CET: “Ναι, ήταν ο ταχυδρόμος.” Still open None: every one of these events was acknowledged.",
		"Still open This event: no manager has acknowledged it.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
}
