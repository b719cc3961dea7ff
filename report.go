package doorledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

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

	// Events yields the building's unlock events of the range (their
	// UnlockEvent.EffectiveAt from the start of From to the end of To,
	// building time: the time received for an event whose device clock was
	// flagged skewed), oldest first by that time, one at a time, so that a long history is never held in
	// memory. It is called more than once (to count, then to print) and must
	// yield the same events each time: read them from one snapshot, or bound
	// them by an id fixed when the report started. It stops and returns the
	// error when yield returns one. The event is not kept after yield
	// returns, so the same value may be reused. Nil yields nothing.
	Events func(yield func(*UnlockEvent) error) error

	AuditEntries []*AuditEntry // the building's journal in the range, oldest first

	// ResidentReports are the residents' reports of unlisted devices made in
	// the range, with what came of them (never the resident's contact).
	ResidentReports []*ResidentReport

	// PaperDisputes counts the building's paper forms per installer and
	// vendor, with those their signers disputed. Each consent
	// carries its paper form (Consent.Paper), its files' bytes in an
	// evidence bundle only.
	PaperDisputes []PaperDisputes
	// Privacy is the building's privacy profile and whether its checks hold.
	Privacy *PrivacyStatus
	// Redactions are the redactions (RedactAction) that name events of the
	// range, each with every event it names: the evidence bundle proves a
	// redacted event against its leaf as logged through them.
	Redactions []*UnlockRedaction

	LogHead     *LogHead // a head of the verifiable log signed for the report; nil when there is none yet
	VerifierKey string   // the key that verifies LogHead's signature (LogService.VerifierKey)

	// Witnessed is the latest checkpoint of at most LogHead's size that met
	// the witness policy when the report was generated, with its
	// cosignatures and the witnesses configured then (its Head nil when
	// none met it; nil without a LogHead). WitnessProof proves that LogHead
	// extends it (nil when they are the same size). The report does not
	// wait for cosignatures: later ones show on its registry page.
	Witnessed    *WitnessedHead
	WitnessProof *LogConsistencyProof
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

// Report formats: the board's PDF, a CSV of the same unlock events, and the
// evidence bundle (a zip of the PDF, the consents with their signature images,
// the events, the commands and the audit entries with their inclusion proofs,
// and the verifier key) for a dispute, an insurer or the police.
const (
	ReportPDF    = "pdf"
	ReportCSV    = "csv"
	ReportBundle = "bundle"
)

// Report statuses (ReportRecord.Status).
const (
	ReportQueued  = "queued"
	ReportRunning = "running"
	ReportDone    = "done"
	ReportFailed  = "failed"
)

// MaxReportEvents bounds a report's unlock events: a longer range is refused
// with EINVALID naming the count, so that no request can hang the generator.
const MaxReportEvents = 250_000

// ReportWarnDays is the range past which the request page warns that the
// report will take a while (it is still allowed, and shows its progress).
const ReportWarnDays = 366

// ReportRecord is a report in the registry: every report the portal generates
// is registered with who asked for it, when, the SHA-256 of the file it
// produced and the log head it covers, so that a board member can later check
// that a file is one Doorledger issued and that it was not altered.
type ReportRecord struct {
	ID           string // e.g. "AR-7-20261122T093000Z-3f9a"; printed on every page
	BuildingID   int64
	BuildingName string
	Format       string // ReportPDF, ReportCSV, ReportBundle
	From, To     string // dates in the building's time zone, both included
	Monthly      bool   // generated for the boards' monthly subscription

	RequestedBy   int64  // user id; 0 for the system (monthly reports)
	RequestedName string // their email, or "system"
	RequestedAt   time.Time

	Status    string // ReportQueued … ReportFailed
	Done      int64  // progress: events written so far
	Total     int64  // events in the range (0 until counted)
	Error     string // why it failed, for people
	StartedAt time.Time
	DoneAt    time.Time

	SHA256   string  // hex of the file's bytes, once done
	Bytes    int64   // the file's size
	HeadSize int64   // the log head the report prints: its size …
	HeadRoot LogHash // … and root hash
	HeadNote string  // … and signed note

	// Holds is what the finished report holds, counted as it was written; nil
	// until it is done, and for reports generated before this was recorded.
	Holds *ReportHolds
}

// ReportHolds is what a finished report holds, for the board to read first.
type ReportHolds struct {
	Anomalies     int64 // unlock events flagged with an anomaly (the events are ReportRecord.Total)
	OpenAnomalies int64 // of those, not acknowledged when the report was made
	Consents      int64 // consents of the building's devices, every status
	Devices       int64 // the building's devices, retired ones included
}

// FileName is the name a download is offered under.
func (r *ReportRecord) FileName() string {
	ext := map[string]string{ReportPDF: ".pdf", ReportCSV: ".csv", ReportBundle: ".zip"}[r.Format]
	return r.ID + ext
}

// ReportRequest asks for a report of one building and a range of dates.
type ReportRequest struct {
	BuildingID int64
	Format     string
	From, To   string // 2006-01-02 in the building's time zone
}

// Validate trims the request and checks its format and its dates in the
// building's time zone loc, as AuditReport.Range reads them, at now; it
// returns the instants they cover. The end may not be after today: a report
// does not describe days still to come. Nor need it be, to hold an event a
// wrong device clock dated ahead: reports select events by their effective
// time, which is then the time received. EINVALID with a message per field.
func (req *ReportRequest) Validate(loc *time.Location, now time.Time) (start, end time.Time, err error) {
	req.Format, req.From, req.To = strings.TrimSpace(req.Format), strings.TrimSpace(req.From), strings.TrimSpace(req.To)
	v := Validation{}
	switch req.Format {
	case ReportPDF, ReportCSV, ReportBundle:
	default:
		v.Add("format", "Choose PDF, CSV or evidence bundle.")
	}
	f, errF := time.ParseInLocation("2006-01-02", req.From, loc)
	t, errT := time.ParseInLocation("2006-01-02", req.To, loc)
	if errF != nil {
		v.Add("from", "Use a date such as 2026-11-01.")
	}
	if errT != nil {
		v.Add("to", "Use a date such as 2026-11-30.")
	}
	if errF == nil && errT == nil {
		today := now.In(loc).Format("2006-01-02")
		switch {
		case t.Before(f):
			v.Add("to", "The end date must not be before the start date.")
		case req.To > today:
			v.Add("to", fmt.Sprintf("The end date must not be after today (%s in the building's time zone).", today))
		}
		r := AuditReport{Building: &Building{Timezone: loc.String()}, From: req.From, To: req.To}
		start, end, _ = r.Range()
	}
	return start, end, v.Err()
}

// CheckReportEvents refuses (EINVALID) a range from..to of n unlock events
// when n is more than max, the most one report holds, with a range length
// that would fit.
func CheckReportEvents(from, to string, n, max int64) error {
	if n <= max {
		return nil
	}
	days := (&AuditReport{From: from, To: to}).Days()
	fit := int64(days) * max / n
	if fit < 1 {
		fit = 1
	}
	return Errorf(EINVALID, "From %s to %s the building has %s unlock events, more than the %s one report can hold. "+
		"Choose a shorter range (about %d days or fewer) and request several reports.", from, to, thousands(n), thousands(max), fit)
}

// thousands writes n with comma separators: 250,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// NewReportID returns a readable, unique id: the building, the request's UTC
// time to the second and 16 random bits (storage retries a collision).
func NewReportID(buildingID int64, at time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("AR-%d-%s-%s", buildingID, at.UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]))
}

// ReportSHA256 normalizes a report's SHA-256 as typed or computed: EINVALID
// unless it is 64 hexadecimal digits.
func ReportSHA256(sum string) (string, error) {
	sum = strings.ToLower(strings.TrimSpace(sum))
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return sum, Errorf(EINVALID, "A SHA-256 is 64 hexadecimal digits.")
	}
	return sum, nil
}

// CheckReportResult checks what the generator says a finished report is:
// its file's SHA-256 (normalized and returned), its size and what it holds.
// EINVALID.
func CheckReportResult(sum string, size int64, holds ReportHolds) (string, error) {
	sum, err := ReportSHA256(sum)
	if err != nil {
		return sum, Errorf(EINVALID, "A report's SHA-256 is 64 hexadecimal digits (got %q).", sum)
	}
	if size <= 0 {
		return sum, Errorf(EINVALID, "A report's file is not empty (got %d bytes).", size)
	}
	if holds.Anomalies < 0 || holds.OpenAnomalies < 0 || holds.Consents < 0 || holds.Devices < 0 || holds.OpenAnomalies > holds.Anomalies {
		return sum, Errorf(EINVALID, "A report's counts start at 0, and its open anomalies are among its anomalies (got %+v).", holds)
	}
	return sum, nil
}

// ReportFailReason is the reason a failed report records: the generator's,
// trimmed and cut to 1,000 bytes, or a plain sentence when it gave none.
func ReportFailReason(reason string) string {
	if reason = strings.TrimSpace(reason); reason == "" {
		return "The report could not be made."
	} else if len(reason) > 1000 {
		return reason[:1000]
	}
	return reason
}

// ReportMonth is the calendar month before the one now falls in, in loc:
// what the boards' monthly report covers, as dates (both included) and the
// instants [start, end).
func ReportMonth(now time.Time, loc *time.Location) (from, to string, start, end time.Time) {
	local := now.In(loc)
	end = time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
	start = time.Date(local.Year(), local.Month()-1, 1, 0, 0, 0, 0, loc)
	return start.Format("2006-01-02"), end.AddDate(0, 0, -1).Format("2006-01-02"), start, end
}

// ReportService keeps the report registry, gathers reports from one
// consistent snapshot of the database and keeps the boards' monthly
// subscriptions. A building's admins, managers and board may request, read
// and download its reports; installers and users without a grant get
// ENOTFOUND, as for everything else of the building.
type ReportService interface {
	// RequestReport registers a queued report (EINVALID for a bad format or
	// range, or a range over MaxReportEvents events) and journals the request.
	RequestReport(ctx context.Context, req ReportRequest) (*ReportRecord, error)
	// FindReport returns a registered report. ENOTFOUND.
	FindReport(ctx context.Context, id string) (*ReportRecord, error)
	// FindReports lists a building's reports, newest first.
	FindReports(ctx context.Context, buildingID int64, limit int) ([]*ReportRecord, error)
	// FindReportBySHA256 returns the report whose file has this SHA-256 (hex),
	// among the buildings the caller may see. ENOTFOUND.
	FindReportBySHA256(ctx context.Context, sum string) (*ReportRecord, error)
	// ReportDownloaded journals a download of a finished report ("report downloaded").
	ReportDownloaded(ctx context.Context, id string) error

	// NextReport claims the oldest queued report for the generator (the
	// system), marking it running; nil when there is none.
	NextReport(ctx context.Context) (*ReportRecord, error)
	// GatherReport reads the report's data from one read snapshot, signs a
	// current log head for it, and calls fn with it while the snapshot is open
	// (AuditReport.Events is valid only during fn).
	GatherReport(ctx context.Context, id string, fn func(*AuditReport) error) error
	// ReportProgress records how many of total events have been written.
	ReportProgress(ctx context.Context, id string, done, total int64) error
	// FinishReport records the file's hash and size, the head it printed and
	// what it holds (EINVALID for a negative count, or more open anomalies than
	// anomalies), and for a monthly report mails its subscribers a link.
	FinishReport(ctx context.Context, id string, sha256 string, size int64, head *LogHead, holds ReportHolds) error
	// FailReport records why a report could not be made.
	FailReport(ctx context.Context, id string, reason string) error

	// Subscribe turns the caller's monthly report of a building on or off
	// (its board and managers).
	Subscribe(ctx context.Context, buildingID int64, on bool) error
	// Subscribed reports whether the caller receives the building's monthly report.
	Subscribed(ctx context.Context, buildingID int64) (bool, error)
	// QueueMonthlyReports queues last month's PDF for every building with a
	// subscriber whose month (in its time zone) has ended by now and has no
	// monthly report yet (the system's job). Returns how many it queued.
	QueueMonthlyReports(ctx context.Context, now time.Time) (int, error)
}
