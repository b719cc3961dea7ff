package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// ReportService implements doorledger.ReportService: the report registry, the
// gathering of a report's data from one read snapshot, the generator's queue
// and the boards' monthly subscriptions.
//
// People (a building's admins, managers and board) request, list, find and
// download reports; the generator, running as the system
// (doorledger.NewSystemContext), claims them (NextReport), gathers them
// (GatherReport), reports progress and finishes or fails them. A person
// calling a generator method gets EFORBIDDEN.
type ReportService struct {
	db   *DB
	logs *LogService // signs the head each report prints; nil: reports print none

	// BaseURL is the portal's public address, for the link in the monthly mail.
	BaseURL string
	// MaxEvents bounds the unlock events of one report (RequestReport refuses
	// a range with more); doorledger.MaxReportEvents unless a test lowers it.
	MaxEvents int64
}

// NewReportService returns the SQLite report service. logs signs the head
// every report prints (nil: none); baseURL is the portal's public address,
// for the links mailed to subscribers.
func NewReportService(db *DB, logs *LogService, baseURL string) *ReportService {
	return &ReportService{db: db, logs: logs, BaseURL: strings.TrimRight(baseURL, "/"), MaxEvents: doorledger.MaxReportEvents}
}

var _ doorledger.ReportService = (*ReportService)(nil)

const dateLayout = "2006-01-02"

const reportColumns = `r.id, r.building_id, b.name, r.format, r.from_date, r.to_date, r.monthly,
	r.requested_by, r.requested_name, r.requested_at, r.status, r.done, r.total, r.error, r.started_at, r.done_at,
	COALESCE(r.sha256, ''), r.bytes, r.head_size, r.head_root, r.head_note`

const reportFrom = ` FROM reports r JOIN buildings b ON b.id = r.building_id`

func scanReport(row interface{ Scan(...any) error }) (*doorledger.ReportRecord, error) {
	var r doorledger.ReportRecord
	var requested string
	var root []byte
	if err := row.Scan(&r.ID, &r.BuildingID, &r.BuildingName, &r.Format, &r.From, &r.To, &r.Monthly,
		&r.RequestedBy, &r.RequestedName, &requested, &r.Status, &r.Done, &r.Total, &r.Error, nullTime{&r.StartedAt}, nullTime{&r.DoneAt},
		&r.SHA256, &r.Bytes, &r.HeadSize, &root, &r.HeadNote); err != nil {
		return nil, err
	}
	r.RequestedAt = parseTime(requested)
	copy(r.HeadRoot[:], root)
	return &r, nil
}

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// requireGenerator lets in only the system: the generator's methods are not
// for people, admins included.
func requireGenerator(c caller) error {
	if c.system == "" {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Only the portal's report generator may do that.")
	}
	return nil
}

// findReport loads a report without access checks. ENOTFOUND.
func findReport(ctx context.Context, q querier, id string) (*doorledger.ReportRecord, error) {
	r, err := scanReport(q.QueryRowContext(ctx, `SELECT `+reportColumns+reportFrom+` WHERE r.id = ?`, id))
	return r, notFound(err, "Report not found.")
}

// checkReport loads a report the caller may read: its building's admins,
// managers and board. Anyone else, installers included, gets ENOTFOUND.
func checkReport(ctx context.Context, q querier, c caller, id string) (*doorledger.ReportRecord, error) {
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	r, err := findReport(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if _, err := checkUnlockRead(ctx, q, c, r.BuildingID); err != nil {
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Report not found.")
		}
		return nil, err
	}
	return r, nil
}

// newReportID returns a readable, unique id: the building, the request's UTC
// time to the second and 16 random bits (collisions are retried on insert).
func newReportID(buildingID int64, at time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("AR-%d-%s-%s", buildingID, at.UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]))
}

// errMonthExists says a monthly report of that building and month is registered already.
var errMonthExists = errors.New("monthly report exists")

// insertReport registers r as queued (or as failed, with r.Error), giving it
// a fresh id. errMonthExists for a second monthly report of the same month.
func (tx *Tx) insertReport(ctx context.Context, r *doorledger.ReportRecord) error {
	for try := 0; ; try++ {
		r.ID = newReportID(r.BuildingID, r.RequestedAt)
		_, err := tx.ExecContext(ctx, `INSERT INTO reports (id, building_id, format, from_date, to_date, monthly,
			requested_by, requested_name, requested_at, status, total, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.BuildingID, r.Format, r.From, r.To, r.Monthly, r.RequestedBy, r.RequestedName, formatTime(r.RequestedAt),
			r.Status, r.Total, r.Error)
		switch {
		case err == nil:
			return nil
		case isUniqueOn(err, "reports.id") && try < 5:
			continue // another report of the building in the same second drew the same suffix
		case isUniqueViolation(err) && r.Monthly:
			return errMonthExists
		}
		return fmt.Errorf("register report: %w", err)
	}
}

// reportRange checks a request's dates in the building's time zone, as
// AuditReport.Range reads them, and returns the instants they cover. The end
// may not be after today: a report does not describe days still to come.
// Nor need it be, to hold an event a wrong device clock dated ahead: reports
// select events by their effective time, which is then the time received.
func reportRange(v doorledger.Validation, from, to string, loc *time.Location, now time.Time) (start, end time.Time) {
	f, errF := time.ParseInLocation(dateLayout, from, loc)
	t, errT := time.ParseInLocation(dateLayout, to, loc)
	if errF != nil {
		v.Add("from", "Use a date such as 2026-11-01.")
	}
	if errT != nil {
		v.Add("to", "Use a date such as 2026-11-30.")
	}
	if errF != nil || errT != nil {
		return start, end
	}
	today := now.In(loc).Format(dateLayout)
	switch {
	case t.Before(f):
		v.Add("to", "The end date must not be before the start date.")
	case to > today:
		v.Add("to", fmt.Sprintf("The end date must not be after today (%s in the building's time zone).", today))
	}
	r := doorledger.AuditReport{Building: &doorledger.Building{Timezone: loc.String()}, From: from, To: to}
	start, end, _ = r.Range()
	return start, end
}

// countEvents counts the building's unlock events whose effective time is in
// [start, end): an index-only scan of unlock_events_building.
func countEvents(ctx context.Context, q querier, buildingID int64, start, end time.Time) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = ?1 AND effective_at >= ?2 AND effective_at < ?3`,
		buildingID, formatTime(start), formatTime(end)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unlock events: %w", err)
	}
	return n, nil
}

// tooManyEvents is the message for a range over the limit, with a range
// length that would fit.
func tooManyEvents(from, to string, days int, n, max int64) error {
	fit := int64(days) * max / n
	if fit < 1 {
		fit = 1
	}
	return doorledger.Errorf(doorledger.EINVALID, "From %s to %s the building has %s unlock events, more than the %s one report can hold. "+
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

func (s *ReportService) maxEvents() int64 {
	if s.MaxEvents <= 0 {
		return doorledger.MaxReportEvents
	}
	return s.MaxEvents
}

func (s *ReportService) RequestReport(ctx context.Context, req doorledger.ReportRequest) (*doorledger.ReportRecord, error) {
	c := callerFrom(ctx)
	loc, err := checkUnlockRead(ctx, s.db.read, c, req.BuildingID)
	if err != nil {
		return nil, err
	}
	req.Format, req.From, req.To = strings.TrimSpace(req.Format), strings.TrimSpace(req.From), strings.TrimSpace(req.To)
	v := doorledger.Validation{}
	switch req.Format {
	case doorledger.ReportPDF, doorledger.ReportCSV, doorledger.ReportBundle:
	default:
		v.Add("format", "Choose PDF, CSV or evidence bundle.")
	}
	start, end := reportRange(v, req.From, req.To, loc, s.db.Now())
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Counted on the read pool, before the write lock is taken.
	n, err := countEvents(ctx, s.db.read, req.BuildingID, start, end)
	if err != nil {
		return nil, err
	}
	if n > s.maxEvents() {
		days := (&doorledger.AuditReport{From: req.From, To: req.To}).Days()
		return nil, tooManyEvents(req.From, req.To, days, n, s.maxEvents())
	}

	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	r := &doorledger.ReportRecord{BuildingID: req.BuildingID, Format: req.Format, From: req.From, To: req.To,
		RequestedBy: c.id(), RequestedName: c.label(), RequestedAt: tx.now, Status: doorledger.ReportQueued, Total: n}
	if err := tx.insertReport(ctx, r); err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "report.request", r.BuildingID, "report", 0, map[string]any{
		"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "events": n}); err != nil {
		return nil, err
	}
	if r, err = findReport(ctx, tx, r.ID); err != nil {
		return nil, err
	}
	return r, tx.Commit()
}

func (s *ReportService) FindReport(ctx context.Context, id string) (*doorledger.ReportRecord, error) {
	return checkReport(ctx, s.db.read, callerFrom(ctx), id)
}

func (s *ReportService) FindReports(ctx context.Context, buildingID int64, limit int) ([]*doorledger.ReportRecord, error) {
	if _, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	return queryAll(ctx, s.db.read, scanReport, `SELECT `+reportColumns+reportFrom+`
		WHERE r.building_id = ? ORDER BY r.requested_at DESC, r.id DESC LIMIT ?`, buildingID, limit)
}

func (s *ReportService) FindReportBySHA256(ctx context.Context, sum string) (*doorledger.ReportRecord, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	sum = strings.ToLower(strings.TrimSpace(sum))
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "A SHA-256 is 64 hexadecimal digits.")
	}
	notIssued := doorledger.Errorf(doorledger.ENOTFOUND, "No report with this SHA-256 was issued for a building you can see.")
	if c.role() == doorledger.RoleInstaller {
		return nil, notIssued
	}
	query, args := `SELECT `+reportColumns+reportFrom+` WHERE r.sha256 = ? AND r.status = 'done'`, []any{sum}
	if !c.allBuildings() {
		query += ` AND r.building_id IN (SELECT building_id FROM grants WHERE user_id = ?)`
		args = append(args, c.user.ID)
	}
	r, err := scanReport(s.db.read.QueryRowContext(ctx, query+` ORDER BY r.requested_at, r.id LIMIT 1`, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notIssued
	}
	return r, err
}

func (s *ReportService) ReportDownloaded(ctx context.Context, id string) error {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := checkReport(ctx, tx, c, id)
	if err != nil {
		return err
	}
	if r.Status != doorledger.ReportDone {
		return doorledger.Errorf(doorledger.ECONFLICT, "Report %s is not ready yet.", r.ID)
	}
	if err := tx.audit(ctx, "report.download", r.BuildingID, "report", 0, map[string]any{
		"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "sha256": r.SHA256}); err != nil {
		return err
	}
	return tx.Commit()
}

// NextReport claims the oldest queued report in one statement on the single
// writer, so two generators never claim the same one.
func (s *ReportService) NextReport(ctx context.Context) (*doorledger.ReportRecord, error) {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var id string
	err = tx.QueryRowContext(ctx, `UPDATE reports SET status = 'running', started_at = ?, done = 0, error = ''
		WHERE id = (SELECT id FROM reports WHERE status = 'queued' ORDER BY requested_at, id LIMIT 1) RETURNING id`,
		formatTime(tx.now)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim a report: %w", err)
	}
	r, err := findReport(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return r, tx.Commit()
}

// RequeueInterrupted puts reports left running (by a portal that was killed
// while generating them) back in the queue, and returns how many. The
// generator calls it when it starts, before it claims anything.
func (s *ReportService) RequeueInterrupted(ctx context.Context) (int, error) {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return 0, err
	}
	res, err := s.db.write.ExecContext(ctx, `UPDATE reports SET status = 'queued', started_at = NULL, done = 0 WHERE status = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("requeue interrupted reports: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// GatherReport reads everything the report prints from one read transaction.
// The head is signed first, so it covers what the snapshot holds up to the
// sequencer's lag; the snapshot starts at the transaction's first read (WAL
// keeps it consistent while writers go on), so every list and both passes of
// Events agree with each other.
func (s *ReportService) GatherReport(ctx context.Context, id string, fn func(*doorledger.AuditReport) error) error {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return err
	}
	rec, err := findReport(ctx, s.db.read, id)
	if err != nil {
		return err
	}
	var head *doorledger.LogHead
	var vkey string
	if s.logs != nil {
		if head, err = s.logs.SignHead(ctx); doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			head = nil // the log is empty: the report says so
		} else if err != nil {
			return fmt.Errorf("report %s: %w", id, err)
		}
		vkey = s.logs.VerifierKey()
	}
	now := s.db.Now().UTC()

	tx, err := s.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("report %s: begin snapshot: %w", id, err)
	}
	defer tx.Rollback()
	b, err := findBuilding(ctx, tx, rec.BuildingID)
	if err != nil {
		return err
	}
	// "Generated by" names the person, with the address the registry keeps.
	by := rec.RequestedName
	if rec.RequestedBy != 0 {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = ?`, rec.RequestedBy).Scan(&name); err == nil && name != "" && name != by {
			by = name + " (" + by + ")"
		}
	}
	r := &doorledger.AuditReport{ID: rec.ID, Building: b, From: rec.From, To: rec.To,
		GeneratedAt: now.Truncate(time.Second), GeneratedBy: by, LogHead: head, VerifierKey: vkey}
	start, end, err := r.Range()
	if err != nil {
		return err
	}
	lo, hi := formatTime(start), formatTime(end)
	if r.Devices, err = queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (*doorledger.Device, error) { return scanDevice(row, now) },
		`SELECT `+deviceColumns+deviceFrom+` WHERE d.building_id = ? ORDER BY d.id`, b.ID); err != nil {
		return fmt.Errorf("report %s: devices: %w", id, err)
	}
	if r.Consents, err = queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.device_id IN (SELECT id FROM devices WHERE building_id = ?) ORDER BY c.id`, b.ID); err != nil {
		return fmt.Errorf("report %s: consents: %w", id, err)
	}
	for _, c := range r.Consents {
		if err := loadPaper(ctx, tx, c); err != nil {
			return fmt.Errorf("report %s: %w", id, err)
		}
		if c.Paper != nil && rec.Format == doorledger.ReportBundle {
			for i := range c.Paper.Files {
				f, err := paperFile(ctx, tx, c.ID, c.Paper.Files[i].ID)
				if err != nil {
					return fmt.Errorf("report %s: paper form of consent %d: %w", id, c.ID, err)
				}
				c.Paper.Files[i].Data = f.Data
			}
		}
	}
	if r.PaperDisputes, err = paperDisputes(ctx, tx, b.ID); err != nil {
		return fmt.Errorf("report %s: paper forms: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands cm
		WHERE cm.building_id = ?1 AND cm.requested_at >= ?2 AND cm.requested_at < ?3 ORDER BY cm.requested_at, cm.id`, b.ID, lo, hi)
	if err != nil {
		return fmt.Errorf("report %s: commands: %w", id, err)
	}
	if r.Commands, err = scanCommands(rows); err != nil {
		return fmt.Errorf("report %s: commands: %w", id, err)
	}
	if r.AuditEntries, err = queryAll(ctx, tx, scanAuditEntry, `SELECT `+auditColumns+` FROM audit_entries
		WHERE building_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY id`, b.ID, lo, hi); err != nil {
		return fmt.Errorf("report %s: journal: %w", id, err)
	}
	if r.ResidentReports, err = residentReportsIn(ctx, tx, b.ID, lo, hi); err != nil {
		return fmt.Errorf("report %s: resident reports: %w", id, err)
	}
	if r.Privacy, err = privacyStatus(ctx, tx, b.ID, now); err != nil {
		return fmt.Errorf("report %s: privacy profile: %w", id, err)
	}
	if r.Redactions, err = redactionsIn(ctx, tx, b.ID, lo, hi); err != nil {
		return fmt.Errorf("report %s: redactions: %w", id, err)
	}
	ev := &reportEvents{ctx: ctx, tx: tx, report: id, building: b.ID, lo: lo, hi: hi}
	r.Events = ev.walk
	defer ev.close()
	return fn(r)
}

// reportEvents yields a report's unlock events from its snapshot. The first
// walk reads the database and keeps a compact copy of each event (about 65
// bytes: 6.5 MB for 100,000 events, 16 MB at doorledger.MaxReportEvents);
// later walks, which the PDF (twice) and the evidence bundle (four times)
// make, replay that copy, so the database is read once. A first walk that
// stops early, or that would keep more than maxKeptEvents events or
// maxKeptBytes, keeps nothing, and the next walk reads the database again:
// both give the same events, since both read the same snapshot.
//
// Each event is read in 7 columns rather than History's 15 (the building is
// known; the texts of the event come joined, and the acknowledgement in one
// column that is NULL for most), and its times are parsed by a parser of
// the one layout the database writes: measured with BenchmarkReportEvents,
// see docs/benchmarks.md.
type reportEvents struct {
	ctx      context.Context
	tx       *sql.Tx
	report   string
	building int64
	lo, hi   string

	kept    []byte // the events of the first complete walk, encoded (appendEvent)
	n       int    // how many are kept
	done    bool   // a walk completed: kept holds every event
	tooMany bool   // the events are more than a copy may hold: every walk reads the database
	closed  bool   // GatherReport returned: the snapshot is gone
}

// Bounds of the copy a report keeps of its events (variables for tests).
var (
	maxKeptEvents = doorledger.MaxReportEvents
	maxKeptBytes  = 64 << 20
)

// reportEventColumns are what eventScanner reads, from unlock_events e
// and anomaly_acks a (unlockFrom). Unit separators (0x1F) join the texts:
// none can hold one (UnlockEvent.Validate and NormalizeAckNote refuse
// control characters), and a row whose texts do not split as they should is
// read again with History's columns (see walkDB).
const reportEventColumns = `e.id, COALESCE(e.device_id, 0), e.occurred_at, e.received_at, e.anomalies,
	e.device_ref || x'1f' || e.event_id || x'1f' || e.method || x'1f' || e.actor_ref || x'1f' || e.result || x'1f' || e.source,
	CASE WHEN a.event_id IS NULL THEN NULL ELSE a.acked_at || x'1f' || a.actor || x'1f' || a.note END`

func (r *reportEvents) walk(yield func(*doorledger.UnlockEvent) error) error {
	switch {
	case r.closed:
		return fmt.Errorf("report %s: unlock events read after the report's snapshot closed", r.report)
	case r.done:
		return r.replay(yield)
	}
	return r.walkDB(yield)
}

func (r *reportEvents) close() { r.closed, r.kept = true, nil }

// walkDB reads the events from the snapshot, keeping a copy when it can.
func (r *reportEvents) walkDB(yield func(*doorledger.UnlockEvent) error) error {
	rows, err := r.tx.QueryContext(r.ctx, `SELECT `+reportEventColumns+` FROM `+unlockFrom+`
		WHERE e.building_id = ?1 AND e.effective_at >= ?2 AND e.effective_at < ?3 ORDER BY e.effective_at, e.id`, r.building, r.lo, r.hi)
	if err != nil {
		return fmt.Errorf("report %s: unlock events: %w", r.report, err)
	}
	defer rows.Close()
	keep := !r.tooMany
	r.kept, r.n = r.kept[:0], 0
	var sc eventScanner
	sc.ev.BuildingID = r.building
	for rows.Next() {
		e, err := sc.scan(rows)
		if errors.Is(err, errSplit) {
			e, err = scanUnlock(r.tx.QueryRowContext(r.ctx, `SELECT `+unlockColumns+` FROM `+unlockFrom+` WHERE e.id = ?`, sc.ev.ID))
		}
		if err != nil {
			return fmt.Errorf("report %s: unlock event: %w", r.report, err)
		}
		if keep {
			if r.n >= maxKeptEvents || len(r.kept) >= maxKeptBytes {
				keep, r.kept, r.tooMany = false, nil, true
			} else {
				r.kept = appendEvent(r.kept, e)
				r.n++
			}
		}
		if err := yield(e); err != nil {
			r.kept = r.kept[:0]
			return err
		}
	}
	if err := rows.Err(); err != nil {
		r.kept = r.kept[:0]
		return fmt.Errorf("report %s: unlock events: %w", r.report, err)
	}
	r.done = keep
	return nil
}

// replay yields the kept events.
func (r *reportEvents) replay(yield func(*doorledger.UnlockEvent) error) error {
	var e doorledger.UnlockEvent
	e.BuildingID = r.building
	buf := r.kept
	for range r.n {
		var err error
		if buf, err = readEvent(buf, &e); err != nil {
			return fmt.Errorf("report %s: kept unlock events: %w", r.report, err)
		}
		if err := yield(&e); err != nil {
			return err
		}
	}
	return nil
}

// eventScanner scans reportEventColumns into one reused event.
type eventScanner struct {
	ev                 doorledger.UnlockEvent
	occurred, received string
	texts              string
	ack                sql.NullString
	bits               int64
}

// errSplit says a row's joined texts hold a separator of their own.
var errSplit = errors.New("the event's texts do not split")

func (sc *eventScanner) scan(rows *sql.Rows) (*doorledger.UnlockEvent, error) {
	e := &sc.ev
	if err := rows.Scan(&e.ID, &e.DeviceID, &sc.occurred, &sc.received, &sc.bits, &sc.texts, &sc.ack); err != nil {
		return nil, err
	}
	var f [6]string
	if !split(sc.texts, f[:]) {
		return nil, errSplit
	}
	e.DeviceRef, e.EventID, e.Method, e.ActorRef, e.Result, e.Source = f[0], f[1], f[2], f[3], doorledger.UnlockResult(f[4]), f[5]
	e.OccurredAt, e.ReceivedAt = parseDBTime(sc.occurred), parseDBTime(sc.received)
	e.Anomalies = kindsOf(sc.bits)
	e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = time.Time{}, "", ""
	if sc.ack.Valid {
		var a [3]string
		if !split(sc.ack.String, a[:]) {
			return nil, errSplit
		}
		e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = parseDBTime(a[0]), a[1], a[2]
	}
	return e, nil
}

// split cuts s at unit separators into exactly len(f) fields.
func split(s string, f []string) bool {
	for i := range len(f) - 1 {
		j := strings.IndexByte(s, 0x1f)
		if j < 0 {
			return false
		}
		f[i], s = s[:j], s[j+1:]
	}
	f[len(f)-1] = s
	return strings.IndexByte(s, 0x1f) < 0
}

// anomalyKindSets holds anomalyKinds of every combination of bits, so that
// scanning an event allocates none. Their capacity is their length: a
// caller appending to one gets a copy.
var anomalyKindSets = func() (sets [64][]string) {
	for bits := range sets {
		sets[bits] = slices.Clip(anomalyKinds(int64(bits)))
	}
	return sets
}()

func kindsOf(bits int64) []string {
	if bits >= 0 && bits < int64(len(anomalyKindSets)) {
		return anomalyKindSets[bits]
	}
	return anomalyKinds(bits)
}

// parseDBTime is parseTime, reading the layout formatTime writes
// (2006-01-02T15:04:05.000000Z) without time.Parse, which took a fifth of
// a report's event scan; anything else goes to parseTime.
func parseDBTime(s string) time.Time {
	if len(s) != len(timeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return parseTime(s)
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	us, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return parseTime(s) // what time.Parse makes of it
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC)
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Kept events are encoded as: flags (1: acknowledged, 2: no received time),
// the id, device id, occurred and received times (µs since the epoch, the
// received time as a difference) as varints, the anomaly bits, then the
// texts (device ref, event id, method, actor ref, result, source; when
// acknowledged, its time as a varint then who and the note), each a
// uvarint length and its bytes.
const (
	keptAcked      = 1
	keptNoReceived = 2
)

func appendEvent(b []byte, e *doorledger.UnlockEvent) []byte {
	var flags byte
	if e.Acknowledged() {
		flags |= keptAcked
	}
	if e.ReceivedAt.IsZero() {
		flags |= keptNoReceived
	}
	occurred := e.OccurredAt.UnixMicro()
	b = append(b, flags)
	b = binary.AppendVarint(b, e.ID)
	b = binary.AppendVarint(b, e.DeviceID)
	b = binary.AppendVarint(b, occurred)
	b = binary.AppendVarint(b, e.ReceivedAt.UnixMicro()-occurred)
	var bits int64
	for _, k := range e.Anomalies {
		bits |= anomalyBit(k)
	}
	b = binary.AppendUvarint(b, uint64(bits))
	for _, s := range [...]string{e.DeviceRef, e.EventID, e.Method, e.ActorRef, string(e.Result), e.Source} {
		b = appendText(b, s)
	}
	if flags&keptAcked != 0 {
		b = binary.AppendVarint(b, e.AcknowledgedAt.UnixMicro())
		b = appendText(appendText(b, e.AcknowledgedBy), e.AckNote)
	}
	return b
}

func appendText(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errKept = errors.New("damaged")

// readEvent decodes the event at the start of b into e and returns the rest.
func readEvent(b []byte, e *doorledger.UnlockEvent) ([]byte, error) {
	if len(b) == 0 {
		return nil, errKept
	}
	flags := b[0]
	b = b[1:]
	var nums [5]int64
	for i := range nums {
		var n int
		if i == 4 {
			u, m := binary.Uvarint(b)
			nums[i], n = int64(u), m
		} else {
			nums[i], n = binary.Varint(b)
		}
		if n <= 0 {
			return nil, errKept
		}
		b = b[n:]
	}
	e.ID, e.DeviceID = nums[0], nums[1]
	e.OccurredAt = time.UnixMicro(nums[2]).UTC()
	e.ReceivedAt = time.UnixMicro(nums[2] + nums[3]).UTC()
	if flags&keptNoReceived != 0 {
		e.ReceivedAt = time.Time{}
	}
	e.Anomalies = kindsOf(nums[4])
	var f [6]string
	for i := range f {
		var ok bool
		if f[i], b, ok = readText(b); !ok {
			return nil, errKept
		}
	}
	e.DeviceRef, e.EventID, e.Method, e.ActorRef, e.Result, e.Source = f[0], f[1], f[2], f[3], doorledger.UnlockResult(f[4]), f[5]
	e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = time.Time{}, "", ""
	if flags&keptAcked != 0 {
		at, n := binary.Varint(b)
		if n <= 0 {
			return nil, errKept
		}
		b = b[n:]
		e.AcknowledgedAt = time.UnixMicro(at).UTC()
		var ok1, ok2 bool
		e.AcknowledgedBy, b, ok1 = readText(b)
		e.AckNote, b, ok2 = readText(b)
		if !ok1 || !ok2 {
			return nil, errKept
		}
	}
	return b, nil
}

func readText(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return "", nil, false
	}
	return string(b[n : n+int(l)]), b[n+int(l):], true
}

// updateOpenReport applies set to a report that must be running (or, with
// queuedToo, queued), inside tx, and returns the report as it was before.
// ENOTFOUND, ECONFLICT.
func (tx *Tx) updateOpenReport(ctx context.Context, id string, queuedToo bool, set string, args ...any) (*doorledger.ReportRecord, error) {
	r, err := findReport(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if r.Status != doorledger.ReportRunning && !(queuedToo && r.Status == doorledger.ReportQueued) {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Report %s is %s, not running.", r.ID, r.Status)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE reports SET `+set+` WHERE id = ?`, append(args, id)...); err != nil {
		return nil, fmt.Errorf("update report %s: %w", id, err)
	}
	return r, nil
}

func (s *ReportService) ReportProgress(ctx context.Context, id string, done, total int64) error {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return err
	}
	if done < 0 || total < 0 {
		return doorledger.Errorf(doorledger.EINVALID, "Progress is counted from 0 (got %d of %d).", done, total)
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.updateOpenReport(ctx, id, false, `done = ?, total = ?`, done, total); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ReportService) FinishReport(ctx context.Context, id string, sum string, size int64, head *doorledger.LogHead) error {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return err
	}
	sum = strings.ToLower(strings.TrimSpace(sum))
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return doorledger.Errorf(doorledger.EINVALID, "A report's SHA-256 is 64 hexadecimal digits (got %q).", sum)
	}
	if size <= 0 {
		return doorledger.Errorf(doorledger.EINVALID, "A report's file is not empty (got %d bytes).", size)
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var hsize int64
	var root any
	var note string
	if head != nil {
		// The head must be one this log signed: the registry vouches for it.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_heads WHERE size = ? AND root = ?`, head.Size, head.Root[:]).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return doorledger.Errorf(doorledger.EINVALID, "The log head of size %d (root %s) is not one this portal signed.", head.Size, head.Root)
		}
		hsize, root, note = head.Size, head.Root[:], head.Note
	}
	r, err := tx.updateOpenReport(ctx, id, false, `status = 'done', done_at = ?, done = total, sha256 = ?, bytes = ?, head_size = ?, head_root = ?, head_note = ?`,
		formatTime(tx.now), sum, size, hsize, root, note)
	if err != nil {
		return err
	}
	detail := map[string]any{"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "sha256": sum, "bytes": size, "head_size": hsize}
	if head != nil {
		detail["head_root"] = head.Root.String()
	}
	if err := tx.audit(ctx, "report.generate", r.BuildingID, "report", 0, detail); err != nil {
		return err
	}
	if r.Monthly {
		r.SHA256 = sum
		if err := s.mailSubscribers(ctx, tx, r); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *ReportService) FailReport(ctx context.Context, id string, reason string) error {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return err
	}
	if reason = strings.TrimSpace(reason); reason == "" {
		reason = "The report could not be made."
	} else if len(reason) > 1000 {
		reason = reason[:1000]
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := tx.updateOpenReport(ctx, id, true, `status = 'failed', error = ?, done_at = ?`, reason, formatTime(tx.now))
	if err != nil {
		return err
	}
	if err := tx.audit(ctx, "report.fail", r.BuildingID, "report", 0, map[string]any{"report": r.ID, "reason": reason}); err != nil {
		return err
	}
	return tx.Commit()
}

// subscriberCond is true for a subscription s of a user u who still may
// receive the building's report: an enabled admin, or an enabled manager or
// board member with a grant on it.
const subscriberCond = `u.id = s.user_id AND u.disabled = 0 AND (u.role = 'admin' OR (u.role IN ('manager', 'board')
	AND EXISTS (SELECT 1 FROM grants g WHERE g.building_id = s.building_id AND g.user_id = s.user_id)))`

// mailSubscribers queues, in tx, one mail per subscriber of the building
// with the monthly report's link and hash.
func (s *ReportService) mailSubscribers(ctx context.Context, tx *Tx, r *doorledger.ReportRecord) error {
	to, err := queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (string, error) {
		var addr string
		return addr, row.Scan(&addr)
	}, `SELECT u.email FROM report_subscriptions s JOIN users u ON `+subscriberCond+` WHERE s.building_id = ? ORDER BY u.id`, r.BuildingID)
	if err != nil {
		return err
	}
	month := r.From
	if t, err := time.Parse(dateLayout, r.From); err == nil {
		month = t.Format("January 2006")
	}
	link := s.BaseURL + "/reports/" + r.ID
	subject := fmt.Sprintf("Monthly audit report: %s, %s", r.BuildingName, month)
	body := fmt.Sprintf("The audit report of %s for %s (%s to %s, building time) is ready.\n\n"+
		"Report:   %s\nSHA-256:  %s\nDownload: %s\n\n"+
		"The SHA-256 identifies the file: to check that a copy you hold is the one Doorledger issued and that it was not altered, "+
		"upload it on the portal's \"Verify a report\" page.\n\n"+
		"You receive this mail because you subscribed to the building's monthly report; you can turn it off on the building's reports page.\n",
		r.BuildingName, month, r.From, r.To, r.ID, r.SHA256, link)
	for _, addr := range to {
		if err := tx.queueMail(ctx, &doorledger.Message{To: addr, Subject: subject, Body: body, Kind: "report", BuildingID: r.BuildingID},
			"report:"+r.ID+":"+addr); err != nil {
			return err
		}
	}
	return nil
}

// checkSubscriber allows a person who reads the building's reports.
func checkSubscriber(ctx context.Context, q querier, c caller, buildingID int64) error {
	if _, err := checkUnlockRead(ctx, q, c, buildingID); err != nil {
		return err
	}
	if c.user == nil {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Only a person can subscribe to a report.")
	}
	return nil
}

func (s *ReportService) Subscribe(ctx context.Context, buildingID int64, on bool) error {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := checkSubscriber(ctx, tx, c, buildingID); err != nil {
		return err
	}
	var res sql.Result
	action := "report.subscribe"
	if on {
		res, err = tx.ExecContext(ctx, `INSERT INTO report_subscriptions (user_id, building_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			c.user.ID, buildingID, formatTime(tx.now))
	} else {
		action = "report.unsubscribe"
		res, err = tx.ExecContext(ctx, `DELETE FROM report_subscriptions WHERE user_id = ? AND building_id = ?`, c.user.ID, buildingID)
	}
	if err != nil {
		return fmt.Errorf("subscription: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // as asked already
	}
	if err := tx.audit(ctx, action, buildingID, "user", c.user.ID, map[string]any{"monthly": true}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ReportService) Subscribed(ctx context.Context, buildingID int64) (bool, error) {
	c := callerFrom(ctx)
	if err := checkSubscriber(ctx, s.db.read, c, buildingID); err != nil {
		return false, err
	}
	var on bool
	err := s.db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM report_subscriptions WHERE user_id = ? AND building_id = ?)`,
		c.user.ID, buildingID).Scan(&on)
	return on, err
}

// QueueMonthlyReports queues, for every building with a subscriber who may
// still receive it, the PDF of the last calendar month that has ended at now
// in the building's time zone, unless one is registered already (a unique
// index makes that hold across portals too). A month with more unlock events
// than a report holds is registered as failed, with the reason, so that it is
// visible and not retried every hour.
func (s *ReportService) QueueMonthlyReports(ctx context.Context, now time.Time) (int, error) {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return 0, err
	}
	type month struct {
		building int64
		from, to string
		events   int64
	}
	type building struct {
		id int64
		tz string
	}
	list, err := queryAll(ctx, s.db.read, func(row interface{ Scan(...any) error }) (building, error) {
		var b building
		return b, row.Scan(&b.id, &b.tz)
	}, `SELECT b.id, b.timezone FROM buildings b WHERE EXISTS (
		SELECT 1 FROM report_subscriptions s JOIN users u ON `+subscriberCond+` WHERE s.building_id = b.id) ORDER BY b.id`)
	if err != nil {
		return 0, fmt.Errorf("monthly reports: %w", err)
	}
	var due []month
	for _, b := range list {
		loc := location(b.tz)
		local := now.In(loc)
		end := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
		start := time.Date(local.Year(), local.Month()-1, 1, 0, 0, 0, 0, loc)
		m := month{building: b.id, from: start.Format(dateLayout), to: end.AddDate(0, 0, -1).Format(dateLayout)}
		var exists bool
		if err := s.db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM reports WHERE building_id = ? AND from_date = ? AND monthly = 1)`,
			b.id, m.from).Scan(&exists); err != nil {
			return 0, err
		} else if exists {
			continue
		}
		if m.events, err = countEvents(ctx, s.db.read, b.id, start, end); err != nil {
			return 0, err
		}
		due = append(due, m)
	}
	if len(due) == 0 {
		return 0, nil
	}

	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	queued := 0
	for _, m := range due {
		r := &doorledger.ReportRecord{BuildingID: m.building, Format: doorledger.ReportPDF, From: m.from, To: m.to, Monthly: true,
			RequestedName: "system", RequestedAt: tx.now, Status: doorledger.ReportQueued, Total: m.events}
		if m.events > s.maxEvents() {
			days := (&doorledger.AuditReport{From: m.from, To: m.to}).Days()
			r.Status, r.Error = doorledger.ReportFailed, doorledger.ErrorMessage(tooManyEvents(m.from, m.to, days, m.events, s.maxEvents()))
		}
		if err := tx.insertReport(ctx, r); errors.Is(err, errMonthExists) {
			continue // another portal queued it meanwhile
		} else if err != nil {
			return 0, err
		}
		if err := tx.audit(ctx, "report.request", r.BuildingID, "report", 0, map[string]any{
			"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "events": m.events, "monthly": true, "status": r.Status}); err != nil {
			return 0, err
		}
		if r.Status == doorledger.ReportQueued {
			queued++
		}
	}
	return queued, tx.Commit()
}
