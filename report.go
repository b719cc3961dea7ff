package doorledger

import "time"

// AuditReport is what a building's audit report prints: the building's
// devices, their consents with the evidence, the commands sent to them, every
// unlock event and journal entry of a range of dates, and a signed head of the
// verifiable log. It is plain data, gathered from one consistent snapshot by
// whoever asks for the report and printed by reports.AuditReportPDF, which
// counts the daily unlocks and the anomalies from Events itself, so the
// summary, the chart and the table can never disagree.
type AuditReport struct {
	ID          string    // printed on every page, e.g. "AR-7-20261122T093000Z"
	Building    *Building // with its roster
	From, To    string    // dates (2006-01-02) in the building's time zone, both included
	GeneratedAt time.Time // also the PDF's creation date: the same data and time give the same bytes
	GeneratedBy string    // who asked, e.g. their email

	Devices  []*Device  // the building's devices, retired ones included
	Consents []*Consent // every consent of those devices (linked by Consent.DeviceID), with its evidence
	Commands []*Command // enable/disable commands requested in the range, oldest first

	// Events yields the building's unlock events that occurred in the range
	// (OccurredAt from the start of From to the end of To, building time),
	// oldest first, one at a time, so that a long history is never held in
	// memory. It is called more than once (to count, then to print) and must
	// yield the same events each time: read them from one snapshot, or bound
	// them by an id fixed when the report started. It stops and returns the
	// error when yield returns one. The event is not kept after yield
	// returns, so the same value may be reused. Nil yields nothing.
	Events func(yield func(*UnlockEvent) error) error

	AuditEntries []*AuditEntry // the building's journal in the range, oldest first

	LogHead     *LogHead // a head of the verifiable log signed for the report; nil when there is none yet
	VerifierKey string   // the key that verifies LogHead's signature (LogService.VerifierKey)
}

// Range returns the instants the report covers: from the start of From up to
// (not including) the start of the day after To, in the building's time zone.
// EINVALID when a date does not parse or To is before From.
func (r *AuditReport) Range() (start, end time.Time, err error) {
	loc := time.UTC
	if r.Building != nil {
		loc = r.Building.Location()
	}
	from, err1 := time.ParseInLocation("2006-01-02", r.From, loc)
	to, err2 := time.ParseInLocation("2006-01-02", r.To, loc)
	switch {
	case err1 != nil:
		return start, end, Errorf(EINVALID, "The report's start date %q is not a date (2006-01-02).", r.From)
	case err2 != nil:
		return start, end, Errorf(EINVALID, "The report's end date %q is not a date (2006-01-02).", r.To)
	case to.Before(from):
		return start, end, Errorf(EINVALID, "The report's range ends (%s) before it starts (%s).", r.To, r.From)
	}
	return from, to.AddDate(0, 0, 1), nil
}

// Days is how many dates the range covers (both ends included), or 0 when it
// is not valid.
func (r *AuditReport) Days() int {
	if _, _, err := r.Range(); err != nil {
		return 0
	}
	from, _ := time.Parse("2006-01-02", r.From)
	to, _ := time.Parse("2006-01-02", r.To)
	return int(to.Sub(from).Hours()/24) + 1
}
