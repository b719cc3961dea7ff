package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

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
	// The device's row locked: two admins moving it at once take turns, and
	// the second sees where the first put it.
	var current *int64
	if err := tx.QueryRow(ctx, `SELECT vendor_integration_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&current); err != nil {
		return err
	}
	if deref(current) == vendorID {
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
	if _, err := tx.Exec(ctx, `UPDATE devices SET vendor_integration_id = $1, transport = $2 WHERE id = $3`, vid, transport, deviceID); err != nil {
		return fmt.Errorf("set vendor integration of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.vendor", d.BuildingID, "device", deviceID, map[string]any{
		"vendor_integration": vendorID, "name": name, "transport": transport, "previous": deref(current)}); err != nil {
		return err
	}
	// The new route has not been given the device's desired state yet.
	var ds doorledger.DesiredState
	err = tx.QueryRow(ctx, `SELECT d.id, cm.id, d.desired_state, d.desired_version, cm.requested_at
		FROM devices d JOIN commands cm ON cm.device_id = d.id AND cm.version = d.desired_version WHERE d.id = $1`, deviceID).
		Scan(&ds.DeviceID, &ds.CommandID, &ds.State, &ds.Version, at(&ds.IssuedAt))
	if err == nil {
		tx.pushes = append(tx.pushes, ds)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return tx.Commit(ctx)
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
	if len(ids) > 0 {
		rows, err := s.db.pool.Query(ctx, `SELECT id, building_id FROM devices WHERE id = ANY ($1)`, ids)
		if err != nil {
			return nil, err
		}
		var id, b int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error { buildingOf[id] = b; return nil }); err != nil {
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
	var vid *int64
	var retired bool
	err := s.db.pool.QueryRow(ctx, `SELECT vendor_integration_id, retired FROM devices WHERE id = $1`, r.DeviceID).Scan(&vid, &retired)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if err != nil || deref(vid) != req.VendorID {
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
