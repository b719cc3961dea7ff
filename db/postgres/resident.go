package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/jackc/pgx/v5"
)

// ResidentService implements doorledger.ResidentService: the building's
// public device notice, residents' reports of unlisted devices (this file),
// and residents' subscriptions and notices (resident_notify.go).
//
// Residents have no account and no IP address of theirs is stored: their
// journal entries are by "resident", with no IP, and name no address.
type ResidentService struct {
	db *DB
	// BaseURL is the portal's public address, for the links in mail and on
	// the poster.
	BaseURL string
	// MaxOpenReports bounds a building's open resident reports; past it a
	// report is refused (ETOOMANY) until managers resolve some.
	MaxOpenReports int
	// MaxPendingSubscribers bounds a building's unconfirmed subscriptions
	// (each costs a mail to an address nobody has confirmed yet).
	MaxPendingSubscribers int

	lastPurge time.Time // of unconfirmed subscriptions and expired tokens; the job's own

	openings sync.Map // building id → *openingsCount: the notice's weekly count, kept a while
}

// openingsCount is a building's door openings of the last 7 days, as counted at.
type openingsCount struct {
	n  int
	at time.Time
}

// openingsMaxAge is how long a weekly count is reused. Counting walks an index
// entry per opening, the page's main cost for a busy building (see
// docs/benchmarks.md), and a count of the last 7 days a minute old is as true to a reader
// as the page itself, which browsers may keep for a minute.
const openingsMaxAge = time.Minute

// NewResidentService returns the SQLite resident service.
func NewResidentService(db *DB, baseURL string) *ResidentService {
	return &ResidentService{db: db, BaseURL: strings.TrimRight(baseURL, "/"), MaxOpenReports: 50, MaxPendingSubscribers: 200}
}

var _ doorledger.ResidentService = (*ResidentService)(nil)

// residentActor is who the journal says acted for a resident.
const residentActor = "resident"

// residentContext is ctx without the client's IP address: residents'
// journal entries record none.
func residentContext(ctx context.Context) context.Context {
	return doorledger.NewContextWithIP(ctx, "")
}

// validSlug reports whether s has the form of a notice slug (32 lower-case
// hex digits), so that anything else is not found without a query.
func validSlug(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

var noticeNotFound = doorledger.Errorf(doorledger.ENOTFOUND, "There is no such page. The building may have a new notice address: see the poster at the door.")

const noticeBySlugSQL = `SELECT n.building_id, b.name, b.timezone, n.contact, b.alert_board, b.privacy_profile
	FROM building_notices n JOIN buildings b ON b.id = n.building_id WHERE n.slug = $1`

// noticeBuilding is the building a slug names.
type noticeBuilding struct {
	id         int64
	name, tz   string
	contact    string
	alertBoard bool
	profile    string // the building's privacy profile
}

func findNoticeBuilding(ctx context.Context, q querier, slug string) (*noticeBuilding, error) {
	if !validSlug(slug) {
		return nil, noticeNotFound
	}
	var b noticeBuilding
	err := q.QueryRow(ctx, noticeBySlugSQL, slug).Scan(&b.id, &b.name, &b.tz, &b.contact, &b.alertBoard, &b.profile)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, noticeNotFound
	}
	return &b, err
}

// noticeDevicesSQL reads what the notice may print of a building's devices:
// no serial, location, installer, signer name or address, IP or courier data
// is selected, so none can reach the page.
const noticeDevicesSQL = `SELECT d.id, d.vendor, d.model, d.opens, d.desired_state, COALESCE(d.reported_state, ''),
	d.unconsented, d.retired, d.created_at, lc.requested_at,
	COALESCE(c.status, ''), c.requested_at, c.signed_at, c.expires_at, c.status_at, COALESCE(s.title, '')
	FROM devices d
	LEFT JOIN commands lc ON lc.device_id = d.id AND lc.version = d.desired_version
	LEFT JOIN consents c ON c.id = d.consent_id
	LEFT JOIN signers s ON s.id = c.signer_id
	WHERE d.building_id = $1 ORDER BY d.id`

// openingsSQL counts a building's door openings since a time, on the
// partial index of granted events (unlock_events_granted), without reading
// the events themselves.
const openingsSQL = `SELECT COUNT(*) FROM unlock_events WHERE building_id = $1 AND occurred_at >= $2 AND result = 'granted'`

func (s *ResidentService) PublicNotice(ctx context.Context, slug string) (*doorledger.PublicNotice, error) {
	b, err := findNoticeBuilding(ctx, s.db.pool, slug)
	if err != nil {
		return nil, err
	}
	now := s.db.Now().UTC()
	n := &doorledger.PublicNotice{BuildingName: b.name, Timezone: b.tz, Slug: slug, Contact: b.contact, Now: now}
	if b.profile != doorledger.PrivacyProfileNone {
		n.PrivacyNoticeURL = doorledger.NoticePath + slug + doorledger.TenantNoticeSuffix
	}
	rows, err := s.db.pool.Query(ctx, noticeDevicesSQL, b.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanNoticeDevice(rows, now)
		if err != nil {
			return nil, err
		}
		if d != nil {
			n.Devices = append(n.Devices, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// What can open the door first, then found ones, awaiting, disabled.
	slices.SortStableFunc(n.Devices, func(a, b *doorledger.NoticeDevice) int { return cmp.Compare(a.Rank(), b.Rank()) })
	if n.OpeningsLastWeek, err = s.weeklyOpenings(ctx, b.id, now); err != nil {
		return nil, err
	}
	return n, nil
}

// weeklyOpenings counts the building's door openings of the last 7 days, or
// reuses a count made less than openingsMaxAge ago.
func (s *ResidentService) weeklyOpenings(ctx context.Context, buildingID int64, now time.Time) (int, error) {
	if v, ok := s.openings.Load(buildingID); ok {
		if c := v.(*openingsCount); now.Sub(c.at) < openingsMaxAge && !now.Before(c.at) {
			return c.n, nil
		}
	}
	var n int
	if err := s.db.pool.QueryRow(ctx, openingsSQL, buildingID, ts(now.Add(-7*24*time.Hour))).Scan(&n); err != nil {
		return 0, err
	}
	s.openings.Store(buildingID, &openingsCount{n: n, at: now})
	return n, nil
}

// scanNoticeDevice reads a row of noticeDevicesSQL and says how the notice
// shows it, or nil when the notice leaves it out: disabled (or found) more
// than doorledger.NoticeRetention ago, and not able to open the door.
func scanNoticeDevice(row interface{ Scan(...any) error }, now time.Time) (*doorledger.NoticeDevice, error) {
	var r doorledger.NoticeRow
	d := &r.Device
	if err := row.Scan(&d.ID, &d.Vendor, &d.Model, &d.Opens, &r.Desired, &r.Reported, &r.Unconsented, &r.Retired, at(&r.Created),
		at(&r.Commanded), &r.Status, at(&r.Requested), at(&r.Signed), at(&r.Expires), at(&r.StatusAt), &r.SignerTitle); err != nil {
		return nil, err
	}
	return r.Notice(now), nil
}

func (s *ResidentService) ReportDevice(ctx context.Context, slug string, in doorledger.ResidentReportInput) (*doorledger.ResidentReport, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	ctx = residentContext(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	b, err := findNoticeBuilding(ctx, tx, slug)
	if err != nil {
		return nil, err
	}
	var open int
	// Reports sent at once count against one cap: they take turns per building.
	if err := tx.lockKey(ctx, "resident reports", b.id); err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM resident_reports WHERE building_id = $1 AND resolved_at IS NULL`, b.id).Scan(&open); err != nil {
		return nil, err
	}
	if open >= s.MaxOpenReports {
		msg := "This building already has many reports waiting for its manager, so no more can be taken here for now."
		if b.contact != "" {
			msg += " Please reach the manager directly: " + b.contact
		}
		return nil, doorledger.Errorf(doorledger.ETOOMANY, "%s", msg)
	}
	var photo []byte
	var photoType any
	if in.Photo != nil {
		photo, photoType = in.Photo.Data, in.Photo.ContentType
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO resident_reports (building_id, created_at, location, contact, photo, photo_type) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		b.id, ts(tx.now), in.Location, in.Contact, photo, photoType).Scan(&id); err != nil {
		return nil, fmt.Errorf("insert resident report: %w", err)
	}
	// The journal keeps no text of the resident's and no address: the report
	// row holds those, and the address goes once the report is resolved.
	if err := tx.auditAs(ctx, 0, residentActor, "resident.report", b.id, "resident_report", id,
		map[string]any{"photo": in.Photo != nil, "contact_given": in.Contact != ""}); err != nil {
		return nil, err
	}
	a := notice.ResidentReport(b.name, b.id, id, in, s.BaseURL)
	if err := tx.alertManagers(ctx, b.id, b.alertBoard, a.Subject, a.Body, ""); err != nil {
		return nil, err
	}
	r := &doorledger.ResidentReport{ID: id, BuildingID: b.id, CreatedAt: tx.now, Location: in.Location, HasPhoto: in.Photo != nil, Contact: in.Contact}
	return r, tx.Commit(ctx)
}

const residentReportColumns = `id, building_id, created_at, location, photo IS NOT NULL, contact, COALESCE(outcome, ''),
	COALESCE(found_device_id, 0), note, resolved_at, resolved_by`

func scanResidentReport(row interface{ Scan(...any) error }) (*doorledger.ResidentReport, error) {
	var r doorledger.ResidentReport
	if err := row.Scan(&r.ID, &r.BuildingID, at(&r.CreatedAt), &r.Location, &r.HasPhoto, &r.Contact, &r.Outcome,
		&r.FoundDeviceID, &r.Note, at(&r.ResolvedAt), &r.ResolvedBy); err != nil {
		return nil, err
	}
	return &r, nil
}

// residentReportsShown is how many resolved reports the building page lists
// after the open ones.
const residentReportsShown = 10

func (s *ResidentService) NoticeSettings(ctx context.Context, buildingID int64) (*doorledger.NoticeSettings, error) {
	if err := checkManage(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	n := &doorledger.NoticeSettings{BuildingID: buildingID}
	err := s.db.pool.QueryRow(ctx, `SELECT slug, slug_at, contact FROM building_notices WHERE building_id = $1`, buildingID).
		Scan(&n.Slug, at(&n.SlugAt), &n.Contact)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if n.Slug != "" {
		n.URL = s.BaseURL + doorledger.NoticePath + n.Slug
	}
	if err := s.db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM resident_subscribers WHERE building_id = $1 AND confirmed_at IS NOT NULL`,
		buildingID).Scan(&n.Subscribers); err != nil {
		return nil, err
	}
	if n.Reports, err = queryAll(ctx, s.db.pool, scanResidentReport, `SELECT `+residentReportColumns+` FROM resident_reports
		WHERE building_id = $1 AND resolved_at IS NULL ORDER BY id`, buildingID); err != nil {
		return nil, err
	}
	resolved, err := queryAll(ctx, s.db.pool, scanResidentReport, `SELECT `+residentReportColumns+` FROM resident_reports
		WHERE building_id = $1 AND resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $2`, buildingID, residentReportsShown)
	if err != nil {
		return nil, err
	}
	n.Reports = append(n.Reports, resolved...)
	return n, nil
}

func (s *ResidentService) RotateNoticeSlug(ctx context.Context, buildingID int64) (string, error) {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	var slug string
	if err := tx.QueryRow(ctx, `INSERT INTO building_notices (building_id, slug, slug_at) VALUES ($1, notice_slug(), $2)
		ON CONFLICT (building_id) DO UPDATE SET slug = excluded.slug, slug_at = excluded.slug_at RETURNING slug`,
		buildingID, ts(tx.now)).Scan(&slug); err != nil {
		return "", fmt.Errorf("rotate notice of building %d: %w", buildingID, err)
	}
	// The journal does not keep the address, old or new: it only says it changed.
	if err := tx.audit(ctx, "notice.rotate", buildingID, "building", buildingID, map[string]any{"posters_replaced": true}); err != nil {
		return "", err
	}
	return slug, tx.Commit(ctx)
}

func (s *ResidentService) SetNoticeContact(ctx context.Context, buildingID int64, contact string) error {
	contact, err := doorledger.ValidateNoticeContact(contact)
	if err != nil {
		return err
	}
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `INSERT INTO building_notices (building_id, slug, slug_at, contact) VALUES ($1, notice_slug(), $2, $3)
		ON CONFLICT (building_id) DO UPDATE SET contact = excluded.contact`, buildingID, ts(tx.now), contact); err != nil {
		return fmt.Errorf("set notice contact of building %d: %w", buildingID, err)
	}
	// The line is public (printed on the notice), so the journal may hold it.
	if err := tx.audit(ctx, "notice.contact", buildingID, "building", buildingID, map[string]any{"contact": contact}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *ResidentService) ResidentReportPhoto(ctx context.Context, buildingID, reportID int64) (*doorledger.Photo, error) {
	if err := checkManage(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	p := &doorledger.Photo{ID: reportID}
	err := s.db.pool.QueryRow(ctx, `SELECT photo, photo_type FROM resident_reports WHERE id = $1 AND building_id = $2 AND photo IS NOT NULL`,
		reportID, buildingID).Scan(&p.Data, &p.ContentType)
	if err != nil {
		return nil, notFound(err, "Photo not found.")
	}
	return p, nil
}

func (s *ResidentService) ResolveResidentReport(ctx context.Context, buildingID, reportID int64, r doorledger.ReportResolution) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := checkManage(ctx, tx, c, buildingID); err != nil {
		return err
	}
	var resolved sql.NullString
	if err := tx.QueryRow(ctx, `SELECT resolved_at FROM resident_reports WHERE id = $1 AND building_id = $2 FOR UPDATE`, reportID, buildingID).Scan(&resolved); err != nil {
		return notFound(err, "Report not found.")
	}
	if resolved.Valid {
		return doorledger.Errorf(doorledger.ECONFLICT, "This report was resolved already.")
	}
	var device any
	if r.Outcome == doorledger.ReportFoundDevice {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = $1 AND building_id = $2 AND origin = 'found'`,
			r.FoundDeviceID, buildingID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.",
				Fields: map[string]string{"found_device": "Choose a device recorded as found in this building."}}
		}
		device = r.FoundDeviceID
	}
	if _, err := tx.Exec(ctx, `UPDATE resident_reports SET outcome = $1, found_device_id = $2, note = $3, resolved_at = $4, resolved_by = $5, contact = ''
		WHERE id = $6 AND resolved_at IS NULL`, r.Outcome, device, r.Note, ts(tx.now), c.label(), reportID); err != nil {
		return fmt.Errorf("resolve resident report %d: %w", reportID, err)
	}
	if err := tx.audit(ctx, "resident.report_resolve", buildingID, "resident_report", reportID,
		map[string]any{"outcome": r.Outcome, "device": r.FoundDeviceID, "note": r.Note}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
