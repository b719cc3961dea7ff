package postgres

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
// is audited and alerted once (to the board too, per building setting):
// device_silences' key makes it once across instances too.
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
		since    string // as package sqlite writes it, in the journal and the mail's key
	}
	list, err := queryAll(ctx, tx, func(r interface{ Scan(...any) error }) (*silent, error) {
		var d silent
		var hb int64
		err := r.Scan(&d.DeviceID, &d.BuildingID, &d.building, &d.det.Vendor, &d.det.Model, &d.det.Serial, &d.det.Location, &d.board, at(&d.Since), &hb)
		d.Heartbeat, d.since = time.Duration(hb)*time.Second, d.Since.Format(logTimeLayout)
		return &d, err
	}, `SELECT d.id, d.building_id, b.name, d.vendor, d.model, d.serial, d.location, b.alert_board,
		COALESCE(d.last_seen_at, d.created_at), COALESCE(d.heartbeat_seconds, b.heartbeat_seconds)
		FROM devices d JOIN buildings b ON b.id = d.building_id
		WHERE NOT d.retired AND COALESCE(d.heartbeat_seconds, b.heartbeat_seconds) > 0 ORDER BY d.id`)
	if err != nil {
		return nil, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	out := make([]*doorledger.OfflineDevice, 0, len(list))
	for _, d := range list {
		if now.Sub(d.Since) <= d.Heartbeat {
			continue
		}
		tag, err := tx.Exec(ctx, `INSERT INTO device_silences (device_id, since, detected_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			d.DeviceID, d.Since, ts(now))
		if err != nil {
			return nil, fmt.Errorf("record silence of device %d: %w", d.DeviceID, err)
		}
		if tag.RowsAffected() > 0 {
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
	return out, tx.Commit(ctx)
}
