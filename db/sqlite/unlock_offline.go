package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

// OfflineDevices finds the devices in service silent for longer than their
// heartbeat (their own, else their building's; 0 is not watched) at now. Each
// silence — keyed by when the device was last seen, or registered if never —
// is audited and alerted once (to the board too, per building setting).
// The system's job; admins may run it too.
func (s *UnlockService) OfflineDevices(ctx context.Context, now time.Time) ([]*doorledger.OfflineDevice, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	type silent struct {
		doorledger.OfflineDevice
		building string
		det      doorledger.DeviceDetails
		board    bool
		since    string
	}
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.building_id, b.name, d.vendor, d.model, d.serial, d.location, b.alert_board,
		COALESCE(d.last_seen_at, d.created_at), COALESCE(d.heartbeat_seconds, b.heartbeat_seconds)
		FROM devices d JOIN buildings b ON b.id = d.building_id
		WHERE d.retired = 0 AND COALESCE(d.heartbeat_seconds, b.heartbeat_seconds) > 0 ORDER BY d.id`)
	if err != nil {
		return nil, err
	}
	var list []*silent
	for rows.Next() {
		var d silent
		var hb int64
		if err := rows.Scan(&d.DeviceID, &d.BuildingID, &d.building, &d.det.Vendor, &d.det.Model, &d.det.Serial, &d.det.Location, &d.board, &d.since, &hb); err != nil {
			rows.Close()
			return nil, err
		}
		d.Since, d.Heartbeat = parseTime(d.since), time.Duration(hb)*time.Second
		if now.Sub(d.Since) > d.Heartbeat {
			list = append(list, &d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	out := make([]*doorledger.OfflineDevice, 0, len(list))
	for _, d := range list {
		res, err := tx.ExecContext(ctx, `INSERT INTO device_silences (device_id, since, detected_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			d.DeviceID, d.since, formatTime(now))
		if err != nil {
			return nil, fmt.Errorf("record silence of device %d: %w", d.DeviceID, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			d.Alerted = true
			if err := tx.audit(sysctx, "device.offline", d.BuildingID, "device", d.DeviceID, map[string]any{
				"since": d.since, "heartbeat_seconds": int64(d.Heartbeat / time.Second)}); err != nil {
				return nil, err
			}
			subject, body := notice.DeviceOfflineAlert(d.DeviceID, d.det, d.building, d.Since, d.Heartbeat)
			if err := tx.alertManagers(ctx, d.BuildingID, d.board, subject, body,
				"device.offline:"+itoa(d.DeviceID)+":"+d.since); err != nil {
				return nil, err
			}
		}
		od := d.OfflineDevice
		out = append(out, &od)
	}
	return out, tx.Commit()
}
