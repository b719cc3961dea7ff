package views

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// UnlockTime prints an unlock's time to the second in loc, labelled with the
// zone's abbreviation: "2026-03-08 09:14:05 EDT".
func UnlockTime(t time.Time, loc *time.Location) string {
	return zoned(t, loc, "2006-01-02 15:04:05 MST")
}

// AnomalyLabel is how an anomaly kind reads on a badge: "after revocation".
func AnomalyLabel(kind string) string { return strings.ReplaceAll(kind, "_", " ") }

// UnlocksURL is the history of a building with the filter q (url.Values
// encoded, without a cursor), from the page after the cursor after ("" for
// the newest).
func UnlocksURL(buildingID int64, q, after string) string {
	u := idPath("/buildings/%d/unlocks", buildingID)
	v, _ := url.ParseQuery(q)
	if after != "" {
		v.Set("after", after)
	}
	if e := v.Encode(); e != "" {
		u += "?" + e
	}
	return u
}

func unlocksPath(buildingID int64, suffix, q string) string {
	u := idPath("/buildings/%d/unlocks", buildingID) + suffix
	if q != "" {
		u += "?" + q
	}
	return u
}

func resultClass(r doorledger.UnlockResult) string {
	if r == doorledger.UnlockGranted {
		return "badge-ok"
	}
	return "badge-warn"
}

func deviceName(d *doorledger.Device) string {
	name := strings.TrimSpace(d.Vendor + " " + d.Serial)
	if d.Location != "" {
		name += " (" + d.Location + ")"
	}
	return name
}

func timeTitle(e *doorledger.UnlockEvent) string {
	s := "device clock, " + e.OccurredAt.UTC().Format("2006-01-02 15:04:05 UTC")
	if !e.ReceivedAt.IsZero() {
		s += "; received by the portal " + e.ReceivedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if e.ClockSkewed() {
		s += "; the device's clock is flagged skewed, so the event is dated by the time received"
	}
	return s
}

func sourceLabel(s string) string {
	switch s {
	case doorledger.SourceMQTT:
		return "device"
	case doorledger.SourceHTTP:
		return "vendor cloud"
	case doorledger.SourceCSV:
		return "CSV import"
	}
	return s
}

// AckControls is what an events table needs to show what was done about
// each anomaly, and to offer managers the acknowledgement form beside each
// open one.
type AckControls struct {
	BuildingID int64
	CSRF       string
	CanManage  bool   // the form beside each open anomaly
	Back       string // the page a plain (no htmx) acknowledgement returns to
}

// AckPath is where an event's acknowledgement is posted.
func AckPath(buildingID, eventID int64) string {
	return fmt.Sprintf("/buildings/%d/anomalies/%d/ack", buildingID, eventID)
}

func ackID(e *doorledger.UnlockEvent) string { return "ack-" + strconv.FormatInt(e.ID, 10) }

// UnlockRowsView is one page of a building's history: the part of the page
// the live stream re-renders.
type UnlockRowsView struct {
	BuildingID int64
	Loc        *time.Location
	Events     []*doorledger.UnlockEvent
	Devices    map[int64]*doorledger.Device
	Query      string // the filter, url-encoded, without the cursor
	Next       string // the cursor of the next (older) page; "" on the last page
	Paged      bool   // a later page: offer the way back to the newest
	Ack        AckControls
	OpenOnly   bool // the filter shows open anomalies only: offer to acknowledge the page's at once
}

// openIDs are the ids of the events still open, in order.
func openIDs(events []*doorledger.UnlockEvent) []int64 {
	var ids []int64
	for _, e := range events {
		if e.OpenAnomaly() {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// AckAllPath is where several anomalies of a building are acknowledged at once.
func AckAllPath(buildingID int64) string {
	return fmt.Sprintf("/buildings/%d/anomalies/ack", buildingID)
}

// UnlocksView is the history page.
type UnlocksView struct {
	Building  *doorledger.Building
	Devices   []*doorledger.Device
	Filter    Form            // the filter as typed, and what is wrong with it
	Rows      *UnlockRowsView // nil when the filter cannot be used
	Live      bool            // the newest page: new events stream in
	CanManage bool
}

func (v UnlocksView) query() string {
	if v.Rows != nil {
		return v.Rows.Query
	}
	return ""
}

// UnlockSummary is the unlock part of a building's page (DeviceID 0) or of
// one device's page: the last days' chart and the latest (anomalous) events.
type UnlockSummary struct {
	Building *doorledger.Building
	DeviceID int64 // 0: the whole building
	Days     []doorledger.UnlockDay
	// Events are the building's latest open (unacknowledged) anomalies, or
	// the device's latest events.
	Events []*doorledger.UnlockEvent
	// OpenAnomalies counts the building's open anomalies, up to OpenMax (the
	// count stops there: "1000+").
	OpenAnomalies, OpenMax int
	CSRF                   string
	Devices                map[int64]*doorledger.Device
	LastUnlock             map[int64]*doorledger.UnlockEvent // by device (building page)
	Since                  string                            // the first day of the chart, 2006-01-02
	CanManage              bool
}

// ack offers the acknowledgement form to managers where the page gave the
// CSRF token for it (the building page does; elsewhere the state alone shows).
func (s UnlockSummary) ack(back string) AckControls {
	return AckControls{BuildingID: s.Building.ID, CSRF: s.CSRF, CanManage: s.CanManage && s.CSRF != "", Back: back}
}

// openCount prints a capped count: "1000+" when it reached max.
func openCount(n, max int) string {
	if max > 0 && n >= max {
		return strconv.Itoa(max) + "+"
	}
	return strconv.Itoa(n)
}

func openClass(n int) string {
	if n > 0 {
		return "badge-danger"
	}
	return "badge-ok"
}

func sortedDevices(m map[int64]*doorledger.Device) []*doorledger.Device {
	out := make([]*doorledger.Device, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *doorledger.Device) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ImportView is the import of a vendor's CSV export: the upload form, then
// the preview with the column mapping, then the errors if any.
type ImportView struct {
	Building *doorledger.Building
	Form     Form           // upload: its error; preview: the mapping and its errors by field (col_occurred_at, …)
	Preview  *ImportPreview // nil: the upload step
	Problems []ImportProblem
}

// ImportPreview is what the manager checks before importing.
type ImportPreview struct {
	Token    string // names the uploaded file held between the steps
	FileName string
	Size     int64
	Comma    string // as the file uses it: "," ";" or "tab"
	Header   []string
	Rows     [][]string
	Fields   []ImportField
}

// ImportField is one field of an unlock event the mapping assigns a column to.
type ImportField struct {
	Name, Label string
}

// ImportProblem is one thing wrong with the file, where ("line 14").
type ImportProblem struct {
	Where, Message string
}

func columnLabel(i int, h string) string {
	if h == "" {
		h = "(no name)"
	}
	return fmt.Sprintf("%d: %s", i+1, h)
}

func cell(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}
