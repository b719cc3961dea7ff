package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

const reportColumns = `r.id, r.building_id, b.name, r.format, r.from_date, r.to_date, r.monthly,
	r.requested_by, r.requested_name, r.requested_at, r.status, r.done, r.total, r.error, r.started_at, r.done_at,
	COALESCE(r.sha256, ''), r.bytes, r.head_size, r.head_root, r.head_note,
	r.held_anomalies, r.held_open_anomalies, r.held_consents, r.held_devices`

const reportFrom = ` FROM reports r JOIN buildings b ON b.id = r.building_id`

func scanReport(row interface{ Scan(...any) error }) (*doorledger.ReportRecord, error) {
	var r doorledger.ReportRecord
	var requested string
	var root []byte
	var anomalies, open, consents, devices sql.NullInt64
	if err := row.Scan(&r.ID, &r.BuildingID, &r.BuildingName, &r.Format, &r.From, &r.To, &r.Monthly,
		&r.RequestedBy, &r.RequestedName, &requested, &r.Status, &r.Done, &r.Total, &r.Error, nullTime{&r.StartedAt}, nullTime{&r.DoneAt},
		&r.SHA256, &r.Bytes, &r.HeadSize, &root, &r.HeadNote, &anomalies, &open, &consents, &devices); err != nil {
		return nil, err
	}
	r.RequestedAt = parseTime(requested)
	copy(r.HeadRoot[:], root)
	if r.Status == doorledger.ReportDone && anomalies.Valid {
		r.Holds = &doorledger.ReportHolds{Anomalies: anomalies.Int64, OpenAnomalies: open.Int64,
			Consents: consents.Int64, Devices: devices.Int64}
	}
	return &r, nil
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

// errMonthExists says a monthly report of that building and month is registered already.
var errMonthExists = errors.New("monthly report exists")

// insertReport registers r as queued (or as failed, with r.Error), giving it
// a fresh id. errMonthExists for a second monthly report of the same month.
func (tx *Tx) insertReport(ctx context.Context, r *doorledger.ReportRecord) error {
	for try := 0; ; try++ {
		r.ID = doorledger.NewReportID(r.BuildingID, r.RequestedAt)
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
	start, end, err := req.Validate(loc, s.db.Now())
	if err != nil {
		return nil, err
	}
	// Counted on the read pool, before the write lock is taken.
	n, err := countEvents(ctx, s.db.read, req.BuildingID, start, end)
	if err != nil {
		return nil, err
	}
	if err := doorledger.CheckReportEvents(req.From, req.To, n, s.maxEvents()); err != nil {
		return nil, err
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
	sum, err := doorledger.ReportSHA256(sum)
	if err != nil {
		return nil, err
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

func (s *ReportService) FinishReport(ctx context.Context, id string, sum string, size int64, head *doorledger.LogHead, holds doorledger.ReportHolds) error {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return err
	}
	sum, err := doorledger.CheckReportResult(sum, size, holds)
	if err != nil {
		return err
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
	r, err := tx.updateOpenReport(ctx, id, false, `status = 'done', done_at = ?, done = total, sha256 = ?, bytes = ?, head_size = ?, head_root = ?, head_note = ?,
		held_anomalies = ?, held_open_anomalies = ?, held_consents = ?, held_devices = ?`,
		formatTime(tx.now), sum, size, hsize, root, note,
		holds.Anomalies, holds.OpenAnomalies, holds.Consents, holds.Devices)
	if err != nil {
		return err
	}
	detail := map[string]any{"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "sha256": sum, "bytes": size, "head_size": hsize,
		"anomalies": holds.Anomalies, "open_anomalies": holds.OpenAnomalies, "consents": holds.Consents, "devices": holds.Devices}
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
	reason = doorledger.ReportFailReason(reason)
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
