package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
)

// VendorService implements doorledger.VendorService: vendor integrations, their
// keys, which devices they control, and the recording side of their signed
// machine API. It also tells the device controller how to reach each device
// (DeviceRoute, for devicectl.Router).
//
// Keys are stored sealed, not hashed: an HMAC is verified by computing it
// again, which takes the key itself. They are sealed (seal.go) under sealKey,
// which lives outside the database (a file in the data directory), so that a
// copy of the database alone cannot sign as a vendor and forge unlock events
// or confirmations. See migrations/005_vendors.sql.
type VendorService struct {
	db      *DB
	sealer  *seal.Sealer
	devices *DeviceService
	unlocks *UnlockService
}

// NewVendorService returns the SQLite vendor service. unlocks is the portal's
// unlock service (vendor batches join its group commit); sealKey is
// SealKeySize random bytes kept outside the database, the same at every start.
func NewVendorService(db *DB, unlocks *UnlockService, sealKey []byte) (*VendorService, error) {
	sl, err := seal.New(sealKey)
	if err != nil {
		return nil, fmt.Errorf("new vendor service: %w", err)
	}
	if unlocks == nil {
		return nil, errors.New("new vendor service: an unlock service is required")
	}
	return &VendorService{db: db, sealer: sl, devices: NewDeviceService(db), unlocks: unlocks}, nil
}

var _ doorledger.VendorService = (*VendorService)(nil)

func (s *VendorService) seal(vendorID int64, key string) ([]byte, error) {
	return s.sealer.Seal([]byte(key), seal.VendorKey(vendorID))
}

func (s *VendorService) unseal(vendorID int64, sealed []byte) ([]byte, error) {
	key, err := s.sealer.Open(sealed, seal.VendorKey(vendorID))
	if err != nil {
		return nil, fmt.Errorf("key of vendor integration %d: %w", vendorID, err)
	}
	return key, nil
}

const vendorColumns = `v.id, v.name, v.webhook_url, v.key_fp, v.key_at, v.prev_key_fp, v.prev_key_at, v.retired, v.retired_at, v.created_at`

func scanVendor(row interface{ Scan(...any) error }) (*doorledger.VendorIntegration, error) {
	var v doorledger.VendorIntegration
	if err := row.Scan(&v.ID, &v.Name, &v.WebhookURL, &v.Key.Fingerprint, nullTime{&v.Key.CreatedAt},
		&v.PreviousKey.Fingerprint, nullTime{&v.PreviousKey.CreatedAt}, &v.Retired, nullTime{&v.RetiredAt}, nullTime{&v.CreatedAt}); err != nil {
		return nil, err
	}
	if v.PreviousKey.CreatedAt.IsZero() {
		v.PreviousKey = doorledger.VendorKeyInfo{}
	}
	return &v, nil
}

// findVendors loads integrations (one when id is not 0) with their buildings and devices.
func findVendors(ctx context.Context, q querier, id int64) ([]*doorledger.VendorIntegration, error) {
	where, args := "", []any{}
	if id != 0 {
		where, args = ` WHERE v.id = ?`, append(args, id)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+vendorColumns+` FROM vendor_integrations v`+where+` ORDER BY v.retired, v.name COLLATE NOCASE, v.id`, args...)
	if err != nil {
		return nil, err
	}
	var list []*doorledger.VendorIntegration
	byID := map[int64]*doorledger.VendorIntegration{}
	for rows.Next() {
		v, err := scanVendor(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, v)
		byID[v.ID] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	where = strings.Replace(where, "v.id", "vb.vendor_integration_id", 1)
	rows, err = q.QueryContext(ctx, `SELECT vb.vendor_integration_id, b.id, b.name FROM vendor_integration_buildings vb
		JOIN buildings b ON b.id = vb.building_id`+where+` ORDER BY b.name, b.id`, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var vid, bid int64
		var name string
		if err := rows.Scan(&vid, &bid, &name); err != nil {
			rows.Close()
			return nil, err
		}
		if v := byID[vid]; v != nil {
			v.BuildingIDs, v.Buildings = append(v.BuildingIDs, bid), append(v.Buildings, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	where = strings.Replace(where, "vb.vendor_integration_id", "d.vendor_integration_id", 1)
	rows, err = q.QueryContext(ctx, `SELECT d.vendor_integration_id, d.id FROM devices d
		WHERE d.vendor_integration_id IS NOT NULL`+strings.Replace(where, " WHERE", " AND", 1)+` ORDER BY d.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var vid, did int64
		if err := rows.Scan(&vid, &did); err != nil {
			return nil, err
		}
		if v := byID[vid]; v != nil {
			v.DeviceIDs = append(v.DeviceIDs, did)
		}
	}
	return list, rows.Err()
}

func findVendor(ctx context.Context, q querier, id int64) (*doorledger.VendorIntegration, error) {
	list, err := findVendors(ctx, q, id)
	if err != nil {
		return nil, err
	} else if len(list) == 0 {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Vendor integration not found.")
	}
	return list[0], nil
}

func (s *VendorService) FindVendorIntegrations(ctx context.Context) ([]*doorledger.VendorIntegration, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findVendors(ctx, s.db.read, 0)
}

func (s *VendorService) FindVendorIntegrationByID(ctx context.Context, id int64) (*doorledger.VendorIntegration, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findVendor(ctx, s.db.read, id)
}

// auditVendor writes one entry per building the integration covers, so that
// each building's journal shows who may report for it; building 0 when none.
func (tx *Tx) auditVendor(ctx context.Context, action string, v *doorledger.VendorIntegration, detail map[string]any) error {
	detail["vendor_integration"] = v.Name
	buildings := v.BuildingIDs
	if len(buildings) == 0 {
		buildings = []int64{0}
	}
	for _, b := range buildings {
		if err := tx.audit(ctx, action, b, "vendor_integration", v.ID, detail); err != nil {
			return err
		}
	}
	return nil
}

// CreateVendorIntegration creates an integration and its first key (admins).
// EINVALID, ECONFLICT for the name of an active integration.
func (s *VendorService) CreateVendorIntegration(ctx context.Context, in doorledger.VendorIntegrationInput) (*doorledger.VendorIntegration, string, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, "", err
	}
	// Unknown buildings join the other fields' messages.
	v := doorledger.Validation{}
	for field, msg := range doorledger.ErrorFields(in.Validate()) {
		v.Add(field, msg)
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback()
	for _, b := range in.BuildingIDs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM buildings WHERE id = ?`, b).Scan(&n); err != nil {
			return nil, "", err
		} else if n == 0 {
			v.Add("buildings", fmt.Sprintf("There is no building %d.", b))
		}
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	key, err := doorledger.NewVendorKey()
	if err != nil {
		return nil, "", err
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO vendor_integrations (name, webhook_url, key_sealed, key_fp, key_at, created_at)
		VALUES (?, ?, x'', ?, ?, ?) RETURNING id`, in.Name, in.WebhookURL, doorledger.VendorKeyFingerprint(key), formatTime(tx.now), formatTime(tx.now)).Scan(&id)
	if isUniqueViolation(err) {
		return nil, "", &doorledger.Error{Code: doorledger.ECONFLICT, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"name": "An active integration has this name already."}}
	} else if err != nil {
		return nil, "", fmt.Errorf("insert vendor integration: %w", err)
	}
	sealed, err := s.seal(id, key)
	if err != nil {
		return nil, "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE vendor_integrations SET key_sealed = ? WHERE id = ?`, sealed, id); err != nil {
		return nil, "", err
	}
	for _, b := range in.BuildingIDs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vendor_integration_buildings (vendor_integration_id, building_id) VALUES (?, ?)`, id, b); err != nil {
			return nil, "", fmt.Errorf("vendor integration %d building %d: %w", id, b, err)
		}
	}
	vi, err := findVendor(ctx, tx, id)
	if err != nil {
		return nil, "", err
	}
	if err := tx.auditVendor(ctx, "vendor.create", vi, map[string]any{"webhook_url": vi.WebhookURL,
		"buildings": vi.BuildingIDs, "key": vi.Key.Fingerprint}); err != nil {
		return nil, "", err
	}
	return vi, key, tx.Commit()
}

// activeVendor loads an integration an admin may change: ECONFLICT when retired.
func (tx *Tx) activeVendor(ctx context.Context, id int64) (*doorledger.VendorIntegration, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	v, err := findVendor(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if v.Retired {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The integration %q is retired.", v.Name)
	}
	return v, nil
}

// RotateVendorKey makes a new current key (returned once); the current one
// becomes the previous one and stays valid until removed. ECONFLICT when retired.
func (s *VendorService) RotateVendorKey(ctx context.Context, id int64) (string, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	v, err := tx.activeVendor(ctx, id)
	if err != nil {
		return "", err
	}
	key, err := doorledger.NewVendorKey()
	if err != nil {
		return "", err
	}
	sealed, err := s.seal(id, key)
	if err != nil {
		return "", err
	}
	now := formatTime(tx.now)
	if _, err := tx.ExecContext(ctx, `UPDATE vendor_integrations SET prev_key_sealed = key_sealed, prev_key_fp = key_fp, prev_key_at = key_at,
		key_sealed = ?, key_fp = ?, key_at = ? WHERE id = ?`, sealed, doorledger.VendorKeyFingerprint(key), now, id); err != nil {
		return "", fmt.Errorf("rotate key of vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.rotate_key", v, map[string]any{"key": doorledger.VendorKeyFingerprint(key),
		"previous_key": v.Key.Fingerprint, "dropped_key": v.PreviousKey.Fingerprint}); err != nil {
		return "", err
	}
	return key, tx.Commit()
}

// RemovePreviousVendorKey stops accepting the previous key. ECONFLICT when
// there is none or the integration is retired.
func (s *VendorService) RemovePreviousVendorKey(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	v, err := tx.activeVendor(ctx, id)
	if err != nil {
		return err
	}
	if v.PreviousKey.Fingerprint == "" {
		return doorledger.Errorf(doorledger.ECONFLICT, "The integration %q has no previous key.", v.Name)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE vendor_integrations SET prev_key_sealed = NULL, prev_key_fp = '', prev_key_at = NULL WHERE id = ?`, id); err != nil {
		return fmt.Errorf("remove previous key of vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.remove_previous_key", v, map[string]any{"key": v.PreviousKey.Fingerprint}); err != nil {
		return err
	}
	return tx.Commit()
}

// RetireVendorIntegration stops accepting its keys at once and erases them.
// Its devices keep it until an admin moves them: a push to one fails and the
// failure shows on the device's command, rather than going silently elsewhere.
func (s *VendorService) RetireVendorIntegration(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	v, err := tx.activeVendor(ctx, id)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE vendor_integrations SET retired = 1, retired_at = ?, key_sealed = x'',
		prev_key_sealed = NULL, prev_key_at = NULL WHERE id = ?`, formatTime(tx.now), id); err != nil {
		return fmt.Errorf("retire vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.retire", v, map[string]any{"devices": v.DeviceIDs}); err != nil {
		return err
	}
	return tx.Commit()
}

// SetDeviceVendor puts a device under an integration (its transport becomes
// the webhook) or, with vendorID 0, back on MQTT (admins), and pushes the
// device's current desired state through its new route after commit.
// ENOTFOUND for an unknown device or integration, EINVALID when the
// integration does not cover the device's building, ECONFLICT when either is retired.
func (s *VendorService) SetDeviceVendor(ctx context.Context, deviceID, vendorID int64) error {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	d, err := findDevice(ctx, tx, c, deviceID, tx.now)
	if err != nil {
		return err
	}
	if d.Retired {
		return doorledger.Errorf(doorledger.ECONFLICT, "This device is retired.")
	}
	var current sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT vendor_integration_id FROM devices WHERE id = ?`, deviceID).Scan(&current); err != nil {
		return err
	}
	if current.Int64 == vendorID {
		return nil // already so: nothing to record or push
	}
	transport, name := "mqtt", ""
	var vid any
	if vendorID != 0 {
		v, err := findVendor(ctx, tx, vendorID)
		if err != nil {
			return err
		}
		if v.Retired {
			return doorledger.Errorf(doorledger.ECONFLICT, "The integration %q is retired.", v.Name)
		}
		if !v.CoversBuilding(d.BuildingID) {
			return doorledger.Errorf(doorledger.EINVALID, "The integration %q does not report for %s; a device can only be under an integration of its building.", v.Name, d.BuildingName)
		}
		transport, name, vid = "webhook", v.Name, vendorID
	}
	if _, err := tx.disableIfConsentEnded(ctx, deviceID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET vendor_integration_id = ?, transport = ? WHERE id = ?`, vid, transport, deviceID); err != nil {
		return fmt.Errorf("set vendor integration of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.vendor", d.BuildingID, "device", deviceID, map[string]any{
		"vendor_integration": vendorID, "name": name, "transport": transport, "previous": current.Int64}); err != nil {
		return err
	}
	// The new route has not been given the device's desired state yet.
	var ds doorledger.DesiredState
	err = tx.QueryRowContext(ctx, `SELECT d.id, cm.id, d.desired_state, d.desired_version, cm.requested_at
		FROM devices d JOIN commands cm ON cm.device_id = d.id AND cm.version = d.desired_version WHERE d.id = ?`, deviceID).
		Scan(&ds.DeviceID, &ds.CommandID, &ds.State, &ds.Version, nullTime{&ds.IssuedAt})
	if err == nil {
		tx.pushes = append(tx.pushes, ds)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return tx.Commit()
}

// VendorKeys returns the integration's active keys, current first.
// EUNAUTHORIZED for an unknown or retired integration.
func (s *VendorService) VendorKeys(ctx context.Context, vendorID int64) ([][]byte, error) {
	var cur, prev []byte
	var retired bool
	err := s.db.read.QueryRowContext(ctx, `SELECT key_sealed, prev_key_sealed, retired FROM vendor_integrations WHERE id = ?`, vendorID).
		Scan(&cur, &prev, &retired)
	if errors.Is(err, sql.ErrNoRows) || err == nil && retired {
		return nil, doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown or retired vendor integration.")
	} else if err != nil {
		return nil, err
	}
	key, err := s.unseal(vendorID, cur)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{key}
	if prev != nil {
		key, err := s.unseal(vendorID, prev)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// DeviceRoute says how to reach a device (for devicectl.Router): a zero route
// for MQTT, or its integration's webhook and current key. ENOTFOUND for an
// unknown device, ECONFLICT when its integration is retired.
func (s *VendorService) DeviceRoute(ctx context.Context, deviceID int64) (doorledger.DeviceRoute, error) {
	var vid sql.NullInt64
	var url, name sql.NullString
	var sealed []byte
	var retired sql.NullBool
	err := s.db.read.QueryRowContext(ctx, `SELECT d.vendor_integration_id, v.name, v.webhook_url, v.key_sealed, v.retired
		FROM devices d LEFT JOIN vendor_integrations v ON v.id = d.vendor_integration_id WHERE d.id = ?`, deviceID).
		Scan(&vid, &name, &url, &sealed, &retired)
	if err != nil {
		return doorledger.DeviceRoute{}, notFound(err, "Device not found.")
	}
	if !vid.Valid {
		return doorledger.DeviceRoute{}, nil
	}
	if retired.Bool {
		return doorledger.DeviceRoute{}, doorledger.Errorf(doorledger.ECONFLICT,
			"Device %d is under the vendor integration %q, which is retired: move it to another integration or back to MQTT.", deviceID, name.String)
	}
	key, err := s.unseal(vid.Int64, sealed)
	if err != nil {
		return doorledger.DeviceRoute{}, err
	}
	return doorledger.DeviceRoute{VendorID: vid.Int64, WebhookURL: url.String, Key: key}, nil
}

// claim records that a signed request is being acted on; ECONFLICT when it
// was already (a replay). Claims are kept in the database, not in memory, so
// that every portal instance behind a load balancer refuses the same replays.
func (s *VendorService) claim(ctx context.Context, req doorledger.VendorRequest) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var retired bool
	if err := tx.QueryRowContext(ctx, `SELECT retired FROM vendor_integrations WHERE id = ?`, req.VendorID).Scan(&retired); errors.Is(err, sql.ErrNoRows) || err == nil && retired {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown or retired vendor integration.")
	} else if err != nil {
		return err
	}
	now := formatTime(tx.now)
	if _, err := tx.ExecContext(ctx, `DELETE FROM vendor_requests WHERE expires_at < ?`, now); err != nil {
		return fmt.Errorf("expire vendor requests: %w", err)
	}
	until := req.Until
	if until.Before(tx.now) {
		until = tx.now
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO vendor_requests (vendor_integration_id, digest, expires_at) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, req.VendorID, req.Digest[:], formatTime(until))
	if err != nil {
		return fmt.Errorf("claim vendor request: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "Replayed request: this signature (t=%d) and body were accepted already. "+
			"To send again, sign again with the current time; events already recorded are ignored.", req.SignedAt.Unix())
	}
	return tx.Commit()
}

// release forgets a claim whose request then failed, so that the same signed
// request may be tried again while its signature is valid.
func (s *VendorService) release(req doorledger.VendorRequest) {
	ctx := context.Background()
	_, _ = s.db.write.ExecContext(ctx, `DELETE FROM vendor_requests WHERE vendor_integration_id = ? AND digest = ?`, req.VendorID, req.Digest[:])
}

// RecordVendorEvents records a vendor's batch through the unlock service's
// group commit, all or nothing. Every event must be for a device of one of the
// integration's buildings; an unknown device id, or a device or building the
// integration does not report for, refuses the batch (EINVALID, by event), while
// a device named only by its reference in a covered building is recorded and
// flagged unknown_device. ECONFLICT for a replay.
func (s *VendorService) RecordVendorEvents(ctx context.Context, req doorledger.VendorRequest, events []doorledger.UnlockEvent) (*doorledger.ImportResult, error) {
	if len(events) == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "batch: holds no events")
	}
	covered, err := s.coveredBuildings(ctx, req.VendorID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, ev := range events {
		if ev.DeviceID > 0 {
			ids = append(ids, ev.DeviceID)
		}
	}
	buildingOf := map[int64]int64{}
	for _, part := range chunks(ids, 500) {
		marks, args := inList(part)
		rows, err := s.db.read.QueryContext(ctx, `SELECT id, building_id FROM devices WHERE id IN (`+marks+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, b int64
			if err := rows.Scan(&id, &b); err != nil {
				rows.Close()
				return nil, err
			}
			buildingOf[id] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var p problems
	for i, ev := range events {
		where := "event " + itoa(int64(i))
		switch b, known := buildingOf[ev.DeviceID]; {
		case ev.BuildingID != 0 && !covered[ev.BuildingID]:
			p.add(where, fmt.Sprintf("building_id: this integration does not report for building %d", ev.BuildingID))
		case ev.DeviceID != 0 && (!known || !covered[b]):
			// Unknown, or of a building not covered: the same answer, so ids do not leak.
			p.add(where, fmt.Sprintf("device_id: no device %d in the buildings this integration reports for", ev.DeviceID))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	for i := range events {
		events[i].Source = doorledger.SourceHTTP
	}
	if err := s.claim(ctx, req); err != nil {
		return nil, err
	}
	res, err := s.unlocks.RecordUnlocksResult(ctx, events)
	if err != nil {
		s.release(req)
		return nil, err
	}
	return res, nil
}

func (s *VendorService) coveredBuildings(ctx context.Context, vendorID int64) (map[int64]bool, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT building_id FROM vendor_integration_buildings WHERE vendor_integration_id = ?`, vendorID)
	if err != nil {
		return nil, err
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, err
	}
	covered := make(map[int64]bool, len(ids))
	for _, id := range ids {
		covered[id] = true
	}
	return covered, nil
}

// ReportVendorState records the state a device of the integration applied
// (DeviceService.ReportState: it confirms the matching command). EINVALID for
// a malformed report, a device the integration does not control or a retired
// one; ECONFLICT for a replay.
func (s *VendorService) ReportVendorState(ctx context.Context, req doorledger.VendorRequest, r doorledger.ReportedState) error {
	switch {
	case r.DeviceID <= 0:
		return doorledger.Errorf(doorledger.EINVALID, "device_id: missing (a positive integer)")
	case !r.State.Valid():
		return doorledger.Errorf(doorledger.EINVALID, "state: must be enabled or disabled")
	case r.Version < 0:
		return doorledger.Errorf(doorledger.EINVALID, "version: must be 0 or more (the version of the desired state applied)")
	}
	var vid sql.NullInt64
	var retired bool
	err := s.db.read.QueryRowContext(ctx, `SELECT vendor_integration_id, retired FROM devices WHERE id = ?`, r.DeviceID).Scan(&vid, &retired)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err != nil || vid.Int64 != req.VendorID {
		return doorledger.Errorf(doorledger.EINVALID, "device_id: no device %d under this integration", r.DeviceID)
	}
	if retired {
		return doorledger.Errorf(doorledger.EINVALID, "device_id: device %d is retired", r.DeviceID)
	}
	if err := s.claim(ctx, req); err != nil {
		return err
	}
	if err := s.devices.ReportState(ctx, r); err != nil {
		s.release(req)
		return err
	}
	return nil
}
