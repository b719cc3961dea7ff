package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
	"github.com/doorledger/doorledger/internal/notice"
)

// DeviceService implements doorledger.DeviceService for people (it reads the
// caller from ctx) and doorledger.DeviceReports for transports, plus what the
// device controller needs: the desired states to publish at start-up, delivery
// bookkeeping and time-outs. Transports call without a user in ctx; the service
// labels what devices and the portal itself do ("device 12", "system").
type DeviceService struct {
	db *DB
	// BrokerHash, when set, also hashes each new secret in an external
	// broker's password-file format (devicectl.MosquittoHash), kept beside the
	// portal's own hash for MosquittoCredentials.
	BrokerHash func(secret string) (string, error)
	// Sessions, when set, ends a device's connections made with its old
	// secret once a new one is committed (the embedded broker).
	Sessions doorledger.DeviceSessions
	// SentFlushDelay is how long a delivery record (MarkSentMany) may wait for
	// a transaction of its device to carry it before it is written on its own.
	SentFlushDelay time.Duration

	sent    sentLog
	reports *groupcommit.Committer[doorledger.ReportedState, struct{}]
}

// NewDeviceService returns the SQLite device service.
func NewDeviceService(db *DB) *DeviceService {
	s := &DeviceService{db: db, SentFlushDelay: 50 * time.Millisecond}
	s.reports = groupcommit.New("report state", func() int { return maxReportGroup }, nil, s.writeReports)
	return s
}

var (
	_ doorledger.DeviceService = (*DeviceService)(nil)
	_ doorledger.DeviceReports = (*DeviceService)(nil)
)

// maxReasonLen bounds the reason typed for a command.
const maxReasonLen = 500

const deviceColumns = `d.id, d.building_id, d.vendor, d.model, d.serial, d.location, d.opens,
	COALESCE(d.installer_id, 0), COALESCE(d.consent_id, 0), COALESCE(c.status, ''), c.expires_at,
	d.transport, d.unconsented, d.retired, d.desired_state, d.desired_version, COALESCE(d.reported_state, ''),
	d.reported_version, d.last_seen_at, d.created_at, COALESCE(iu.name, ''), COALESCE(iu.company, ''), b.name,
	lc.requested_at, COALESCE(lc.status, '')`

// deviceFrom joins the consent, the installer, the building and the device's
// latest command (for "pending for 12 s" and "not confirmed").
const deviceFrom = ` FROM devices d LEFT JOIN consents c ON c.id = d.consent_id
	LEFT JOIN users iu ON iu.id = d.installer_id JOIN buildings b ON b.id = d.building_id
	LEFT JOIN commands lc ON lc.device_id = d.id AND lc.version = d.desired_version`

// scanDevice reads deviceColumns. A signed consent past its expiry is shown as
// lapsed even before the lapse job records it: it no longer permits enabling.
func scanDevice(row interface{ Scan(...any) error }, now time.Time) (*doorledger.Device, error) {
	var d doorledger.Device
	var expires, created time.Time
	if err := row.Scan(&d.ID, &d.BuildingID, &d.Vendor, &d.Model, &d.Serial, &d.Location, &d.Opens,
		&d.InstallerID, &d.ConsentID, &d.ConsentState, nullTime{&expires},
		&d.Transport, &d.Unconsented, &d.Retired, &d.DesiredState, &d.DesiredVersion, &d.ReportedState,
		&d.ReportedVersion, nullTime{&d.LastSeenAt}, nullTime{&created}, &d.Installer, &d.Company, &d.BuildingName,
		nullTime{&d.CommandAt}, &d.CommandStatus); err != nil {
		return nil, err
	}
	d.CreatedAt = created
	if d.ConsentState == doorledger.ConsentSigned && !expires.After(now) {
		d.ConsentState = doorledger.ConsentLapsed
	}
	return &d, nil
}

// deviceScope returns the condition on devices d (and its arguments) that
// limits a query to what the caller may see: every device for admins and the
// system; the devices of granted buildings for managers and boards; of those,
// only the ones they installed for installers.
func deviceScope(c caller) (string, []any, error) {
	if err := c.requireSignedIn(); err != nil {
		return "", nil, err
	}
	if c.allBuildings() {
		return "1 = 1", nil, nil
	}
	cond := `d.building_id IN (SELECT building_id FROM grants WHERE user_id = ?)`
	args := []any{c.user.ID}
	if c.role() == doorledger.RoleInstaller {
		cond += ` AND d.installer_id = ?`
		args = append(args, c.user.ID)
	}
	return cond, args, nil
}

// canManageDevices reports whether the caller's role may change devices (in
// the buildings it sees).
func canManageDevices(c caller) bool {
	r := c.role()
	return r == doorledger.RoleAdmin || r == doorledger.RoleManager
}

// findDevice loads a device the caller may see; ENOTFOUND otherwise. The
// query is prepared (one per scope: see deviceScope).
func findDevice(ctx context.Context, q rowQuerier, c caller, id int64, now time.Time) (*doorledger.Device, error) {
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	d, err := scanDevice(q.queryRowPrepared(ctx, findDeviceSQL(scope), append([]any{id}, args...)...), now)
	return d, notFound(err, "Device not found.")
}

func findDeviceSQL(scope string) string {
	return `SELECT ` + deviceColumns + deviceFrom + ` WHERE d.id = ? AND ` + scope
}

// manageDevice loads a device the caller may change: ENOTFOUND when the caller
// cannot see it, EFORBIDDEN when it can but may not change it.
func (tx *Tx) manageDevice(ctx context.Context, c caller, id int64) (*doorledger.Device, error) {
	d, err := findDevice(ctx, tx, c, id, tx.now)
	if err != nil {
		return nil, err
	}
	if !canManageDevices(c) {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only the building's managers may do that.")
	}
	return d, nil
}

// cleanReason normalizes the reason of a command. A control character in it
// is replaced, not refused: nothing stops a revoke but its length.
func cleanReason(reason string) (string, error) {
	return doorledger.NormalizeReason(doorledger.ScrubText(doorledger.NormalizeText(reason), true), maxReasonLen)
}

func (s *DeviceService) FindDeviceByID(ctx context.Context, id int64) (*doorledger.Device, error) {
	now := s.db.Now()
	d, err := findDevice(ctx, s.db.read, callerFrom(ctx), id, now)
	if err != nil {
		return nil, err
	}
	s.db.measureDevices(now, d)
	return d, nil
}

func (s *DeviceService) FindDevices(ctx context.Context, f doorledger.DeviceFilter) ([]*doorledger.Device, error) {
	c := callerFrom(ctx)
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	if f.BuildingID != 0 {
		if err := checkBuilding(ctx, s.db.read, c, f.BuildingID); err != nil {
			return nil, err
		}
	}
	where, fargs := deviceFilterWhere(f)
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+deviceColumns+deviceFrom+` WHERE `+scope+where+` ORDER BY d.building_id, d.id`, append(args, fargs...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := s.db.Now()
	var list []*doorledger.Device
	for rows.Next() {
		d, err := scanDevice(rows, now)
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	s.db.measureDevices(now, list...)
	return list, rows.Err()
}

// deviceFilterWhere turns f into " AND …" conditions on devices d.
func deviceFilterWhere(f doorledger.DeviceFilter) (string, []any) {
	var b strings.Builder
	var args []any
	if f.BuildingID != 0 {
		b.WriteString(` AND d.building_id = ?`)
		args = append(args, f.BuildingID)
	}
	if f.InstallerID != 0 {
		b.WriteString(` AND d.installer_id = ?`)
		args = append(args, f.InstallerID)
	}
	if v := strings.TrimSpace(f.Vendor); v != "" {
		b.WriteString(` AND d.vendor = ? COLLATE NOCASE`)
		args = append(args, v)
	}
	if f.ConsentID != 0 {
		b.WriteString(` AND d.consent_id = ?`)
		args = append(args, f.ConsentID)
	}
	return b.String(), args
}

func (s *DeviceService) RecordFoundDevice(ctx context.Context, buildingID int64, det doorledger.DeviceDetails) (*doorledger.Device, error) {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := checkManage(ctx, tx, c, buildingID); err != nil {
		return nil, err
	}
	if err := det.ValidateFound(); err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO devices (building_id, vendor, model, serial, location, opens, origin, unconsented, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 'found', 1, ?)`,
		buildingID, det.Vendor, det.Model, det.Serial, det.Location, det.Opens, formatTime(tx.now))
	if isUniqueViolation(err) {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"serial": "A device of this vendor with this serial number is already registered in this building."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert found device: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := tx.audit(ctx, "device.found", buildingID, "device", id, det); err != nil {
		return nil, err
	}
	var building string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM buildings WHERE id = ?`, buildingID).Scan(&building); err != nil {
		return nil, err
	}
	subject, body := notice.DeviceFoundAlert(c.label(), building, det, id)
	if err := tx.alertManagers(ctx, buildingID, true, subject, body, "device.found:"+itoa(id)); err != nil {
		return nil, err
	}
	d, err := findDevice(ctx, tx, c, id, tx.now)
	if err != nil {
		return nil, err
	}
	return d, tx.Commit()
}
