package doorledger

import (
	"strings"
	"testing"
	"time"
)

func TestReportRequestValidate(t *testing.T) {
	ny := Location("America/New_York")
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) // 30 November, 22:00 in New York
	for _, tc := range []struct {
		req    ReportRequest
		fields []string // refused
	}{
		{ReportRequest{Format: " pdf ", From: "2026-11-01", To: "2026-11-30"}, nil},
		{ReportRequest{Format: "doc", From: "2026-11-01", To: "2026-11-30"}, []string{"format"}},
		{ReportRequest{Format: "csv", From: "11/01/2026", To: "x"}, []string{"from", "to"}},
		{ReportRequest{Format: "csv", From: "2026-11-10", To: "2026-11-01"}, []string{"to"}},
		{ReportRequest{Format: "csv", From: "2026-11-01", To: "2026-12-01"}, []string{"to"}}, // tomorrow in New York
	} {
		req := tc.req
		start, end, err := req.Validate(ny, now)
		fields := ErrorFields(err)
		if len(fields) != len(tc.fields) {
			t.Errorf("%+v: Validate = %v, want messages on %v", tc.req, err, tc.fields)
		}
		for _, f := range tc.fields {
			if fields[f] == "" {
				t.Errorf("%+v: no message on %s (%v)", tc.req, f, err)
			}
		}
		if tc.fields == nil {
			if req.Format != "pdf" {
				t.Errorf("format not trimmed: %q", req.Format)
			}
			if want := time.Date(2026, 11, 1, 0, 0, 0, 0, ny); !start.Equal(want) || !end.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, ny)) {
				t.Errorf("range = %v - %v", start, end)
			}
		}
	}
}

func TestCheckReportEvents(t *testing.T) {
	if err := CheckReportEvents("2026-01-01", "2026-12-31", 250_000, 250_000); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	err := CheckReportEvents("2026-01-01", "2026-12-31", 1_000_000, 250_000)
	want := "From 2026-01-01 to 2026-12-31 the building has 1,000,000 unlock events, more than the 250,000 one report can hold. " +
		"Choose a shorter range (about 91 days or fewer) and request several reports."
	if ErrorCode(err) != EINVALID || ErrorMessage(err) != want {
		t.Errorf("over the limit: %v\nwant %s", err, want)
	}
	if got := thousands(-1234567); got != "-1,234,567" {
		t.Errorf("thousands = %s", got)
	}
}

func TestCheckReportResult(t *testing.T) {
	sum := strings.Repeat("AB", 32)
	if got, err := CheckReportResult(" "+sum+" ", 10, ReportHolds{Anomalies: 2, OpenAnomalies: 1}); err != nil || got != strings.ToLower(sum) {
		t.Errorf("CheckReportResult = %q, %v", got, err)
	}
	for _, tc := range []struct {
		sum   string
		size  int64
		holds ReportHolds
	}{
		{"abc", 10, ReportHolds{}},
		{sum, 0, ReportHolds{}},
		{sum, 10, ReportHolds{Anomalies: 1, OpenAnomalies: 2}},
		{sum, 10, ReportHolds{Devices: -1}},
	} {
		if _, err := CheckReportResult(tc.sum, tc.size, tc.holds); ErrorCode(err) != EINVALID {
			t.Errorf("CheckReportResult(%q, %d, %+v) = %v, want EINVALID", tc.sum, tc.size, tc.holds, err)
		}
	}
}

func TestReportMonth(t *testing.T) {
	ny := Location("America/New_York")
	from, to, start, end := ReportMonth(time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), ny) // 31 December in New York
	if from != "2025-11-01" || to != "2025-11-30" || !start.Equal(time.Date(2025, 11, 1, 0, 0, 0, 0, ny)) || !end.Equal(time.Date(2025, 12, 1, 0, 0, 0, 0, ny)) {
		t.Errorf("ReportMonth = %s %s %v %v", from, to, start, end)
	}
	if got := ReportFailReason("  "); got != "The report could not be made." {
		t.Errorf("ReportFailReason(blank) = %q", got)
	}
	if got := ReportFailReason(strings.Repeat("x", 1200)); len(got) != 1000 {
		t.Errorf("ReportFailReason(1200 bytes) is %d bytes", len(got))
	}
}
