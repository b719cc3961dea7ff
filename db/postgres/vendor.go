package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"github.com/jackc/pgx/v5"
)

// VendorService implements doorledger.VendorService, as package sqlite's:
// vendor integrations, their keys, which devices they control, and the
// recording side of their signed machine API. It also tells the device
// controller how to reach each device (DeviceRoute, for devicectl.Router).
//
// Keys are stored sealed, not hashed: an HMAC is verified by computing it
// again, which takes the key itself. They are sealed (seal.go) under sealKey,
// which lives outside the database (a file in the shared data directory),
// so that a copy of the database alone cannot sign as a vendor and forge
// unlock events or confirmations. The seal is package sqlite's, bound to the
// integration's id the same way, so keys copied from SQLite open here.
type VendorService struct {
	db      *DB
	sealer  *seal.Sealer
	devices *DeviceService
	unlocks *UnlockService
}

// NewVendorService returns the PostgreSQL vendor service. unlocks is the
// portal's unlock service (vendor batches join its group commit); sealKey is
// SealKeySize random bytes kept outside the database, the same at every
// start and on every instance.
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
	if err := row.Scan(&v.ID, &v.Name, &v.WebhookURL, &v.Key.Fingerprint, at(&v.Key.CreatedAt),
		&v.PreviousKey.Fingerprint, at(&v.PreviousKey.CreatedAt), &v.Retired, at(&v.RetiredAt), at(&v.CreatedAt)); err != nil {
		return nil, err
	}
	if v.PreviousKey.CreatedAt.IsZero() {
		v.PreviousKey = doorledger.VendorKeyInfo{}
	}
	return &v, nil
}

// findVendors loads integrations (one when id is not 0) with their
// buildings and devices. Names sort as SQLite's COLLATE NOCASE does.
func findVendors(ctx context.Context, q querier, id int64) ([]*doorledger.VendorIntegration, error) {
	// id 0 selects every integration: $1 = 0 OR the id.
	list, err := queryAll(ctx, q, scanVendor, `SELECT `+vendorColumns+` FROM vendor_integrations v
		WHERE $1 = 0 OR v.id = $1 ORDER BY v.retired, lower(v.name) COLLATE "C", v.id`, id)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	byID := map[int64]*doorledger.VendorIntegration{}
	for _, v := range list {
		byID[v.ID] = v
	}
	rows, err := q.Query(ctx, `SELECT vb.vendor_integration_id, b.id, b.name FROM vendor_integration_buildings vb
		JOIN buildings b ON b.id = vb.building_id WHERE $1 = 0 OR vb.vendor_integration_id = $1 ORDER BY b.name COLLATE "C", b.id`, id)
	if err != nil {
		return nil, err
	}
	var vid, bid int64
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&vid, &bid, &name}, func() error {
		if v := byID[vid]; v != nil {
			v.BuildingIDs, v.Buildings = append(v.BuildingIDs, bid), append(v.Buildings, name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT d.vendor_integration_id, d.id FROM devices d
		WHERE d.vendor_integration_id IS NOT NULL AND ($1 = 0 OR d.vendor_integration_id = $1) ORDER BY d.id`, id)
	if err != nil {
		return nil, err
	}
	var did int64
	if _, err := pgx.ForEachRow(rows, []any{&vid, &did}, func() error {
		if v := byID[vid]; v != nil {
			v.DeviceIDs = append(v.DeviceIDs, did)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return list, nil
}

// findVendor loads one integration. ENOTFOUND, for id 0 too (findVendors
// would list them all).
func findVendor(ctx context.Context, q querier, id int64) (*doorledger.VendorIntegration, error) {
	if id == 0 {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Vendor integration not found.")
	}
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
	return findVendors(ctx, s.db.pool, 0)
}

func (s *VendorService) FindVendorIntegrationByID(ctx context.Context, id int64) (*doorledger.VendorIntegration, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findVendor(ctx, s.db.pool, id)
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
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM buildings WHERE id = $1`, b).Scan(&n); err != nil {
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
	// A name in use by an active integration is the conflict; ON CONFLICT
	// keeps the transaction usable to say so.
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO vendor_integrations (name, webhook_url, key_sealed, key_fp, key_at, created_at)
		VALUES ($1, $2, '', $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id`, in.Name, in.WebhookURL, doorledger.VendorKeyFingerprint(key), tx.now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", &doorledger.Error{Code: doorledger.ECONFLICT, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"name": "An active integration has this name already."}}
	} else if err != nil {
		return nil, "", fmt.Errorf("insert vendor integration: %w", err)
	}
	sealed, err := s.seal(id, key)
	if err != nil {
		return nil, "", err
	}
	if _, err := tx.Exec(ctx, `UPDATE vendor_integrations SET key_sealed = $1 WHERE id = $2`, sealed, id); err != nil {
		return nil, "", err
	}
	for _, b := range in.BuildingIDs {
		if _, err := tx.Exec(ctx, `INSERT INTO vendor_integration_buildings (vendor_integration_id, building_id) VALUES ($1, $2)`, id, b); err != nil {
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
	return vi, key, tx.Commit(ctx)
}

// activeVendor loads an integration an admin may change, its row locked
// until the transaction ends (two admins rotating at once take turns):
// ECONFLICT when retired.
func (tx *Tx) activeVendor(ctx context.Context, id int64) (*doorledger.VendorIntegration, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM vendor_integrations WHERE id = $1 FOR UPDATE`, id); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE vendor_integrations SET prev_key_sealed = key_sealed, prev_key_fp = key_fp, prev_key_at = key_at,
		key_sealed = $1, key_fp = $2, key_at = $3 WHERE id = $4`, sealed, doorledger.VendorKeyFingerprint(key), tx.now, id); err != nil {
		return "", fmt.Errorf("rotate key of vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.rotate_key", v, map[string]any{"key": doorledger.VendorKeyFingerprint(key),
		"previous_key": v.Key.Fingerprint, "dropped_key": v.PreviousKey.Fingerprint}); err != nil {
		return "", err
	}
	return key, tx.Commit(ctx)
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
	if _, err := tx.Exec(ctx, `UPDATE vendor_integrations SET prev_key_sealed = NULL, prev_key_fp = '', prev_key_at = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("remove previous key of vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.remove_previous_key", v, map[string]any{"key": v.PreviousKey.Fingerprint}); err != nil {
		return err
	}
	return tx.Commit(ctx)
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
	if _, err := tx.Exec(ctx, `UPDATE vendor_integrations SET retired = true, retired_at = $1, key_sealed = '',
		prev_key_sealed = NULL, prev_key_at = NULL WHERE id = $2`, tx.now, id); err != nil {
		return fmt.Errorf("retire vendor integration %d: %w", id, err)
	}
	if err := tx.auditVendor(ctx, "vendor.retire", v, map[string]any{"devices": v.DeviceIDs}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// VendorKeys returns the integration's active keys, current first.
// EUNAUTHORIZED for an unknown or retired integration.
func (s *VendorService) VendorKeys(ctx context.Context, vendorID int64) ([][]byte, error) {
	var cur, prev []byte
	var retired bool
	err := s.db.pool.QueryRow(ctx, `SELECT key_sealed, prev_key_sealed, retired FROM vendor_integrations WHERE id = $1`, vendorID).
		Scan(&cur, &prev, &retired)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && retired {
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
	var vid *int64
	var url, name *string
	var sealed []byte
	var retired *bool
	err := s.db.pool.QueryRow(ctx, `SELECT d.vendor_integration_id, v.name, v.webhook_url, v.key_sealed, v.retired
		FROM devices d LEFT JOIN vendor_integrations v ON v.id = d.vendor_integration_id WHERE d.id = $1`, deviceID).
		Scan(&vid, &name, &url, &sealed, &retired)
	if err != nil {
		return doorledger.DeviceRoute{}, notFound(err, "Device not found.")
	}
	if vid == nil {
		return doorledger.DeviceRoute{}, nil
	}
	if *retired {
		return doorledger.DeviceRoute{}, doorledger.Errorf(doorledger.ECONFLICT,
			"Device %d is under the vendor integration %q, which is retired: move it to another integration or back to MQTT.", deviceID, *name)
	}
	key, err := s.unseal(*vid, sealed)
	if err != nil {
		return doorledger.DeviceRoute{}, err
	}
	return doorledger.DeviceRoute{VendorID: *vid, WebhookURL: *url, Key: key}, nil
}

// claim records that a signed request is being acted on; ECONFLICT when it
// was already (a replay). Claims are kept in the database, not in memory, so
// that every portal instance behind a load balancer refuses the same replays:
// of two instances claiming the same request at once, the primary key lets
// one insert and the other find the row taken.
func (s *VendorService) claim(ctx context.Context, req doorledger.VendorRequest) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var retired bool
	if err := tx.QueryRow(ctx, `SELECT retired FROM vendor_integrations WHERE id = $1`, req.VendorID).Scan(&retired); errors.Is(err, pgx.ErrNoRows) || err == nil && retired {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown or retired vendor integration.")
	} else if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM vendor_requests WHERE expires_at < $1`, tx.now); err != nil {
		return fmt.Errorf("expire vendor requests: %w", err)
	}
	until := req.Until
	if until.Before(tx.now) {
		until = tx.now
	}
	tag, err := tx.Exec(ctx, `INSERT INTO vendor_requests (vendor_integration_id, digest, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, req.VendorID, req.Digest[:], ts(until))
	if err != nil {
		return fmt.Errorf("claim vendor request: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "Replayed request: this signature (t=%d) and body were accepted already. "+
			"To send again, sign again with the current time; events already recorded are ignored.", req.SignedAt.Unix())
	}
	return tx.Commit(ctx)
}

// release forgets a claim whose request then failed, so that the same signed
// request may be tried again while its signature is valid.
func (s *VendorService) release(req doorledger.VendorRequest) {
	ctx := context.Background()
	_, _ = s.db.pool.Exec(ctx, `DELETE FROM vendor_requests WHERE vendor_integration_id = $1 AND digest = $2`, req.VendorID, req.Digest[:])
}

func (s *VendorService) coveredBuildings(ctx context.Context, vendorID int64) (map[int64]bool, error) {
	ids, err := queryAll(ctx, s.db.pool, scanID, `SELECT building_id FROM vendor_integration_buildings WHERE vendor_integration_id = $1`, vendorID)
	if err != nil {
		return nil, err
	}
	covered := make(map[int64]bool, len(ids))
	for _, id := range ids {
		covered[id] = true
	}
	return covered, nil
}
