package postgres

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// UnlockSettings returns a building's rules for unlock events (whoever may read its history).
func (s *UnlockService) UnlockSettings(ctx context.Context, buildingID int64) (*doorledger.UnlockSettings, error) {
	if _, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return readUnlockSettings(ctx, s.db.pool, buildingID, false)
}

// readUnlockSettings reads a building's rules; forUpdate holds its row
// until the transaction ends, so that an update's "old" values are the ones
// it replaces.
func readUnlockSettings(ctx context.Context, q querier, buildingID int64, forUpdate bool) (*doorledger.UnlockSettings, error) {
	st := doorledger.UnlockSettings{BuildingID: buildingID}
	var hours string
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	err := q.QueryRow(ctx, `SELECT unlock_retention_days, delivery_hours, burst_count, burst_minutes, alert_board, heartbeat_seconds
		FROM buildings WHERE id = $1`+lock, buildingID).
		Scan(&st.RetentionDays, &hours, &st.BurstCount, &st.BurstMinutes, &st.AlertBoard, &st.HeartbeatSeconds)
	if err != nil {
		return nil, notFound(err, "Building not found.")
	}
	st.DeliveryHours, _ = doorledger.ParseDeliverySchedule(hours)
	return &st, nil
}

// UpdateUnlockSettings changes a building's rules (its managers, admins),
// audited with the old and new values. EINVALID with per-field messages.
func (s *UnlockService) UpdateUnlockSettings(ctx context.Context, buildingID int64, in doorledger.UnlockSettings) (*doorledger.UnlockSettings, error) {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.BuildingID = buildingID
	old, err := readUnlockSettings(ctx, tx, buildingID, true)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE buildings SET unlock_retention_days = $1, delivery_hours = $2, burst_count = $3, burst_minutes = $4,
		alert_board = $5, heartbeat_seconds = $6, updated_at = $7 WHERE id = $8`,
		in.RetentionDays, in.DeliveryHours.String(), in.BurstCount, in.BurstMinutes, in.AlertBoard, in.HeartbeatSeconds,
		tx.now, buildingID); err != nil {
		return nil, fmt.Errorf("update unlock settings of building %d: %w", buildingID, err)
	}
	if err := tx.audit(ctx, "building.unlock_settings", buildingID, "building", buildingID, in.ChangeDetail(old)); err != nil {
		return nil, err
	}
	return &in, tx.Commit(ctx)
}

// SetDeviceHeartbeat sets how long a device may stay silent (managers of its
// building); seconds < 0 returns it to the building's setting, 0 does not watch it.
func (s *UnlockService) SetDeviceHeartbeat(ctx context.Context, deviceID int64, seconds int) error {
	if err := doorledger.CheckDeviceHeartbeat(seconds); err != nil {
		return err
	}
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var buildingID int64
	if err := tx.QueryRow(ctx, `SELECT building_id FROM devices WHERE id = $1`, deviceID).Scan(&buildingID); err != nil {
		return notFound(err, "Device not found.")
	}
	if err := checkManage(ctx, tx, c, buildingID); err != nil {
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			return doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
		}
		return err
	}
	var v any = seconds
	if seconds < 0 {
		v = nil
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET heartbeat_seconds = $1 WHERE id = $2`, v, deviceID); err != nil {
		return fmt.Errorf("set heartbeat of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.heartbeat", buildingID, "device", deviceID, map[string]any{"seconds": v}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
