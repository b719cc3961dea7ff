package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
	"github.com/doorledger/doorledger/internal/notice"
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

// The statements of ReportState, prepared on the writer (reportWriteSQL).
const (
	reportedDeviceSQL = `SELECT d.building_id, b.name, d.vendor, d.model, d.serial, d.location, d.retired, d.unconsented,
		d.desired_state, d.desired_version, COALESCE(d.reported_state, ''), d.reported_version
		FROM devices d JOIN buildings b ON b.id = d.building_id WHERE d.id = ?`
	deviceSeenSQL     = `UPDATE devices SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`
	issuedStateSQL    = `SELECT state FROM commands WHERE device_id = ? AND version = ?`
	recordReportedSQL = `UPDATE devices SET reported_state = ?, reported_version = ?, reported_at = ?,
		last_seen_at = MAX(COALESCE(last_seen_at, ''), ?) WHERE id = ?`
	// latency_us: on the monotonic clock when this process recorded the
	// command (?4), else the recorded times' difference, never below zero.
	confirmCommandSQL = `UPDATE commands SET status = 'confirmed', confirmed_at = ?1,
		latency_us = COALESCE(?4, MAX(0, CAST(ROUND((julianday(?1) - julianday(requested_at)) * 86400000000) AS INTEGER)))
		WHERE device_id = ?2 AND version = ?3 AND status IN ('pending', 'sent', 'not_confirmed', 'refused') RETURNING id, requested_at, latency_us`
	// A confirmation the device goes back on is withdrawn: confirmed_at says
	// when the command was last confirmed, and the journal keeps each one.
	refuseCommandSQL = `UPDATE commands SET status = 'refused', refused_at = ?1, confirmed_at = NULL
		WHERE device_id = ?2 AND version = ?3 AND status IN ('pending', 'sent', 'not_confirmed', 'confirmed') RETURNING id, state, requested_at`
	desiredStateSQL = `SELECT desired_state FROM devices WHERE id = ?`
)

var reportWriteSQL = append([]string{reportedDeviceSQL, deviceSeenSQL, issuedStateSQL, recordReportedSQL, confirmCommandSQL, refuseCommandSQL,
	desiredStateSQL, markSentSQL, reportSavepointSQL, reportRollbackSQL, reportReleaseSQL}, commandWriteSQL...)

func (tx *Tx) reportedDevice(ctx context.Context, id int64) (*reportedDevice, error) {
	var d reportedDevice
	err := tx.queryRowPrepared(ctx, reportedDeviceSQL, id).
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
	if err := tx.queryRowPrepared(ctx, desiredStateSQL, deviceID).Scan(&desired); err != nil {
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

func deviceLabel(id int64) string { return "device " + itoa(id) }

// ReportState records what a device says it applied, and commits before it
// returns. A report older than the one recorded (out of order) only counts as
// a sign of life, as does a repeat. A report of the desired version and state
// confirms its command; of the desired version in the other state, refuses it
// (refuseCommand: journaled and alerted at once). A version the portal never issued is suspicious: it is
// audited, not recorded as the device's state. A device that says it is
// enabled without an active consent, unless it is only behind a disable the
// portal already sent after enabling it under consent, is flagged unconsented,
// told to disable, and the building's managers and board are alerted.
// ENOTFOUND for an unknown device, EUNAUTHORIZED for a retired one, EINVALID
// for a malformed report.
//
// Reports are group-committed: one committer writes every report waiting
// when it is free in one transaction, each report in a savepoint of its own
// so that a refused one changes nothing, and answers each caller after the
// commit. A lone report is written at once; reports that arrive while a
// commit is under way (a lockdown's hundreds) share the next one. The
// delivery records MarkSentMany still holds for those devices are written in
// the same transaction, before the reports.
func (s *DeviceService) ReportState(ctx context.Context, r doorledger.ReportedState) error {
	if !r.State.Valid() || r.Version < 0 {
		return doorledger.Errorf(doorledger.EINVALID, "A report names enabled or disabled and a version of 0 or more.")
	}
	// If ctx ends first, the committer may still commit the report: the
	// device is not acknowledged, sends it again, and the repeat is a sign of
	// life only.
	_, err := s.reports.Submit(ctx, r)
	return err
}

// ReportStats returns how many report transactions were committed and how
// many reports they carried (their ratio is the grouping achieved).
func (s *DeviceService) ReportStats() (groups, reports int64) { return s.reports.Stats() }

// maxReportGroup bounds the reports of one transaction.
const maxReportGroup = 1000

// Savepoints isolate each report of a group.
const (
	reportSavepointSQL = `SAVEPOINT report`
	reportRollbackSQL  = `ROLLBACK TO report`
	reportReleaseSQL   = `RELEASE report`
)

// writeReports writes reqs in one transaction: each report's answer, or an
// error for the whole transaction (nothing of it committed).
func (s *DeviceService) writeReports(reqs []groupcommit.Item[doorledger.ReportedState]) (answers []groupcommit.Answer[struct{}], err error) {
	ctx := context.Background() // the group's: no caller's cancellation ends it
	tx, err := s.db.BeginTx(ctx, reportWriteSQL...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Taken while this transaction holds the writer, so that no other
	// transaction writes them too; given back unless committed.
	var marks []sentMark
	for _, r := range reqs {
		marks = append(marks, s.sent.take(r.Work.DeviceID)...)
	}
	defer func() {
		if err != nil {
			s.sent.restore(marks)
		}
	}()
	if err := tx.writeSent(ctx, marks); err != nil {
		return nil, err
	}
	answers = make([]groupcommit.Answer[struct{}], len(reqs))
	for i, r := range reqs {
		pushes := len(tx.pushes)
		if _, err := tx.exec(ctx, reportSavepointSQL); err != nil {
			return nil, err
		}
		// The caller's values (its IP for the journal), not its cancellation.
		if answers[i].Err = tx.reportState(context.WithoutCancel(r.Ctx), r.Work); answers[i].Err != nil {
			if _, err := tx.exec(ctx, reportRollbackSQL); err != nil {
				return nil, fmt.Errorf("roll back a refused report: %w", err)
			}
			tx.pushes = tx.pushes[:pushes]
		}
		if _, err := tx.exec(ctx, reportReleaseSQL); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return answers, nil
}

// reportState is ReportState's work in tx, without the commit.
func (tx *Tx) reportState(ctx context.Context, r doorledger.ReportedState) error {
	label := deviceLabel(r.DeviceID)
	d, err := tx.reportedDevice(ctx, r.DeviceID)
	if err != nil {
		return err
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
	now := formatTime(tx.now)
	seen := func() error {
		_, err := tx.exec(ctx, deviceSeenSQL, now, r.DeviceID, now)
		return err
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
			err := tx.queryRowPrepared(ctx, issuedStateSQL, r.DeviceID, r.Version).Scan(&issued)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
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
	if _, err := tx.exec(ctx, recordReportedSQL, r.State, r.Version, now, now, r.DeviceID); err != nil {
		return fmt.Errorf("record report of device %d: %w", r.DeviceID, err)
	}
	if r.Version == d.desiredVer && r.Version > 0 {
		if r.State != d.desired {
			return tx.refuseCommand(ctx, r, d, label)
		}
		return tx.confirmCommand(ctx, r, d.buildingID, label)
	}
	return nil
}

// refuseCommand records that the device reported the command's version in
// the other state: it received the command and did not apply it. The command
// is refused (not confirmed, and no longer merely waiting), journaled as the
// device, and the building's managers are alerted now, not after the
// time-out. A repeat of the same report changes nothing (ReportState treats
// it as a sign of life); a device that confirmed and then reports the other
// state for the same version is refused again, and alerted again.
func (tx *Tx) refuseCommand(ctx context.Context, r doorledger.ReportedState, d *reportedDevice, label string) error {
	var id int64
	var requested string
	var state doorledger.DeviceState
	err := tx.queryRowPrepared(ctx, refuseCommandSQL, formatTime(tx.now), r.DeviceID, r.Version).Scan(&id, &state, &requested)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // refused already
	} else if err != nil {
		return fmt.Errorf("refuse command of device %d version %d: %w", r.DeviceID, r.Version, err)
	}
	if err := tx.auditAs(ctx, 0, label, "command.refused", d.buildingID, "command", id, map[string]any{
		"device": r.DeviceID, "version": r.Version, "desired_state": state, "reported_state": r.State,
		"after_ms": tx.waited(commandKey{r.DeviceID, r.Version}, parseTime(requested)).Milliseconds()}); err != nil {
		return err
	}
	subject, body := notice.DeviceRefusedMail(r.DeviceID, d.details, d.building, id, r.Version, state, r.State)
	return tx.alertManagers(ctx, d.buildingID, false, subject, body,
		"command.refused:"+itoa(id)+":"+formatTime(tx.now))
}

// confirmCommand marks the command of the reported version confirmed, once.
func (tx *Tx) confirmCommand(ctx context.Context, r doorledger.ReportedState, buildingID int64, label string) error {
	var id, latency int64
	var requested string
	var measured any // NULL: not recorded by this process
	if m, ok := tx.db.opened.get(commandKey{r.DeviceID, r.Version}); ok {
		measured = max(tx.mono-m, 0).Microseconds()
	}
	err := tx.queryRowPrepared(ctx, confirmCommandSQL, formatTime(tx.now), r.DeviceID, r.Version, measured).Scan(&id, &requested, &latency)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // confirmed already
	} else if err != nil {
		return fmt.Errorf("confirm command of device %d version %d: %w", r.DeviceID, r.Version, err)
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
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET unconsented = 1 WHERE id = ?`, r.DeviceID); err != nil {
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
	t := formatTime(at)
	_, err := s.db.write.ExecContext(ctx, deviceSeenSQL, t, deviceID, t)
	return err
}
