package postgres

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// A device's desired state, as the consent services change it: enabled when
// its consent is signed, disabled when the consent ends. Ported from package
// sqlite's command.go for the consent cluster (issue 15, w9-pg2); the port of
// the device service (command.go) uses these and should take them over.

// consentActive reports whether a device rests on a signed consent of its
// building that has not lapsed.
func (tx *Tx) consentActive(ctx context.Context, deviceID int64) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices d JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
		WHERE d.id = $1 AND c.status = 'signed' AND c.expires_at > $2)`, deviceID, tx.now).Scan(&ok)
	return ok, err
}

// setDesiredState writes a device's next desired state and the command that
// carries it, in tx, with its audit entry. Older open commands of the device are
// superseded. The new desired state is pushed to the device after commit.
// The device's row is taken FOR UPDATE: its desired_version is read, then
// written one higher, and two writers at once must not both write the same.
func (tx *Tx) setDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	if !state.Valid() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose enabled or disabled.")
	}
	var buildingID, version int64
	var retired bool
	if err := tx.QueryRow(ctx, `SELECT building_id, desired_version, retired FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&buildingID, &version, &retired); err != nil {
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
		if hold, err := tx.privacyHold(ctx, deviceID); err != nil {
			return nil, err
		} else if hold != "" {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "%s", hold)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE commands SET status = 'superseded' WHERE device_id = $1 AND status IN ('pending', 'sent', 'not_confirmed', 'refused')`, deviceID); err != nil {
		return nil, err
	}
	version++
	if _, err := tx.Exec(ctx, `UPDATE devices SET desired_state = $1, desired_version = $2 WHERE id = $3`, state, version, deviceID); err != nil {
		return nil, fmt.Errorf("set desired state of device %d: %w", deviceID, err)
	}
	c := callerFrom(ctx)
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		deviceID, buildingID, state, version, reason, c.id(), c.label(), tx.now).Scan(&id); err != nil {
		return nil, fmt.Errorf("insert command: %w", err)
	}
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
	ids, err := queryAll(ctx, tx, scanID, `SELECT id FROM devices WHERE consent_id = $1 AND (NOT retired OR desired_state = 'enabled') ORDER BY id`, consentID)
	if err != nil {
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
