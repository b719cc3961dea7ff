package views

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
)

// ReportPath is the page of a report, with suffix ("", "/status", "/download").
func ReportPath(id, suffix string) string { return "/reports/" + url.PathEscape(id) + suffix }

// ReportFormatLabel is how a format reads on a page.
func ReportFormatLabel(format string) string {
	switch format {
	case doorledger.ReportPDF:
		return "PDF audit report"
	case doorledger.ReportCSV:
		return "CSV of the unlock events"
	case doorledger.ReportBundle:
		return "Evidence bundle (zip)"
	}
	return format
}

// ReportFormats are the formats offered, in the form's order.
var ReportFormats = []string{doorledger.ReportPDF, doorledger.ReportCSV, doorledger.ReportBundle}

func reportStatusLabel(r *doorledger.ReportRecord) string {
	switch r.Status {
	case doorledger.ReportQueued:
		return "queued"
	case doorledger.ReportRunning:
		if r.Total > 0 {
			return fmt.Sprintf("writing, %d%%", r.Done*100/r.Total)
		}
		return "writing"
	case doorledger.ReportDone:
		return "ready"
	case doorledger.ReportFailed:
		return "failed"
	}
	return r.Status
}

func reportStatusClass(s string) string {
	switch s {
	case doorledger.ReportDone:
		return "badge-ok"
	case doorledger.ReportFailed:
		return "badge-danger"
	}
	return "badge-warn"
}

// reportFinished reports whether a report's status no longer changes.
func reportFinished(r *doorledger.ReportRecord) bool {
	return r.Status == doorledger.ReportDone || r.Status == doorledger.ReportFailed
}

// ByteCount prints a size for people: "1.4 MB", "312 KB", "90 bytes".
func ByteCount(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", (n+1<<9)>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func reportRange(r *doorledger.ReportRecord) string { return r.From + " to " + r.To }

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

func int64s(n int64) string { return strconv.FormatInt(n, 10) }

// thousands writes n with comma separators: 250,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ReportsView is a building's reports page.
type ReportsView struct {
	Building *doorledger.Building
	Form     Form // format, from, to
	// Days is how many dates the form's range covers (0 when it is not a
	// valid range): over doorledger.ReportWarnDays, the page warns.
	Days    int
	Reports []*doorledger.ReportRecord // newest first
	// Subscribed says whether the user receives the building's monthly
	// report by mail.
	Subscribed bool
	// RangeDefault says which range the form holds by default ("This month
	// to date: …"); "" once the user chose one.
	RangeDefault string
}

// rangeCheck makes a date field ask the page again when it changes, so that
// the warning about a long range appears before the form is sent (htmx; the
// server-rendered page shows the same note without it).
func rangeCheck(buildingID int64) templ.Attributes {
	return templ.Attributes{
		"required":   true,
		"hx-get":     idPath("/buildings/%d/reports", buildingID),
		"hx-trigger": "change",
		"hx-include": "#from, #to",
		"hx-target":  "#range-note",
		"hx-select":  "#range-note",
		"hx-swap":    "outerHTML",
	}
}

// ReportView is one report's page.
type ReportView struct {
	Report      *doorledger.ReportRecord
	Loc         *time.Location // the building's time zone
	Days        int            // dates the range covers
	VerifierKey string         // verifies the log head's signature
	Origin      string         // the log's origin line
	// Witnesses is who vouched for the report's head, among the witnesses
	// configured now, counting cosignatures that arrived after it was
	// issued; nil when none are configured or it has no head.
	Witnesses *WitnessesVouched
}

// WitnessesVouched is which witnesses vouched for a report's head.
type WitnessesVouched struct {
	Summary  string // "vouched for by 1 of 2 witnesses (…); missing: …"
	OK       bool   // at least k vouched
	Vouchers []VoucherRow
}

// VoucherRow is one witness's answer for a head.
type VoucherRow struct {
	Label    string
	Vouched  bool
	Size     int64     // the head it cosigned (this one or a later one)
	SignedAt time.Time // when
	Problem  string    // why it does not vouch
}

// reportLead says first what the board wants to know of a report: the
// unlock events it holds, over which dates, the anomalies among them and the
// consents and devices it lists, counted when it was written; the rest of its
// content (commands, journal) is named after. A report finished before those
// counts were recorded names its content without them.
func reportLead(r *doorledger.ReportRecord) string {
	events := "no unlock events"
	if r.Total > 0 {
		events = counted(r.Total, "unlock event", "unlock events")
	}
	lead := "This report holds " + events + " from " + r.From + " to " + r.To
	h := r.Holds
	if h == nil {
		return lead + ", with the anomalies among them, every consent, device and command of the building, and its journal entries."
	}
	switch {
	case h.Anomalies == 0:
		lead += ", no anomalies"
	case h.OpenAnomalies == 0:
		lead += ", " + counted(h.Anomalies, "anomaly", "anomalies") + " (all acknowledged)"
	default:
		lead += ", " + counted(h.Anomalies, "anomaly", "anomalies") + " (" + thousands(int(h.OpenAnomalies)) + " still open when it was made)"
	}
	return lead + ", " + counted(h.Consents, "consent", "consents") + " and " + counted(h.Devices, "device", "devices") +
		", with every command of the building and its journal entries."
}

// counted is n and its noun: "1 consent", "1,204 consents".
func counted(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(int(n)) + " " + many
}

// VerifyView is the verify page, and what it found in the files uploaded.
type VerifyView struct {
	Form        Form // file, other: errors beside the fields
	Files       []VerifiedFile
	Consistency *ConsistencyView // two registered reports' heads compared
	VerifierKey string
	Origin      string // the log's origin line
}

// VerifiedFile is what the registry says of one uploaded file.
type VerifiedFile struct {
	Field  string // the form field it came in ("file", "other")
	Name   string // its name on the uploader's disk
	Kind   string // "PDF", "CSV", "zip"
	Size   int64
	SHA256 string
	Report *doorledger.ReportRecord // the report it is; nil when Doorledger did not issue it
	Loc    *time.Location           // Report's building's time zone
	// HeadProblem says why the report's signed head does not verify with the
	// portal's key ("" when it does, or when it has none).
	HeadProblem string
	// Witnesses is which of the witnesses the board entered vouched for
	// the report's head (nil when none were entered).
	Witnesses *WitnessesVouched
	// Claims is a report id written in the file when the file is not a
	// registered report; Claimed is that report, when the user may see it.
	Claims  string
	Claimed *doorledger.ReportRecord
}

// ConsistencyView is the comparison of two reports' log heads, Old the
// smaller.
type ConsistencyView struct {
	Old, New *doorledger.ReportRecord
	Same     bool   // both print the same head
	Problem  string // "" when New's log extends Old's
}
