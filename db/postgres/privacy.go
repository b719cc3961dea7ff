package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// PrivacyService implements doorledger.PrivacyService: the Tenant Data
// Privacy Act profile of buildings (migration 045). The database holds the
// rules too: no device of a building under the profile is enabled without a
// complete vendor disclosure record, and an unlock event changes only by the
// redaction of its identifiable fields, under the profile, after 90 days.
type PrivacyService struct {
	db *DB
}

// NewPrivacyService returns the PostgreSQL privacy service.
func NewPrivacyService(db *DB) *PrivacyService { return &PrivacyService{db: db} }

var _ doorledger.PrivacyService = (*PrivacyService)(nil)

const disclosureColumns = `v.id, v.building_id, v.legal_name, v.data_collected, v.purpose, v.retention, v.policy_url, v.updated_at,
	(SELECT COUNT(*) FROM devices d WHERE d.vendor_disclosure_id = v.id AND NOT d.retired)`

func scanDisclosure(r interface{ Scan(...any) error }) (*doorledger.VendorDisclosure, error) {
	var d doorledger.VendorDisclosure
	err := r.Scan(&d.ID, &d.BuildingID, &d.LegalName, &d.DataCollected, &d.Purpose, &d.Retention, &d.PolicyURL, at(&d.UpdatedAt), &d.Devices)
	return &d, err
}

func (s *PrivacyService) PrivacyStatus(ctx context.Context, buildingID int64) (*doorledger.PrivacyStatus, error) {
	if err := checkBuilding(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	// One snapshot for every read, as package sqlite's read transaction.
	tx, err := s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	return privacyStatus(ctx, tx, buildingID, s.db.Now())
}

// privacyStatus reads a building's profile and checks it, in q's snapshot.
func privacyStatus(ctx context.Context, q querier, buildingID int64, now time.Time) (*doorledger.PrivacyStatus, error) {
	st := &doorledger.PrivacyStatus{BuildingID: buildingID}
	if err := q.QueryRow(ctx, `SELECT privacy_profile, privacy_profile_at FROM buildings WHERE id = $1`, buildingID).
		Scan(&st.Profile, at(&st.Since)); err != nil {
		return nil, notFound(err, "Building not found.")
	}
	var err error
	if st.Disclosures, err = queryAll(ctx, q, scanDisclosure, `SELECT `+disclosureColumns+` FROM vendor_disclosures v
		WHERE v.building_id = $1 ORDER BY v.id`, buildingID); err != nil {
		return nil, err
	}
	if st.Devices, err = queryAll(ctx, q, func(r interface{ Scan(...any) error }) (*doorledger.PrivacyDevice, error) {
		var d doorledger.PrivacyDevice
		err := r.Scan(&d.ID, &d.Vendor, &d.Model, &d.Enabled, &d.DisclosureID)
		return &d, err
	}, `SELECT id, vendor, model, desired_state = 'enabled', COALESCE(vendor_disclosure_id, 0) FROM devices
		WHERE building_id = $1 AND NOT retired ORDER BY id`, buildingID); err != nil {
		return nil, err
	}
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM unlock_redactions r JOIN audit_entries a ON a.id = r.redaction_id
		WHERE a.building_id = $1`, buildingID).Scan(&st.Redacted); err != nil {
		return nil, err
	}
	if st.Profile != doorledger.PrivacyProfileTDPA {
		return st, nil
	}
	byID := map[int64]*doorledger.VendorDisclosure{}
	for _, d := range st.Disclosures {
		byID[d.ID] = d
	}
	var bad []string
	for _, d := range st.Devices {
		if d.Enabled && !byID[d.DisclosureID].Complete() {
			bad = append(bad, "#"+itoa(d.ID))
		}
	}
	check := doorledger.PrivacyCheck{Name: "Every enabled device names a complete vendor disclosure record", Holds: len(bad) == 0}
	if len(bad) > 0 {
		check.Detail = "not so for device " + strings.Join(bad, ", ")
	}
	st.Checks = append(st.Checks, check)
	// The job runs daily: a day's grace past the 90 days.
	cutoff := ts(now.Add(-doorledger.RedactAfter - 24*time.Hour))
	var left int64
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = $1 AND actor_ref <> '' AND redaction_id IS NULL
		AND effective_at < $2`, buildingID, cutoff).Scan(&left); err != nil {
		return nil, err
	}
	check = doorledger.PrivacyCheck{Name: "No identifiable unlock data is kept past 90 days", Holds: left == 0,
		Detail: fmt.Sprintf("%d events redacted so far", st.Redacted)}
	if left > 0 {
		check.Detail = fmt.Sprintf("%d events older than 91 days still carry a courier or package reference", left)
	}
	st.Checks = append(st.Checks, check)
	return st, nil
}

func (s *PrivacyService) SetPrivacyProfile(ctx context.Context, buildingID int64, profile string) error {
	if profile != doorledger.PrivacyProfileNone && profile != doorledger.PrivacyProfileTDPA {
		return doorledger.Errorf(doorledger.EINVALID, "Choose a privacy profile.")
	}
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.Exec(ctx, `UPDATE buildings SET privacy_profile = $1, privacy_profile_at = $2 WHERE id = $3 AND privacy_profile <> $4`,
		profile, ts(tx.now), buildingID, profile)
	if err != nil {
		return fmt.Errorf("set privacy profile of building %d: %w", buildingID, err)
	}
	if n := res.RowsAffected(); n == 0 {
		return nil // already so
	}
	if err := tx.audit(ctx, "building.privacy_profile", buildingID, "building", buildingID, map[string]any{"profile": profile}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *PrivacyService) SaveVendorDisclosure(ctx context.Context, buildingID, id int64, in doorledger.VendorDisclosureInput) (*doorledger.VendorDisclosure, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	at := ts(tx.now)
	action := "vendor_disclosure.update"
	if id == 0 {
		if err := tx.QueryRow(ctx, `INSERT INTO vendor_disclosures (building_id, legal_name, data_collected, purpose, retention, policy_url, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, buildingID, in.LegalName, in.DataCollected, in.Purpose, in.Retention, in.PolicyURL, at, at).Scan(&id); err != nil {
			return nil, fmt.Errorf("add vendor disclosure of building %d: %w", buildingID, err)
		}
		action = "vendor_disclosure.create"
	} else {
		res, err := tx.Exec(ctx, `UPDATE vendor_disclosures SET legal_name = $1, data_collected = $2, purpose = $3, retention = $4, policy_url = $5, updated_at = $6
			WHERE id = $7 AND building_id = $8`, in.LegalName, in.DataCollected, in.Purpose, in.Retention, in.PolicyURL, at, id, buildingID)
		if err != nil {
			return nil, fmt.Errorf("update vendor disclosure %d: %w", id, err)
		}
		if n := res.RowsAffected(); n == 0 {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Vendor disclosure record not found.")
		}
	}
	// The record is public (the tenant privacy notice prints it).
	if err := tx.audit(ctx, action, buildingID, "vendor_disclosure", id, map[string]any{"legal_name": in.LegalName, "policy_url": in.PolicyURL}); err != nil {
		return nil, err
	}
	d, err := scanDisclosure(tx.QueryRow(ctx, `SELECT `+disclosureColumns+` FROM vendor_disclosures v WHERE v.id = $1`, id))
	if err != nil {
		return nil, err
	}
	return d, tx.Commit(ctx)
}

func (s *PrivacyService) SetDeviceDisclosure(ctx context.Context, buildingID, deviceID, disclosureID int64) error {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if disclosureID < 0 {
		return doorledger.Errorf(doorledger.EINVALID, "Choose a vendor disclosure record.")
	}
	var enabled bool
	var profile string
	// The device's row is held: an enable at the same moment (setDesiredState
	// takes it too) sees the record named here, or this sees it enabled.
	if err := tx.QueryRow(ctx, `SELECT d.desired_state = 'enabled', b.privacy_profile FROM devices d JOIN buildings b ON b.id = d.building_id
		WHERE d.id = $1 AND d.building_id = $2 FOR UPDATE OF d`, deviceID, buildingID).Scan(&enabled, &profile); err != nil {
		return notFound(err, "Device not found.")
	}
	var ref any
	if disclosureID != 0 {
		d, err := scanDisclosure(tx.QueryRow(ctx, `SELECT `+disclosureColumns+` FROM vendor_disclosures v WHERE v.id = $1 AND v.building_id = $2`,
			disclosureID, buildingID))
		if err != nil {
			return notFound(err, "Vendor disclosure record not found.")
		}
		if enabled && profile == doorledger.PrivacyProfileTDPA && !d.Complete() {
			return doorledger.Errorf(doorledger.ECONFLICT, "The device is enabled: it can only name a complete vendor disclosure record.")
		}
		ref = disclosureID
	} else if enabled && profile == doorledger.PrivacyProfileTDPA {
		return doorledger.Errorf(doorledger.ECONFLICT, "The device is enabled: under the Tenant Data Privacy Act profile it must name a complete vendor disclosure record.")
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET vendor_disclosure_id = $1 WHERE id = $2`, ref, deviceID); err != nil {
		return fmt.Errorf("set disclosure of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.disclosure", buildingID, "device", deviceID, map[string]any{"disclosure": disclosureID}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// privacyHold says why the building's privacy profile keeps a device from
// being enabled ("": it does not), so that the enable is refused with a
// message people read before the database refuses it.
func (tx *Tx) privacyHold(ctx context.Context, deviceID int64) (string, error) {
	var profile string
	var legal, data, purpose, retention, url sql.NullString
	err := tx.QueryRow(ctx, `SELECT b.privacy_profile, v.legal_name, v.data_collected, v.purpose, v.retention, v.policy_url
		FROM devices d JOIN buildings b ON b.id = d.building_id LEFT JOIN vendor_disclosures v ON v.id = d.vendor_disclosure_id
		WHERE d.id = $1`, deviceID).Scan(&profile, &legal, &data, &purpose, &retention, &url)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && profile != doorledger.PrivacyProfileTDPA {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if !legal.Valid {
		return "This building follows the Tenant Data Privacy Act profile: name the device's vendor disclosure record (on the building's privacy page) before enabling it.", nil
	}
	d := doorledger.VendorDisclosure{LegalName: legal.String, DataCollected: data.String, Purpose: purpose.String, Retention: retention.String, PolicyURL: url.String}
	if missing := d.Missing(); len(missing) > 0 {
		return "This building follows the Tenant Data Privacy Act profile: the device's vendor disclosure record lacks " +
			strings.ReplaceAll(strings.Join(missing, ", "), "_", " ") + ", so the device cannot be enabled.", nil
	}
	return "", nil
}

func (s *PrivacyService) TenantNotice(ctx context.Context, slug string) (*doorledger.TenantPrivacyNotice, error) {
	b, err := findNoticeBuilding(ctx, s.db.pool, slug)
	if err != nil {
		return nil, err
	}
	// One snapshot for every read, as package sqlite's read transaction.
	tx, err := s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	n := &doorledger.TenantPrivacyNotice{BuildingName: b.name, Slug: slug, Contact: b.contact, RedactDays: int(doorledger.RedactAfter / (24 * time.Hour)),
		Now: s.db.Now().UTC()}
	if err := tx.QueryRow(ctx, `SELECT privacy_profile, unlock_retention_days FROM buildings WHERE id = $1`, b.id).
		Scan(&n.Profile, &n.RetentionDays); err != nil {
		return nil, err
	}
	if n.Profile == doorledger.PrivacyProfileNone {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "This building publishes no tenant privacy notice here.")
	}
	disclosures, err := queryAll(ctx, tx, scanDisclosure, `SELECT `+disclosureColumns+` FROM vendor_disclosures v WHERE v.building_id = $1 ORDER BY v.id`, b.id)
	if err != nil {
		return nil, err
	}
	// Devices in service: no serial, location, installer or signer is selected.
	rows, err := tx.Query(ctx, `SELECT id, vendor, model, opens, COALESCE(vendor_disclosure_id, 0) FROM devices
		WHERE building_id = $1 AND NOT retired ORDER BY id`, b.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, disclosure int64
		var vendor, model, opens string
		if err := rows.Scan(&id, &vendor, &model, &opens, &disclosure); err != nil {
			return nil, err
		}
		n.AddDevice(id, vendor, model, opens, disclosure, disclosures)
	}
	return n, rows.Err()
}
