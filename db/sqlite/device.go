package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
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
	reports *groupCommitter[doorledger.ReportedState, struct{}]
}

// NewDeviceService returns the SQLite device service.
func NewDeviceService(db *DB) *DeviceService {
	s := &DeviceService{db: db, SentFlushDelay: 50 * time.Millisecond}
	s.reports = newGroupCommitter("report state", func() int { return maxReportGroup }, nil, s.writeReports)
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
	return findDevice(ctx, s.db.read, callerFrom(ctx), id, s.db.Now())
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

// validateFoundDevice checks what a manager knows of a device found in a panel:
// the vendor, serial and location are needed to tell it apart; model and door
// may be unknown.
func validateFoundDevice(d *doorledger.DeviceDetails) error {
	v := doorledger.Validation{}
	for _, f := range []struct {
		name, label string
		val         *string
		required    bool
	}{
		{"vendor", "the vendor", &d.Vendor, true}, {"model", "the model", &d.Model, false},
		{"serial", "the serial number", &d.Serial, true}, {"location", "where it was found", &d.Location, true},
		{"opens", "which door it opens", &d.Opens, false},
	} {
		*f.val = strings.TrimSpace(*f.val)
		if *f.val == "" && f.required {
			v.Add(f.name, "Enter "+f.label+".")
		} else if len(*f.val) > 300 {
			v.Add(f.name, "Keep this under 300 characters.")
		}
		doorledger.ValidateLine(v, f.name, *f.val)
	}
	return v.Err()
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
	if err := validateFoundDevice(&det); err != nil {
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
	if err := tx.alertManagers(ctx, buildingID, true, fmt.Sprintf("Unconsented device found at %s", building),
		fmt.Sprintf("%s recorded a device found without consent at %s: %s %s, serial %s, at %s.\n"+
			"It is registered as device %d, flagged unconsented and disabled. No signer has consented to it.\n",
			c.label(), building, det.Vendor, orUnknown(det.Model), det.Serial, det.Location, id), "device.found:"+itoa(id)); err != nil {
		return nil, err
	}
	d, err := findDevice(ctx, tx, c, id, tx.now)
	if err != nil {
		return nil, err
	}
	return d, tx.Commit()
}

func orUnknown(s string) string {
	if s == "" {
		return "(model unknown)"
	}
	return s
}

// IssueCredential creates or rotates the device's secret: 32 random bytes,
// base64url, returned once. Only its SHA-256 is stored: a 256-bit random
// secret cannot be guessed, so it needs no slow password hash. Once the new
// secret is committed, the device's connections (made with the old one) are
// ended through Sessions and that is journaled.
func (s *DeviceService) IssueCredential(ctx context.Context, deviceID int64) (string, error) {
	secret, buildingID, rotated, err := s.issueCredential(ctx, deviceID)
	if err != nil {
		return "", err
	}
	if rotated {
		if err := s.endSessions(ctx, buildingID, deviceID, "secret rotated"); err != nil {
			return "", err
		}
	}
	return secret, nil
}

// endSessions ends the device's connections (Sessions) after a change of its
// credential committed, and journals how many were ended, if any.
func (s *DeviceService) endSessions(ctx context.Context, buildingID, deviceID int64, reason string) error {
	if s.Sessions == nil {
		return nil
	}
	// The change is committed: finish even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	n := s.Sessions.DisconnectDevice(ctx, deviceID)
	if n == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.audit(ctx, "device.disconnect", buildingID, "device", deviceID, map[string]any{"reason": reason, "sessions": n}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DeviceService) issueCredential(ctx context.Context, deviceID int64) (secret string, buildingID int64, rotated bool, err error) {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer tx.Rollback()
	d, err := tx.manageDevice(ctx, c, deviceID)
	if err != nil {
		return "", 0, false, err
	}
	if d.Retired {
		return "", 0, false, doorledger.Errorf(doorledger.ECONFLICT, "This device is retired; it gets no credential.")
	}
	if _, err := tx.disableIfConsentEnded(ctx, deviceID); err != nil {
		return "", 0, false, err
	}
	var prev string
	if err := tx.QueryRowContext(ctx, `SELECT secret_hash FROM devices WHERE id = ?`, deviceID).Scan(&prev); err != nil {
		return "", 0, false, err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", 0, false, err
	}
	secret = base64.RawURLEncoding.EncodeToString(buf)
	brokerHash := ""
	if s.BrokerHash != nil {
		if brokerHash, err = s.BrokerHash(secret); err != nil {
			return "", 0, false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET secret_hash = ?, mosquitto_hash = ? WHERE id = ?`, secretHash(secret), brokerHash, deviceID); err != nil {
		return "", 0, false, fmt.Errorf("store credential of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.credential", d.BuildingID, "device", deviceID, map[string]any{"rotated": prev != ""}); err != nil {
		return "", 0, false, err
	}
	return secret, d.BuildingID, prev != "", tx.Commit()
}

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SetDesiredState enables or disables one device (the building's managers and
// admins). ENOTFOUND when the caller cannot see the device, EFORBIDDEN when it
// may only look, ECONFLICT to enable without an active consent or a retired device.
func (s *DeviceService) SetDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	reason, err := cleanReason(reason)
	if err != nil {
		return nil, err
	}
	c := callerFrom(ctx)
	stmts := commandWriteSQL
	if scope, _, err := deviceScope(c); err == nil {
		stmts = append(slices.Clip(stmts), findDeviceSQL(scope))
	}
	tx, err := s.db.BeginTx(ctx, stmts...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.manageDevice(ctx, c, deviceID); err != nil {
		return nil, err
	}
	cmd, err := tx.setDesiredState(ctx, deviceID, state, reason)
	if err != nil {
		return nil, err
	}
	return cmd, tx.Commit()
}

// DisableDevices disables, in one transaction, every device matching f in the
// caller's buildings: a building lockdown (f.BuildingID), or every device of one
// installer, vendor or consent in all the buildings the caller manages (admins:
// all). Retired devices are skipped unless still enabled. EINVALID for an empty
// filter, EFORBIDDEN for board members and installers, ENOTFOUND for a building
// the caller does not see.
func (s *DeviceService) DisableDevices(ctx context.Context, f doorledger.DeviceFilter, reason string) ([]*doorledger.Command, error) {
	reason, err := cleanReason(reason)
	if err != nil {
		return nil, err
	}
	if f.BuildingID == 0 && f.InstallerID == 0 && strings.TrimSpace(f.Vendor) == "" && f.ConsentID == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose a building, an installer or a vendor whose devices to disable.")
	}
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx, commandWriteSQL...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if f.BuildingID != 0 {
		if err := checkManage(ctx, tx, c, f.BuildingID); err != nil {
			return nil, err
		}
	} else if err := c.requireSignedIn(); err != nil {
		return nil, err
	} else if !canManageDevices(c) {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only managers may disable devices.")
	}
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	where, fargs := deviceFilterWhere(f)
	rows, err := tx.QueryContext(ctx, `SELECT d.id FROM devices d WHERE `+scope+where+
		` AND (d.retired = 0 OR d.desired_state = 'enabled') ORDER BY d.id`, append(args, fargs...)...)
	if err != nil {
		return nil, err
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, err
	}
	cmds := make([]*doorledger.Command, 0, len(ids))
	perBuilding := map[int64][]int64{}
	var order []int64
	for _, id := range ids {
		cmd, err := tx.setDesiredState(ctx, id, doorledger.StateDisabled, reason)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
		if _, ok := perBuilding[cmd.BuildingID]; !ok {
			order = append(order, cmd.BuildingID)
		}
		perBuilding[cmd.BuildingID] = append(perBuilding[cmd.BuildingID], cmd.ID)
	}
	// One entry per building says what the bulk action was; each device has its own.
	for _, b := range order {
		if err := tx.audit(ctx, "device.disable_many", b, "building", b, map[string]any{
			"building": f.BuildingID, "installer": f.InstallerID, "vendor": strings.TrimSpace(f.Vendor), "consent": f.ConsentID,
			"reason": reason, "commands": perBuilding[b]}); err != nil {
			return nil, err
		}
	}
	return cmds, tx.Commit()
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

const commandColumns = `cm.id, cm.device_id, cm.building_id, cm.state, cm.version, cm.reason, cm.requested_by, cm.requested_at,
	cm.sent_at, cm.attempts, cm.last_error, cm.confirmed_at, cm.refused_at, cm.status`

func scanCommands(rows *sql.Rows) ([]*doorledger.Command, error) {
	defer rows.Close()
	var list []*doorledger.Command
	for rows.Next() {
		var cm doorledger.Command
		if err := rows.Scan(&cm.ID, &cm.DeviceID, &cm.BuildingID, &cm.State, &cm.Version, &cm.Reason, &cm.RequestedBy,
			nullTime{&cm.RequestedAt}, nullTime{&cm.SentAt}, &cm.Attempts, &cm.LastError, nullTime{&cm.ConfirmedAt}, nullTime{&cm.RefusedAt}, &cm.Status); err != nil {
			return nil, err
		}
		list = append(list, &cm)
	}
	return list, rows.Err()
}

// FindCommands lists the commands of devices the caller may see, newest first.
// ENOTFOUND for a device or building the caller does not see.
func (s *DeviceService) FindCommands(ctx context.Context, f doorledger.CommandFilter) ([]*doorledger.Command, error) {
	c := callerFrom(ctx)
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	if f.DeviceID != 0 {
		if _, err := findDevice(ctx, s.db.read, c, f.DeviceID, s.db.Now()); err != nil {
			return nil, err
		}
		scope += ` AND cm.device_id = ?`
		args = append(args, f.DeviceID)
	}
	if f.BuildingID != 0 {
		if err := checkBuilding(ctx, s.db.read, c, f.BuildingID); err != nil {
			return nil, err
		}
		scope += ` AND cm.building_id = ?`
		args = append(args, f.BuildingID)
	}
	if f.Open {
		scope += ` AND cm.status IN ('pending', 'sent', 'not_confirmed', 'refused')`
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE `+scope+` ORDER BY cm.id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return scanCommands(rows)
}

// CommandProgress is what a lockdown page polls: of the given commands (those
// the caller may see; others are left out), how many the devices confirmed, and
// the rest with their status (pending, sent, not_confirmed, refused or superseded), so
// the page can say "confirmed of N" with N = confirmed + len(unconfirmed).
func (s *DeviceService) CommandProgress(ctx context.Context, commandIDs []int64) (confirmed int, unconfirmed []*doorledger.Command, err error) {
	c := callerFrom(ctx)
	scope, args, err := deviceScope(c)
	if err != nil {
		return 0, nil, err
	}
	if len(commandIDs) == 0 {
		return 0, nil, nil
	}
	ids, err := json.Marshal(commandIDs)
	if err != nil {
		return 0, nil, err
	}
	// One JSON parameter rather than one per id: a lockdown can hold more
	// commands than SQLite allows parameters.
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.id IN (SELECT value FROM json_each(?)) AND `+scope+` ORDER BY cm.id`, append([]any{string(ids)}, args...)...)
	if err != nil {
		return 0, nil, err
	}
	cmds, err := scanCommands(rows)
	if err != nil {
		return 0, nil, err
	}
	for _, cm := range cmds {
		if cm.Status == doorledger.CommandConfirmed {
			confirmed++
		} else {
			unconfirmed = append(unconfirmed, cm)
		}
	}
	return confirmed, unconfirmed, nil
}

// AuthenticateDevice checks a device's credential: EUNAUTHORIZED, alike, when
// the id is unknown, the secret empty or wrong, no credential was issued, or
// the device is retired. The SHA-256 comparison takes constant time.
func (s *DeviceService) AuthenticateDevice(ctx context.Context, deviceID int64, secret string) error {
	var stored string
	var retired bool
	err := s.db.read.QueryRowContext(ctx, `SELECT secret_hash, retired FROM devices WHERE id = ?`, deviceID).Scan(&stored, &retired)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("authenticate device %d: %w", deviceID, err)
	}
	found := err == nil
	want, derr := hex.DecodeString(stored)
	if derr != nil || len(want) != sha256.Size {
		want, found = make([]byte, sha256.Size), false // still compare, so timing says nothing
	}
	got := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(got[:], want) == 1
	if !found || retired || secret == "" || !match {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown device or wrong credential.")
	}
	return nil
}

// reportedDevice is what ReportState needs of a device, read in its transaction.
type reportedDevice struct {
	buildingID              int64
	building                string
	details                 doorledger.DeviceDetails
	retired, unconsented    bool
	desired, reported       doorledger.DeviceState
	desiredVer, reportedVer int64
}

// The statements of ReportState, prepared on the writer (reportWriteSQL).
const (
	reportedDeviceSQL = `SELECT d.building_id, b.name, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
		d.desired_state, d.desired_version, COALESCE(d.reported_state, ''), d.reported_version
		FROM devices d JOIN buildings b ON b.id = d.building_id WHERE d.id = ?`
	deviceSeenSQL     = `UPDATE devices SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`
	issuedStateSQL    = `SELECT state FROM commands WHERE device_id = ? AND version = ?`
	recordReportedSQL = `UPDATE devices SET reported_state = ?, reported_version = ?, reported_at = ?,
		last_seen_at = MAX(COALESCE(last_seen_at, ''), ?) WHERE id = ?`
	confirmCommandSQL = `UPDATE commands SET status = 'confirmed', confirmed_at = ?
		WHERE device_id = ? AND version = ? AND status IN ('pending', 'sent', 'not_confirmed', 'refused') RETURNING id, requested_at`
	// A confirmation the device goes back on is withdrawn: confirmed_at says
	// when the command was last confirmed, and the journal keeps each one.
	refuseCommandSQL = `UPDATE commands SET status = 'refused', refused_at = ?1, confirmed_at = NULL
		WHERE device_id = ?2 AND version = ?3 AND status IN ('pending', 'sent', 'not_confirmed', 'confirmed') RETURNING id, state, requested_at`
	desiredStateSQL = `SELECT desired_state FROM devices WHERE id = ?`
)

var reportWriteSQL = append([]string{reportedDeviceSQL, deviceSeenSQL, issuedStateSQL, recordReportedSQL, confirmCommandSQL, refuseCommandSQL,
	desiredStateSQL, markSentSQL, reportSavepointSQL, reportRollbackSQL, reportReleaseSQL}, commandWriteSQL...)

func (tx *Tx) reportedDevice(ctx context.Context, id int64) (*reportedDevice, error) {
	var d reportedDevice
	err := tx.queryRowPrepared(ctx, reportedDeviceSQL, id).
		Scan(&d.buildingID, &d.building, &d.details.Vendor, &d.details.Model, &d.details.Serial, &d.details.Location,
			&d.retired, &d.unconsented, &d.desired, &d.desiredVer, &d.reported, &d.reportedVer)
	if err != nil {
		return nil, notFound(err, "Device not found.")
	}
	return &d, nil
}

// disableIfConsentEnded disables a device that is still enabled although its
// consent no longer permits it (it expired and the lapse job has not run yet).
// The database refuses any change of such a row's desired state, consent or
// building that leaves it enabled, so the device paths call this before they
// write the device. It returns the command, or nil.
func (tx *Tx) disableIfConsentEnded(ctx context.Context, deviceID int64) (*doorledger.Command, error) {
	var desired doorledger.DeviceState
	if err := tx.queryRowPrepared(ctx, desiredStateSQL, deviceID).Scan(&desired); err != nil {
		return nil, notFound(err, "Device not found.")
	}
	if desired != doorledger.StateEnabled {
		return nil, nil
	}
	if ok, err := tx.consentActive(ctx, deviceID); err != nil || ok {
		return nil, err
	}
	return tx.setDesiredState(doorledger.NewSystemContext(ctx, "system"), deviceID, doorledger.StateDisabled, "its consent is no longer active")
}

func deviceLabel(id int64) string { return "device " + itoa(id) }

// ReportState records what a device says it applied, and commits before it
// returns. A report older than the one recorded (out of order) only counts as
// a sign of life, as does a repeat. A report of the desired version and state
// confirms its command; of the desired version in the other state, refuses it
// (refuseCommand: journaled and alerted at once). A version the portal never issued is suspicious: it is
// audited, not recorded as the device's state. A device that says it is
// enabled without an active consent, unless it is only behind a disable the
// portal already sent after enabling it under consent, is flagged unconsented,
// told to disable, and the building's managers and board are alerted.
// ENOTFOUND for an unknown device, EUNAUTHORIZED for a retired one, EINVALID
// for a malformed report.
//
// Reports are group-committed: one committer writes every report waiting
// when it is free in one transaction, each report in a savepoint of its own
// so that a refused one changes nothing, and answers each caller after the
// commit. A lone report is written at once; reports that arrive while a
// commit is under way (a lockdown's hundreds) share the next one. The
// delivery records MarkSentMany still holds for those devices are written in
// the same transaction, before the reports.
func (s *DeviceService) ReportState(ctx context.Context, r doorledger.ReportedState) error {
	if !r.State.Valid() || r.Version < 0 {
		return doorledger.Errorf(doorledger.EINVALID, "A report names enabled or disabled and a version of 0 or more.")
	}
	// If ctx ends first, the committer may still commit the report: the
	// device is not acknowledged, sends it again, and the repeat is a sign of
	// life only.
	_, err := s.reports.submit(ctx, r)
	return err
}

// ReportStats returns how many report transactions were committed and how
// many reports they carried (their ratio is the grouping achieved).
func (s *DeviceService) ReportStats() (groups, reports int64) { return s.reports.stats() }

// maxReportGroup bounds the reports of one transaction.
const maxReportGroup = 1000

// Savepoints isolate each report of a group.
const (
	reportSavepointSQL = `SAVEPOINT report`
	reportRollbackSQL  = `ROLLBACK TO report`
	reportReleaseSQL   = `RELEASE report`
)

// writeReports writes reqs in one transaction: each report's answer, or an
// error for the whole transaction (nothing of it committed).
func (s *DeviceService) writeReports(reqs []groupWork[doorledger.ReportedState]) (answers []groupAnswer[struct{}], err error) {
	ctx := context.Background() // the group's: no caller's cancellation ends it
	tx, err := s.db.BeginTx(ctx, reportWriteSQL...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Taken while this transaction holds the writer, so that no other
	// transaction writes them too; given back unless committed.
	var marks []sentMark
	for _, r := range reqs {
		marks = append(marks, s.sent.take(r.work.DeviceID)...)
	}
	defer func() {
		if err != nil {
			s.sent.restore(marks)
		}
	}()
	if err := tx.writeSent(ctx, marks); err != nil {
		return nil, err
	}
	answers = make([]groupAnswer[struct{}], len(reqs))
	for i, r := range reqs {
		pushes := len(tx.pushes)
		if _, err := tx.exec(ctx, reportSavepointSQL); err != nil {
			return nil, err
		}
		// The caller's values (its IP for the journal), not its cancellation.
		if answers[i].err = tx.reportState(context.WithoutCancel(r.ctx), r.work); answers[i].err != nil {
			if _, err := tx.exec(ctx, reportRollbackSQL); err != nil {
				return nil, fmt.Errorf("roll back a refused report: %w", err)
			}
			tx.pushes = tx.pushes[:pushes]
		}
		if _, err := tx.exec(ctx, reportReleaseSQL); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return answers, nil
}

// reportState is ReportState's work in tx, without the commit.
func (tx *Tx) reportState(ctx context.Context, r doorledger.ReportedState) error {
	label := deviceLabel(r.DeviceID)
	d, err := tx.reportedDevice(ctx, r.DeviceID)
	if err != nil {
		return err
	}
	if d.retired {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "This device is retired.")
	}
	if d.desired == doorledger.StateEnabled { // only an enabled device can be past its consent
		if cmd, err := tx.disableIfConsentEnded(ctx, r.DeviceID); err != nil {
			return err
		} else if cmd != nil {
			d.desired, d.desiredVer = cmd.State, cmd.Version
		}
	}
	now := formatTime(tx.now)
	seen := func() error {
		_, err := tx.exec(ctx, deviceSeenSQL, now, r.DeviceID, now)
		return err
	}
	if r.Version < d.reportedVer { // out of order: a newer report is recorded already
		return seen()
	}
	ahead := r.Version > d.desiredVer
	dup := r.State == d.reported && r.Version == d.reportedVer

	if r.State == doorledger.StateEnabled {
		active, err := tx.consentActive(ctx, r.DeviceID)
		if err != nil {
			return err
		}
		// Flagged and told to disable already: a repeat changes nothing (a
		// device that disobeys is a bad report below, not a new command each time).
		flagged := d.unconsented && d.desired == doorledger.StateDisabled && d.desiredVer > 0
		if !active && !flagged {
			// A device still on a version the portal enabled under consent is
			// only behind the disable that followed; that is not unconsented.
			var issued doorledger.DeviceState
			err := tx.queryRowPrepared(ctx, issuedStateSQL, r.DeviceID, r.Version).Scan(&issued)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			behind := !ahead && r.Version < d.desiredVer && d.desired == doorledger.StateDisabled && issued == doorledger.StateEnabled
			if !behind {
				cmd, err := tx.flagUnconsented(ctx, r, d, label)
				if err != nil {
					return err
				}
				d.desired, d.desiredVer, d.unconsented = cmd.State, cmd.Version, true
			}
		}
	}

	if ahead {
		if err := seen(); err != nil {
			return err
		}
		return tx.auditAs(ctx, 0, label, "device.bad_report", d.buildingID, "device", r.DeviceID, map[string]any{
			"problem": "version ahead of the desired version", "state": r.State, "version": r.Version, "desired_version": d.desiredVer})
	}
	if dup {
		return seen()
	}
	if _, err := tx.exec(ctx, recordReportedSQL, r.State, r.Version, now, now, r.DeviceID); err != nil {
		return fmt.Errorf("record report of device %d: %w", r.DeviceID, err)
	}
	if r.Version == d.desiredVer && r.Version > 0 {
		if r.State != d.desired {
			return tx.refuseCommand(ctx, r, d, label)
		}
		return tx.confirmCommand(ctx, r, d.buildingID, label)
	}
	return nil
}

// refuseCommand records that the device reported the command's version in
// the other state: it received the command and did not apply it. The command
// is refused (not confirmed, and no longer merely waiting), journaled as the
// device, and the building's managers are alerted now, not after the
// time-out. A repeat of the same report changes nothing (ReportState treats
// it as a sign of life); a device that confirmed and then reports the other
// state for the same version is refused again, and alerted again.
func (tx *Tx) refuseCommand(ctx context.Context, r doorledger.ReportedState, d *reportedDevice, label string) error {
	var id int64
	var requested string
	var state doorledger.DeviceState
	err := tx.queryRowPrepared(ctx, refuseCommandSQL, formatTime(tx.now), r.DeviceID, r.Version).Scan(&id, &state, &requested)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // refused already
	} else if err != nil {
		return fmt.Errorf("refuse command of device %d version %d: %w", r.DeviceID, r.Version, err)
	}
	if err := tx.auditAs(ctx, 0, label, "command.refused", d.buildingID, "command", id, map[string]any{
		"device": r.DeviceID, "version": r.Version, "desired_state": state, "reported_state": r.State,
		"after_ms": tx.now.Sub(parseTime(requested)).Milliseconds()}); err != nil {
		return err
	}
	risk := "Until it disables, couriers may still be able to open the door."
	if state == doorledger.StateEnabled {
		risk = "Until it enables, couriers cannot open the door with it."
	}
	det := d.details
	return tx.alertManagers(ctx, d.buildingID, false, fmt.Sprintf("Device %d REFUSED to %s at %s", r.DeviceID, verbOf(state), d.building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s received command %d (version %d), which told it to be %s, and reported that it is still %s.\n"+
			"%s Doorledger keeps sending the command. Check the device at the panel; if it does not obey, remove it or cut its power.\n",
			r.DeviceID, det.Vendor, orUnknown(det.Model), det.Serial, det.Location, d.building, id, r.Version, state,
			strings.ToUpper(string(r.State)), risk),
		"command.refused:"+itoa(id)+":"+formatTime(tx.now))
}

// verbOf is the verb of a command to state: "disable", "enable".
func verbOf(state doorledger.DeviceState) string {
	if state == doorledger.StateEnabled {
		return "enable"
	}
	return "disable"
}

// confirmCommand marks the command of the reported version confirmed, once.
func (tx *Tx) confirmCommand(ctx context.Context, r doorledger.ReportedState, buildingID int64, label string) error {
	var id int64
	var requested string
	err := tx.queryRowPrepared(ctx, confirmCommandSQL, formatTime(tx.now), r.DeviceID, r.Version).Scan(&id, &requested)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // confirmed already
	} else if err != nil {
		return fmt.Errorf("confirm command of device %d version %d: %w", r.DeviceID, r.Version, err)
	}
	return tx.auditAs(ctx, 0, label, "command.confirmed", buildingID, "command", id, map[string]any{
		"device": r.DeviceID, "state": r.State, "version": r.Version, "latency_ms": tx.now.Sub(parseTime(requested)).Milliseconds()})
}

// flagUnconsented marks a device that says it is enabled without an active
// consent, tells it to disable, and alerts the building's managers and board
// (one mail per incident).
func (tx *Tx) flagUnconsented(ctx context.Context, r doorledger.ReportedState, d *reportedDevice, label string) (*doorledger.Command, error) {
	cmd, err := tx.setDesiredState(doorledger.NewSystemContext(ctx, "system"), r.DeviceID, doorledger.StateDisabled,
		"reported enabled without an active consent")
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET unconsented = 1 WHERE id = ?`, r.DeviceID); err != nil {
		return nil, fmt.Errorf("flag device %d: %w", r.DeviceID, err)
	}
	if err := tx.auditAs(ctx, 0, label, "device.unconsented", d.buildingID, "device", r.DeviceID, map[string]any{
		"reported_state": r.State, "reported_version": r.Version, "command": cmd.ID}); err != nil {
		return nil, err
	}
	det := d.details
	return cmd, tx.alertManagers(ctx, d.buildingID, true, fmt.Sprintf("UNCONSENTED device %d enabled at %s", r.DeviceID, d.building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s reported that it is ENABLED, but it has no active consent from an authorized signer.\n"+
			"Doorledger flagged it unconsented and told it to disable itself (command %d). Until it confirms, couriers may still be able to open the door: check the panel.\n",
			r.DeviceID, det.Vendor, orUnknown(det.Model), det.Serial, det.Location, d.building, cmd.ID),
		fmt.Sprintf("device.unconsented:%d:%d", r.DeviceID, cmd.Version))
}

// DeviceSeen records that a device showed signs of life (connected, pinged) at
// at (the DB's clock when zero). Transports call it without a user. It writes
// last_seen_at alone, which no refusing trigger watches (the rules on devices
// fire on their desired state, consent, building and vendor links), so it is
// recorded even for a device still enabled under a consent that ran out.
func (s *DeviceService) DeviceSeen(ctx context.Context, deviceID int64, at time.Time) error {
	if at.IsZero() {
		at = s.db.now()
	}
	t := formatTime(at)
	_, err := s.db.write.ExecContext(ctx, deviceSeenSQL, t, deviceID, t)
	return err
}

// PendingDesired returns the current desired state of every device that is not
// retired and was ever given one (version > 0), with its latest command: what
// the portal publishes (retained) at start-up, since the broker's own storage
// is not trusted.
func (s *DeviceService) PendingDesired(ctx context.Context) ([]doorledger.DesiredState, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT d.id, cm.id, d.desired_state, d.desired_version, cm.requested_at
		FROM devices d JOIN commands cm ON cm.device_id = d.id AND cm.version = d.desired_version
		WHERE d.retired = 0 AND d.desired_version > 0 ORDER BY d.id`)
	if err != nil {
		return nil, err
	}
	return scanDesired(rows)
}

func scanDesired(rows *sql.Rows) ([]doorledger.DesiredState, error) {
	defer rows.Close()
	var list []doorledger.DesiredState
	for rows.Next() {
		var ds doorledger.DesiredState
		if err := rows.Scan(&ds.DeviceID, &ds.CommandID, &ds.State, &ds.Version, nullTime{&ds.IssuedAt}); err != nil {
			return nil, err
		}
		list = append(list, ds)
	}
	return list, rows.Err()
}

// ExpireUnconfirmed marks the commands still pending or sent more than timeout
// after they were requested as not confirmed, audits each and alerts the
// building's managers once per command. It returns the desired states of every
// not-confirmed or refused command of a device in service, for the controller
// to retry. A refused command keeps its status: the device answered.
func (s *DeviceService) ExpireUnconfirmed(ctx context.Context, timeout time.Duration) ([]doorledger.DesiredState, error) {
	if timeout <= 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The time-out must be positive.")
	}
	tx, err := s.db.BeginTx(ctx, markSentSQL)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Delivery records still held are written first, as they happened first.
	marks := s.sent.take(0)
	err = tx.writeSent(ctx, marks)
	var retries []doorledger.DesiredState
	if err == nil {
		retries, err = tx.expireUnconfirmed(ctx, timeout)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.sent.restore(marks)
		return nil, err
	}
	return retries, nil
}

// expireUnconfirmed is ExpireUnconfirmed's work in tx, without the commit.
func (tx *Tx) expireUnconfirmed(ctx context.Context, timeout time.Duration) ([]doorledger.DesiredState, error) {
	sysctx := doorledger.NewSystemContext(ctx, "system")
	type expired struct {
		id, deviceID, buildingID, version int64
		state                             doorledger.DeviceState
		details                           doorledger.DeviceDetails
		building                          string
	}
	// The redundant status list lets SQLite use the partial index commands_open.
	rows, err := tx.QueryContext(ctx, `SELECT cm.id, cm.device_id, cm.building_id, cm.version, cm.state, d.vendor, d.model, d.serial, d.location, b.name
		FROM commands cm JOIN devices d ON d.id = cm.device_id JOIN buildings b ON b.id = cm.building_id
		WHERE cm.status IN ('pending', 'sent', 'not_confirmed', 'refused') AND cm.status IN ('pending', 'sent') AND cm.requested_at < ? AND d.retired = 0
		ORDER BY cm.id`, formatTime(tx.now.Add(-timeout)))
	if err != nil {
		return nil, err
	}
	var list []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.deviceID, &e.buildingID, &e.version, &e.state, &e.details.Vendor, &e.details.Model,
			&e.details.Serial, &e.details.Location, &e.building); err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, e := range list {
		if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = 'not_confirmed' WHERE id = ?`, e.id); err != nil {
			return nil, fmt.Errorf("expire command %d: %w", e.id, err)
		}
		if err := tx.audit(sysctx, "command.not_confirmed", e.buildingID, "command", e.id, map[string]any{
			"device": e.deviceID, "state": e.state, "version": e.version, "timeout": timeout.String()}); err != nil {
			return nil, err
		}
		risk := "it may still be disabled"
		if e.state == doorledger.StateDisabled {
			risk = "couriers may still be able to open the door"
		}
		if err := tx.alertManagers(ctx, e.buildingID, false, fmt.Sprintf("Device %d did not confirm: %s at %s", e.deviceID, e.state, e.building),
			fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s has not confirmed it is %s (command %d, version %d) within %s.\n"+
				"Doorledger keeps retrying. Until it confirms, %s. If it stays silent, check its power and network, or the panel itself.\n",
				e.deviceID, e.details.Vendor, orUnknown(e.details.Model), e.details.Serial, e.details.Location, e.building, e.state, e.id, e.version,
				timeout, risk),
			"command.not_confirmed:"+itoa(e.id)); err != nil {
			return nil, err
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT cm.device_id, cm.id, cm.state, cm.version, cm.requested_at
		FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.status IN ('pending', 'sent', 'not_confirmed', 'refused') AND cm.status IN ('not_confirmed', 'refused') AND d.retired = 0 ORDER BY cm.id`)
	if err != nil {
		return nil, err
	}
	return scanDesired(rows)
}

// BrokerCredential is a device's credential in an external broker's format.
type BrokerCredential struct {
	DeviceID int64
	Hash     string
}

// MosquittoCredentials returns the broker-format hash of every device that may
// connect (not retired, credential issued with BrokerHash set): what an external
// Mosquitto's password file must hold. System or admin callers only.
func (s *DeviceService) MosquittoCredentials(ctx context.Context) ([]BrokerCredential, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, mosquitto_hash FROM devices WHERE retired = 0 AND mosquitto_hash <> '' ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []BrokerCredential
	for rows.Next() {
		var c BrokerCredential
		if err := rows.Scan(&c.DeviceID, &c.Hash); err != nil {
			return nil, err
		}
		list = append(list, c)
	}
	return list, rows.Err()
}
