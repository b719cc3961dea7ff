package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// ReportService implements doorledger.ReportService, as package sqlite's: the
// report registry, the gathering of a report's data from one read snapshot,
// the generator's queue and the boards' monthly subscriptions.
//
// People (a building's admins, managers and board) request, list, find and
// download reports; the generator, running as the system
// (doorledger.NewSystemContext), claims them (NextReport), gathers them
// (GatherReport), reports progress and finishes or fails them. A person
// calling a generator method gets EFORBIDDEN. Several instances may run
// generators at once: each queued report is claimed by one of them.
type ReportService struct {
	db   *DB
	logs *LogService // signs the head each report prints; nil: reports print none

	// BaseURL is the portal's public address, for the link in the monthly mail.
	BaseURL string
	// MaxEvents bounds the unlock events of one report (RequestReport refuses
	// a range with more); doorledger.MaxReportEvents unless a test lowers it.
	MaxEvents int64
}

// NewReportService returns the PostgreSQL report service. logs signs the
// head every report prints (nil: none); baseURL is the portal's public
// address, for the links mailed to subscribers.
func NewReportService(db *DB, logs *LogService, baseURL string) *ReportService {
	return &ReportService{db: db, logs: logs, BaseURL: strings.TrimRight(baseURL, "/"), MaxEvents: doorledger.MaxReportEvents}
}

var _ doorledger.ReportService = (*ReportService)(nil)

// reportColumns: the dates as text (2006-01-02), as the domain keeps them.
const reportColumns = `r.id, r.building_id, b.name, r.format, r.from_date::text, r.to_date::text, r.monthly,
	r.requested_by, r.requested_name, r.requested_at, r.status, r.done, r.total, r.error, r.started_at, r.done_at,
	COALESCE(r.sha256, ''), r.bytes, r.head_size, r.head_root, r.head_note,
	r.held_anomalies, r.held_open_anomalies, r.held_consents, r.held_devices`

const reportFrom = ` FROM reports r JOIN buildings b ON b.id = r.building_id`

func scanReport(row interface{ Scan(...any) error }) (*doorledger.ReportRecord, error) {
	var r doorledger.ReportRecord
	var root []byte
	var anomalies, open, consents, devices *int64
	if err := row.Scan(&r.ID, &r.BuildingID, &r.BuildingName, &r.Format, &r.From, &r.To, &r.Monthly,
		&r.RequestedBy, &r.RequestedName, at(&r.RequestedAt), &r.Status, &r.Done, &r.Total, &r.Error, at(&r.StartedAt), at(&r.DoneAt),
		&r.SHA256, &r.Bytes, &r.HeadSize, &root, &r.HeadNote, &anomalies, &open, &consents, &devices); err != nil {
		return nil, err
	}
	copy(r.HeadRoot[:], root)
	if r.Status == doorledger.ReportDone && anomalies != nil {
		r.Holds = &doorledger.ReportHolds{Anomalies: *anomalies, OpenAnomalies: deref(open),
			Consents: deref(consents), Devices: deref(devices)}
	}
	return &r, nil
}

func deref(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
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
	r, err := scanReport(q.QueryRow(ctx, `SELECT `+reportColumns+reportFrom+` WHERE r.id = $1`, id))
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
// Neither conflict fails the statement (ON CONFLICT DO NOTHING), so the
// transaction goes on as package sqlite's does.
func (tx *Tx) insertReport(ctx context.Context, r *doorledger.ReportRecord) error {
	for try := 0; ; try++ {
		r.ID = doorledger.NewReportID(r.BuildingID, r.RequestedAt)
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO reports (id, building_id, format, from_date, to_date, monthly,
			requested_by, requested_name, requested_at, status, total, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT DO NOTHING RETURNING id`,
			r.ID, r.BuildingID, r.Format, r.From, r.To, r.Monthly, r.RequestedBy, r.RequestedName, r.RequestedAt,
			r.Status, r.Total, r.Error).Scan(&id)
		if err == nil {
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("register report: %w", err)
		}
		if r.Monthly {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM reports WHERE building_id = $1 AND from_date = $2 AND monthly)`,
				r.BuildingID, r.From).Scan(&exists); err != nil {
				return fmt.Errorf("register report: %w", err)
			} else if exists {
				return errMonthExists
			}
		}
		if try >= 5 {
			return fmt.Errorf("register report: the id %s is taken", r.ID)
		}
		// Another report of the building in the same second drew the same suffix.
	}
}

// countEvents counts the building's unlock events whose effective time is in
// [start, end): an index-only scan of the (building_id, effective_at, id) index.
func countEvents(ctx context.Context, q querier, buildingID int64, start, end time.Time) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = $1 AND effective_at >= $2 AND effective_at < $3`,
		buildingID, start, end).Scan(&n)
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
	loc, err := checkUnlockRead(ctx, s.db.pool, c, req.BuildingID)
	if err != nil {
		return nil, err
	}
	start, end, err := req.Validate(loc, s.db.Now())
	if err != nil {
		return nil, err
	}
	// Counted before the transaction, as package sqlite counts on its read pool.
	n, err := countEvents(ctx, s.db.pool, req.BuildingID, start, end)
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
	return r, tx.Commit(ctx)
}

func (s *ReportService) FindReport(ctx context.Context, id string) (*doorledger.ReportRecord, error) {
	return checkReport(ctx, s.db.pool, callerFrom(ctx), id)
}

func (s *ReportService) FindReports(ctx context.Context, buildingID int64, limit int) ([]*doorledger.ReportRecord, error) {
	if _, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	return queryAll(ctx, s.db.pool, scanReport, `SELECT `+reportColumns+reportFrom+`
		WHERE r.building_id = $1 ORDER BY r.requested_at DESC, r.id COLLATE "C" DESC LIMIT $2`, buildingID, limit)
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
	query, args := `SELECT `+reportColumns+reportFrom+` WHERE r.sha256 = $1 AND r.status = 'done'`, []any{sum}
	if !c.allBuildings() {
		query += ` AND r.building_id IN (SELECT building_id FROM grants WHERE user_id = $2)`
		args = append(args, c.user.ID)
	}
	r, err := scanReport(s.db.pool.QueryRow(ctx, query+` ORDER BY r.requested_at, r.id COLLATE "C" LIMIT 1`, args...))
	if errors.Is(err, pgx.ErrNoRows) {
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
	return tx.Commit(ctx)
}

// NextReport claims the oldest queued report in one statement. Several
// instances' generators may ask at once: the queued row is taken FOR UPDATE
// SKIP LOCKED, so each claims a different one (or none), never the same.
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
	err = tx.QueryRow(ctx, `UPDATE reports SET status = 'running', started_at = $1, done = 0, error = ''
		WHERE id = (SELECT id FROM reports WHERE status = 'queued' ORDER BY requested_at, id COLLATE "C" LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id`, tx.now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim a report: %w", err)
	}
	r, err := findReport(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return r, tx.Commit(ctx)
}

// RequeueInterrupted puts reports left running (by a portal that was killed
// while generating them) back in the queue, and returns how many. The
// generator calls it when it starts, before it claims anything.
func (s *ReportService) RequeueInterrupted(ctx context.Context) (int, error) {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return 0, err
	}
	tag, err := s.db.pool.Exec(ctx, `UPDATE reports SET status = 'queued', started_at = NULL, done = 0 WHERE status = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("requeue interrupted reports: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// updateOpenReport applies set (its parameters from $1, the id last) to a
// report that must be running (or, with queuedToo, queued), inside tx, and
// returns the report as it was before. The row is locked first, so a
// concurrent finish, failure or requeue waits and then sees the new status.
// ENOTFOUND, ECONFLICT.
func (tx *Tx) updateOpenReport(ctx context.Context, id string, queuedToo bool, set string, args ...any) (*doorledger.ReportRecord, error) {
	r, err := scanReport(tx.QueryRow(ctx, `SELECT `+reportColumns+reportFrom+` WHERE r.id = $1 FOR UPDATE OF r`, id))
	if err != nil {
		return nil, notFound(err, "Report not found.")
	}
	if r.Status != doorledger.ReportRunning && !(queuedToo && r.Status == doorledger.ReportQueued) {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Report %s is %s, not running.", r.ID, r.Status)
	}
	if _, err := tx.Exec(ctx, `UPDATE reports SET `+set+` WHERE id = $`+strconv.Itoa(len(args)+1), append(args, id)...); err != nil {
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
	if _, err := tx.updateOpenReport(ctx, id, false, `done = $1, total = $2`, done, total); err != nil {
		return err
	}
	return tx.Commit(ctx)
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
	var root []byte
	var note string
	if head != nil {
		// The head must be one this log signed: the registry vouches for it.
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM log_heads WHERE size = $1 AND root = $2`, head.Size, head.Root[:]).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return doorledger.Errorf(doorledger.EINVALID, "The log head of size %d (root %s) is not one this portal signed.", head.Size, head.Root)
		}
		hsize, root, note = head.Size, head.Root[:], head.Note
	}
	r, err := tx.updateOpenReport(ctx, id, false, `status = 'done', done_at = $1, done = total, sha256 = $2, bytes = $3, head_size = $4, head_root = $5, head_note = $6,
		held_anomalies = $7, held_open_anomalies = $8, held_consents = $9, held_devices = $10`,
		tx.now, sum, size, hsize, root, note,
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
	return tx.Commit(ctx)
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
	r, err := tx.updateOpenReport(ctx, id, true, `status = 'failed', error = $1, done_at = $2`, reason, tx.now)
	if err != nil {
		return err
	}
	if err := tx.audit(ctx, "report.fail", r.BuildingID, "report", 0, map[string]any{"report": r.ID, "reason": reason}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
