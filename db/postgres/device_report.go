package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/jackc/pgx/v5"
)

// reportedDevice is what ReportState needs of a device, read in its transaction.
type reportedDevice struct {
	buildingID              int64
	building                string
	details                 doorledger.DeviceDetails
	retired, unconsented    bool
	desired, reported       doorledger.DeviceState
	desiredVer, reportedVer int64
}

const (
	deviceSeenSQL = `UPDATE devices SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)`
	// latency_us: on the monotonic clock when this process recorded the
	// command ($4), else the recorded times' difference, never below zero.
	confirmCommandSQL = `UPDATE commands SET status = 'confirmed', confirmed_at = $1,
		latency_us = COALESCE($4::bigint, GREATEST(0, round(extract(epoch FROM $1::timestamptz - requested_at) * 1000000))::bigint)
		WHERE device_id = $2 AND version = $3 AND status IN ('pending', 'sent', 'not_confirmed', 'refused') RETURNING id, requested_at, latency_us`
	// A confirmation the device goes back on is withdrawn: confirmed_at says
	// when the command was last confirmed, and the journal keeps each one.
	refuseCommandSQL = `UPDATE commands SET status = 'refused', refused_at = $1, confirmed_at = NULL
		WHERE device_id = $2 AND version = $3 AND status IN ('pending', 'sent', 'not_confirmed', 'confirmed') RETURNING id, state, requested_at`
)

// reportedDevice reads the device a report is about, its row taken FOR
// UPDATE: reports of one device from several connections (or instances)
// take turns, each reading what the one before recorded, as SQLite's single
// writer has them do.
func (tx *Tx) reportedDevice(ctx context.Context, id int64) (*reportedDevice, error) {
	var d reportedDevice
	err := tx.QueryRow(ctx, `SELECT d.building_id, b.name, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
		d.desired_state, d.desired_version, COALESCE(d.reported_state, ''), d.reported_version
		FROM devices d JOIN buildings b ON b.id = d.building_id WHERE d.id = $1 FOR UPDATE OF d`, id).
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
	if err := tx.QueryRow(ctx, `SELECT desired_state FROM devices WHERE id = $1`, deviceID).Scan(&desired); err != nil {
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

// noRows is err, but nil for no row (the caller's variables keep their zero).
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

func deviceLabel(id int64) string { return "device " + itoa(id) }

// ReportState records what a device says it applied, and commits before it
// returns. A report older than the one recorded (out of order) only counts as
// a sign of life, as does a repeat. A report of the desired version and state
// confirms its command; of the desired version in the other state, refuses it
// (refuseCommand: journaled and alerted at once). A version the portal never
// issued is suspicious: it is audited, not recorded as the device's state. A
// device that says it is enabled without an active consent, unless it is only
// behind a disable the portal already sent after enabling it under consent, is
// flagged unconsented, told to disable, and the building's managers and board
// are alerted. ENOTFOUND for an unknown device, EUNAUTHORIZED for a retired
// one, EINVALID for a malformed report.
//
// Package sqlite group-commits reports behind its single writer; here each
// report is a transaction of its own (PostgreSQL has many writers, and
// flushes the WAL of commits that arrive together at once), the device's
// row held for its length. The delivery records MarkSentMany still holds for
// the device are written in the same transaction, with the report's first
// write. A serialization failure or deadlock is retried.
func (s *DeviceService) ReportState(ctx context.Context, r doorledger.ReportedState) error {
	if !r.State.Valid() || r.Version < 0 {
		return doorledger.Errorf(doorledger.EINVALID, "A report names enabled or disabled and a version of 0 or more.")
	}
	for attempt := 1; ; attempt++ {
		err := s.reportOnce(ctx, r)
		if err == nil || !isRetryable(err) || attempt == 3 {
			return err
		}
	}
}

func (s *DeviceService) reportOnce(ctx context.Context, r doorledger.ReportedState) (err error) {
	// If ctx ends after the commit was sent, the report may still be
	// committed: the device is not acknowledged, sends it again, and the
	// repeat is a sign of life only.
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	marks := s.sent.take(r.DeviceID)
	defer func() {
		if err != nil {
			s.sent.restore(marks)
		}
	}()
	if err := tx.reportState(ctx, r, marks); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.reports.Add(1)
	return nil
}

// reportState is ReportState's work in tx, without the commit, with the
// device's delivery records (marks).
//
// Its writes go to the server in as few round trips as they can (pipelined
// batches): on PostgreSQL each statement waits for the server, and the
// report's transaction is on the path from a revoke's click to the page
// showing it confirmed. The delivery records go with the first write: the
// device's row, which writeSent would take first, is held already
// (reportedDevice), and their statement is order-free.
func (tx *Tx) reportState(ctx context.Context, r doorledger.ReportedState, marks []sentMark) error {
	label := deviceLabel(r.DeviceID)
	d, err := tx.reportedDevice(ctx, r.DeviceID)
	if err != nil {
		return err
	}
	var b pgx.Batch
	for _, m := range marks {
		b.Queue(markSentSQL, m.At, m.Command)
	}
	send := func() error {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("record report of device %d: %w", r.DeviceID, err)
		}
		return nil
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
	seen := func() error {
		b.Queue(deviceSeenSQL, tx.now, r.DeviceID)
		return send()
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
			err := tx.QueryRow(ctx, `SELECT state FROM commands WHERE device_id = $1 AND version = $2`, r.DeviceID, r.Version).Scan(&issued)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
	b.Queue(`UPDATE devices SET reported_state = $1, reported_version = $2, reported_at = $3,
		last_seen_at = GREATEST(last_seen_at, $3) WHERE id = $4`, r.State, r.Version, tx.now, r.DeviceID)
	if r.Version == d.desiredVer && r.Version > 0 {
		if r.State != d.desired {
			return tx.refuseCommand(ctx, &b, send, r, d, label)
		}
		return tx.confirmCommand(ctx, &b, send, r, d.buildingID, label)
	}
	return send()
}

// refuseCommand records that the device reported the command's version in
// the other state: it received the command and did not apply it. The command
// is refused (not confirmed, and no longer merely waiting), journaled as the
// device, and the building's managers are alerted now, not after the
// time-out. A repeat of the same report changes nothing (ReportState treats
// it as a sign of life); a device that confirmed and then reports the other
// state for the same version is refused again, and alerted again. Its update
// goes in b, which send sends.
func (tx *Tx) refuseCommand(ctx context.Context, b *pgx.Batch, send func() error, r doorledger.ReportedState, d *reportedDevice, label string) error {
	var id int64
	var requested time.Time
	var state doorledger.DeviceState
	b.Queue(refuseCommandSQL, tx.now, r.DeviceID, r.Version).QueryRow(func(row pgx.Row) error {
		return noRows(row.Scan(&id, &state, at(&requested)))
	})
	if err := send(); err != nil {
		return err
	} else if id == 0 {
		return nil // refused already
	}
	if err := tx.auditAs(ctx, 0, label, "command.refused", d.buildingID, "command", id, map[string]any{
		"device": r.DeviceID, "version": r.Version, "desired_state": state, "reported_state": r.State,
		"after_ms": tx.waited(commandKey{r.DeviceID, r.Version}, requested).Milliseconds()}); err != nil {
		return err
	}
	subject, body := notice.DeviceRefusedMail(r.DeviceID, d.details, d.building, id, r.Version, state, r.State)
	return tx.alertManagers(ctx, d.buildingID, false, subject, body,
		"command.refused:"+itoa(id)+":"+detailTime(tx.now))
}

// confirmCommand marks the command of the reported version confirmed, once.
// Its update goes in b, which send sends.
func (tx *Tx) confirmCommand(ctx context.Context, b *pgx.Batch, send func() error, r doorledger.ReportedState, buildingID int64, label string) error {
	var id, latency int64
	var requested time.Time
	var measured any // NULL: not recorded by this process
	if m, ok := tx.db.opened.get(commandKey{r.DeviceID, r.Version}); ok {
		measured = max(tx.mono-m, 0).Microseconds()
	}
	b.Queue(confirmCommandSQL, tx.now, r.DeviceID, r.Version, measured).QueryRow(func(row pgx.Row) error {
		return noRows(row.Scan(&id, at(&requested), &latency))
	})
	if err := send(); err != nil {
		return err
	} else if id == 0 {
		return nil // confirmed already
	}
	return tx.auditAs(ctx, 0, label, "command.confirmed", buildingID, "command", id, map[string]any{
		"device": r.DeviceID, "state": r.State, "version": r.Version, "latency_ms": latency / 1000})
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
	if _, err := tx.Exec(ctx, `UPDATE devices SET unconsented = true WHERE id = $1`, r.DeviceID); err != nil {
		return nil, fmt.Errorf("flag device %d: %w", r.DeviceID, err)
	}
	if err := tx.auditAs(ctx, 0, label, "device.unconsented", d.buildingID, "device", r.DeviceID, map[string]any{
		"reported_state": r.State, "reported_version": r.Version, "command": cmd.ID}); err != nil {
		return nil, err
	}
	subject, body := notice.DeviceUnconsentedMail(r.DeviceID, d.details, d.building, cmd.ID)
	return cmd, tx.alertManagers(ctx, d.buildingID, true, subject, body,
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
	_, err := s.db.pool.Exec(ctx, deviceSeenSQL, ts(at), deviceID)
	return err
}

// ReportStats returns how many report transactions were committed and how
// many reports they carried: here one each (reports are not grouped).
func (s *DeviceService) ReportStats() (groups, reports int64) {
	n := s.reports.Load()
	return n, n
}
