package db

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// consentActive reports whether the device's consent permits enabling it now:
// signed, of the device's building, and not past its expiry.
func (tx *Tx) consentActive(ctx context.Context, deviceID int64) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `
		SELECT COUNT(*) FROM devices d JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
		WHERE d.id = ? AND c.status = 'signed' AND c.expires_at > ?`, deviceID, formatTime(tx.now)).Scan(&n)
	return n > 0, err
}

// setDesiredState writes a device's next desired state and the command that
// carries it, in tx, with its audit entry. Older open commands of the device are
// superseded. The new desired state is pushed to the device after commit.
func (tx *Tx) setDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	if !state.Valid() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose enabled or disabled.")
	}
	var buildingID, version int64
	var retired bool
	if err := tx.QueryRowContext(ctx, `SELECT building_id, desired_version, retired FROM devices WHERE id = ?`, deviceID).
		Scan(&buildingID, &version, &retired); err != nil {
		return nil, notFound(err, "Device not found.")
	}
	if state == doorledger.StateEnabled {
		if retired {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "This device is retired and cannot be enabled.")
		}
		ok, err := tx.consentActive(ctx, deviceID)
		if err != nil {
			return nil, err
		} else if !ok {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "This device has no active consent from an authorized signer, so it cannot be enabled.")
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = 'superseded' WHERE device_id = ? AND status IN ('pending', 'sent', 'not_confirmed')`, deviceID); err != nil {
		return nil, err
	}
	version++
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET desired_state = ?, desired_version = ? WHERE id = ?`, state, version, deviceID); err != nil {
		return nil, fmt.Errorf("set desired state of device %d: %w", deviceID, err)
	}
	c := callerFrom(ctx)
	res, err := tx.ExecContext(ctx, `
		INSERT INTO commands (device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		deviceID, buildingID, state, version, reason, c.id(), c.label(), formatTime(tx.now))
	if err != nil {
		return nil, fmt.Errorf("insert command: %w", err)
	}
	id, _ := res.LastInsertId()
	action := "device.disable"
	if state == doorledger.StateEnabled {
		action = "device.enable"
	}
	if err := tx.audit(ctx, action, buildingID, "device", deviceID, map[string]any{"command": id, "version": version, "reason": reason}); err != nil {
		return nil, err
	}
	cmd := &doorledger.Command{ID: id, DeviceID: deviceID, BuildingID: buildingID, State: state, Version: version,
		Reason: reason, RequestedBy: c.label(), RequestedAt: tx.now, Status: doorledger.CommandPending}
	tx.pushes = append(tx.pushes, doorledger.DesiredState{DeviceID: deviceID, CommandID: id, State: state, Version: version, IssuedAt: tx.now})
	return cmd, nil
}

// disableConsentDevices disables every device under a consent (withdrawal,
// dispute, lapse) in tx. A retired device is skipped unless it is somehow still
// enabled: the database refuses to end the consent while any device under it is.
func (tx *Tx) disableConsentDevices(ctx context.Context, consentID int64, reason string) ([]*doorledger.Command, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM devices WHERE consent_id = ? AND (retired = 0 OR desired_state = 'enabled')`, consentID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var cmds []*doorledger.Command
	for _, id := range ids {
		cmd, err := tx.setDesiredState(ctx, id, doorledger.StateDisabled, reason)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}
