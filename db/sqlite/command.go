package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/sentlog"
)

// consentActive reports whether the device's consent permits enabling it now:
// signed, of the device's building, and not past its expiry.
func (tx *Tx) consentActive(ctx context.Context, deviceID int64) (bool, error) {
	var n int
	err := tx.queryRowPrepared(ctx, consentActiveSQL, deviceID, formatTime(tx.now)).Scan(&n)
	return n > 0, err
}

// The statements of setDesiredState and consentActive: prepared by the device
// service's write paths (commandWriteSQL), plain SQL from other callers.
const (
	consentActiveSQL = `SELECT COUNT(*) FROM devices d JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
		WHERE d.id = ? AND c.status = 'signed' AND c.expires_at > ?`
	desiredOfSQL     = `SELECT building_id, desired_version, retired FROM devices WHERE id = ?`
	supersedeSQL     = `UPDATE commands SET status = 'superseded' WHERE device_id = ? AND status IN ('pending', 'sent', 'not_confirmed', 'refused')`
	setDesiredSQL    = `UPDATE devices SET desired_state = ?, desired_version = ? WHERE id = ?`
	insertCommandSQL = `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
)

var commandWriteSQL = []string{consentActiveSQL, desiredOfSQL, supersedeSQL, setDesiredSQL, insertCommandSQL, auditInsertSQL}

// setDesiredState writes a device's next desired state and the command that
// carries it, in tx, with its audit entry. Older open commands of the device are
// superseded. The new desired state is pushed to the device after commit.
func (tx *Tx) setDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	if !state.Valid() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose enabled or disabled.")
	}
	var buildingID, version int64
	var retired bool
	if err := tx.queryRowPrepared(ctx, desiredOfSQL, deviceID).Scan(&buildingID, &version, &retired); err != nil {
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
	if _, err := tx.exec(ctx, supersedeSQL, deviceID); err != nil {
		return nil, err
	}
	version++
	if _, err := tx.exec(ctx, setDesiredSQL, state, version, deviceID); err != nil {
		return nil, fmt.Errorf("set desired state of device %d: %w", deviceID, err)
	}
	c := callerFrom(ctx)
	res, err := tx.exec(ctx, insertCommandSQL,
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
	ids, err := scanIDs(rows)
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

// Delivery records. After a push the controller records that the transport
// took the command (MarkSentMany). Written in a transaction of its own, that
// record took the single writer just before the device's confirming report
// in nearly every revoke, so the report waited behind a durable commit it did
// not need (docs/benchmarks.md). The records are therefore held in
// memory and written by the next transaction that concerns them: the
// device's report (usually a millisecond later), ExpireUnconfirmed, MarkSent,
// or on their own SentFlushDelay after the first one is held, or at FlushSent.
// Each carries the time of the push, and the statement is order-free (the
// latest time wins, "pending" becomes "sent" but "confirmed" and "not
// confirmed" stay), so a record written after the report that confirmed its
// command, or given back by a failed transaction and written later, leaves
// the same row. A crash loses at most the records of the last SentFlushDelay:
// the attempt count and sent time of those commands, never a desired state or
// a confirmation (the portal re-publishes every desired state at start).

// markSentSQL records one delivery of a command at a time.
const markSentSQL = `UPDATE commands SET attempts = attempts + 1, sent_at = MAX(COALESCE(sent_at, ''), ?), last_error = '',
	status = CASE status WHEN 'pending' THEN 'sent' ELSE status END WHERE id = ?`

// sentMark is one delivery record held until written.
type sentMark = sentlog.Mark

// sentLog holds delivery records until a transaction writes them
// (internal/sentlog).
type sentLog struct{ sentlog.Log }

func (l *sentLog) take(device int64) []sentMark { return l.Take(device) }
func (l *sentLog) restore(marks []sentMark)     { l.Restore(marks) }

// writeSent writes held delivery records in tx.
func (tx *Tx) writeSent(ctx context.Context, marks []sentMark) error {
	for _, m := range marks {
		if _, err := tx.exec(ctx, markSentSQL, formatTime(m.At), m.Command); err != nil {
			return fmt.Errorf("mark command %d sent: %w", m.Command, err)
		}
	}
	return nil
}

// MarkSentMany records that the transport took these commands, now. It
// returns at once: the records are written by the next transaction of their
// device (its report, normally) or within SentFlushDelay (see sentLog).
func (s *DeviceService) MarkSentMany(ctx context.Context, sent []doorledger.DesiredState) error {
	at := s.db.Now()
	marks := make([]sentMark, 0, len(sent))
	for _, d := range sent {
		if d.CommandID != 0 {
			marks = append(marks, sentMark{Command: d.CommandID, Device: d.DeviceID, At: at})
		}
	}
	if s.sent.Add(marks) {
		time.AfterFunc(s.SentFlushDelay, func() {
			s.sent.Disarm()
			ctx, cancel := context.WithTimeout(doorledger.NewSystemContext(context.Background(), "system"), 5*time.Second)
			defer cancel()
			// On failure the records stay held: ExpireUnconfirmed, which the
			// controller runs every few seconds, writes them.
			_ = s.FlushSent(ctx)
		})
	}
	return nil
}

// FlushSent writes every delivery record still held, in one transaction. The
// controller calls it when it stops.
func (s *DeviceService) FlushSent(ctx context.Context) error {
	if s.sent.Len() == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, markSentSQL)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	marks := s.sent.take(0)
	err = tx.writeSent(ctx, marks)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.sent.restore(marks)
		return err
	}
	return nil
}

// MarkSent records one delivery attempt of a command, at once. On success the
// command is sent (a pending one becomes "sent"; a not-confirmed one stays so
// while it is retried, so that the time-out does not report it again); on
// failure the error is kept for the manager to see. Delivery records still
// held are written first, in the same transaction. ENOTFOUND for an unknown
// command.
func (s *DeviceService) MarkSent(ctx context.Context, commandID int64, sendErr error) error {
	tx, err := s.db.BeginTx(ctx, markSentSQL)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	marks := s.sent.take(0)
	err = tx.writeSent(ctx, marks)
	if err == nil {
		err = tx.markSent(ctx, commandID, sendErr)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.sent.restore(marks)
		return err
	}
	return nil
}

func (tx *Tx) markSent(ctx context.Context, commandID int64, sendErr error) error {
	var res sql.Result
	var err error
	if sendErr == nil {
		res, err = tx.exec(ctx, markSentSQL, formatTime(tx.now), commandID)
	} else {
		msg := sendErr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		res, err = tx.ExecContext(ctx, `UPDATE commands SET attempts = attempts + 1, last_error = ? WHERE id = ?`, msg, commandID)
	}
	if err != nil {
		return fmt.Errorf("mark command %d sent: %w", commandID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "Command not found.")
	}
	return nil
}

// SetDesiredState enables or disables one device (the building's managers and
// admins). ENOTFOUND when the caller cannot see the device, EFORBIDDEN when it
// may only look, ECONFLICT to enable without an active consent or a retired device.
func (s *DeviceService) SetDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	reason, err := cleanReason(reason)
	if err != nil {
		return nil, err
	}
	c := callerFrom(ctx)
	stmts := commandWriteSQL
	if scope, _, err := deviceScope(c); err == nil {
		stmts = append(slices.Clip(stmts), findDeviceSQL(scope))
	}
	tx, err := s.db.BeginTx(ctx, stmts...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.manageDevice(ctx, c, deviceID); err != nil {
		return nil, err
	}
	cmd, err := tx.setDesiredState(ctx, deviceID, state, reason)
	if err != nil {
		return nil, err
	}
	return cmd, tx.Commit()
}

// DisableDevices disables, in one transaction, every device matching f in the
// caller's buildings: a building lockdown (f.BuildingID), or every device of one
// installer, vendor or consent in all the buildings the caller manages (admins:
// all). Retired devices are skipped unless still enabled. EINVALID for an empty
// filter, EFORBIDDEN for board members and installers, ENOTFOUND for a building
// the caller does not see.
func (s *DeviceService) DisableDevices(ctx context.Context, f doorledger.DeviceFilter, reason string) ([]*doorledger.Command, error) {
	reason, err := cleanReason(reason)
	if err != nil {
		return nil, err
	}
	if f.BuildingID == 0 && f.InstallerID == 0 && strings.TrimSpace(f.Vendor) == "" && f.ConsentID == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose a building, an installer or a vendor whose devices to disable.")
	}
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx, commandWriteSQL...)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if f.BuildingID != 0 {
		if err := checkManage(ctx, tx, c, f.BuildingID); err != nil {
			return nil, err
		}
	} else if err := c.requireSignedIn(); err != nil {
		return nil, err
	} else if !canManageDevices(c) {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only managers may disable devices.")
	}
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	where, fargs := deviceFilterWhere(f)
	rows, err := tx.QueryContext(ctx, `SELECT d.id FROM devices d WHERE `+scope+where+
		` AND (d.retired = 0 OR d.desired_state = 'enabled') ORDER BY d.id`, append(args, fargs...)...)
	if err != nil {
		return nil, err
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, err
	}
	cmds := make([]*doorledger.Command, 0, len(ids))
	perBuilding := map[int64][]int64{}
	var order []int64
	for _, id := range ids {
		cmd, err := tx.setDesiredState(ctx, id, doorledger.StateDisabled, reason)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
		if _, ok := perBuilding[cmd.BuildingID]; !ok {
			order = append(order, cmd.BuildingID)
		}
		perBuilding[cmd.BuildingID] = append(perBuilding[cmd.BuildingID], cmd.ID)
	}
	// One entry per building says what the bulk action was; each device has its own.
	for _, b := range order {
		if err := tx.audit(ctx, "device.disable_many", b, "building", b, map[string]any{
			"building": f.BuildingID, "installer": f.InstallerID, "vendor": strings.TrimSpace(f.Vendor), "consent": f.ConsentID,
			"reason": reason, "commands": perBuilding[b]}); err != nil {
			return nil, err
		}
	}
	return cmds, tx.Commit()
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

const commandColumns = `cm.id, cm.device_id, cm.building_id, cm.state, cm.version, cm.reason, cm.requested_by, cm.requested_at,
	cm.sent_at, cm.attempts, cm.last_error, cm.confirmed_at, cm.refused_at, cm.status, COALESCE(cm.latency_us, 0)`

func scanCommands(rows *sql.Rows) ([]*doorledger.Command, error) {
	defer rows.Close()
	var list []*doorledger.Command
	for rows.Next() {
		var cm doorledger.Command
		var took int64
		if err := rows.Scan(&cm.ID, &cm.DeviceID, &cm.BuildingID, &cm.State, &cm.Version, &cm.Reason, &cm.RequestedBy,
			nullTime{&cm.RequestedAt}, nullTime{&cm.SentAt}, &cm.Attempts, &cm.LastError, nullTime{&cm.ConfirmedAt}, nullTime{&cm.RefusedAt}, &cm.Status, &took); err != nil {
			return nil, err
		}
		if cm.Status == doorledger.CommandConfirmed {
			cm.Took = time.Duration(took) * time.Microsecond
		}
		list = append(list, &cm)
	}
	return list, rows.Err()
}

// FindCommands lists the commands of devices the caller may see, newest first.
// ENOTFOUND for a device or building the caller does not see.
func (s *DeviceService) FindCommands(ctx context.Context, f doorledger.CommandFilter) ([]*doorledger.Command, error) {
	c := callerFrom(ctx)
	scope, args, err := deviceScope(c)
	if err != nil {
		return nil, err
	}
	if f.DeviceID != 0 {
		if _, err := findDevice(ctx, s.db.read, c, f.DeviceID, s.db.Now()); err != nil {
			return nil, err
		}
		scope += ` AND cm.device_id = ?`
		args = append(args, f.DeviceID)
	}
	if f.BuildingID != 0 {
		if err := checkBuilding(ctx, s.db.read, c, f.BuildingID); err != nil {
			return nil, err
		}
		scope += ` AND cm.building_id = ?`
		args = append(args, f.BuildingID)
	}
	if f.Open {
		scope += ` AND cm.status IN ('pending', 'sent', 'not_confirmed', 'refused')`
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE `+scope+` ORDER BY cm.id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	cmds, err := scanCommands(rows)
	s.db.measureCommands(cmds)
	return cmds, err
}

// CommandProgress is what a lockdown page polls: of the given commands (those
// the caller may see; others are left out), how many the devices confirmed, and
// the rest with their status (pending, sent, not_confirmed, refused or superseded), so
// the page can say "confirmed of N" with N = confirmed + len(unconfirmed).
func (s *DeviceService) CommandProgress(ctx context.Context, commandIDs []int64) (confirmed int, unconfirmed []*doorledger.Command, err error) {
	c := callerFrom(ctx)
	scope, args, err := deviceScope(c)
	if err != nil {
		return 0, nil, err
	}
	if len(commandIDs) == 0 {
		return 0, nil, nil
	}
	ids, err := json.Marshal(commandIDs)
	if err != nil {
		return 0, nil, err
	}
	// One JSON parameter rather than one per id: a lockdown can hold more
	// commands than SQLite allows parameters.
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.id IN (SELECT value FROM json_each(?)) AND `+scope+` ORDER BY cm.id`, append([]any{string(ids)}, args...)...)
	if err != nil {
		return 0, nil, err
	}
	cmds, err := scanCommands(rows)
	if err != nil {
		return 0, nil, err
	}
	s.db.measureCommands(cmds)
	for _, cm := range cmds {
		if cm.Status == doorledger.CommandConfirmed {
			confirmed++
		} else {
			unconfirmed = append(unconfirmed, cm)
		}
	}
	return confirmed, unconfirmed, nil
}

// PendingDesired returns the current desired state of every device that is not
// retired and was ever given one (version > 0), with its latest command: what
// the portal publishes (retained) at start-up, since the broker's own storage
// is not trusted.
func (s *DeviceService) PendingDesired(ctx context.Context) ([]doorledger.DesiredState, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT d.id, cm.id, d.desired_state, d.desired_version, cm.requested_at
		FROM devices d JOIN commands cm ON cm.device_id = d.id AND cm.version = d.desired_version
		WHERE d.retired = 0 AND d.desired_version > 0 ORDER BY d.id`)
	if err != nil {
		return nil, err
	}
	return scanDesired(rows)
}

func scanDesired(rows *sql.Rows) ([]doorledger.DesiredState, error) {
	defer rows.Close()
	var list []doorledger.DesiredState
	for rows.Next() {
		var ds doorledger.DesiredState
		if err := rows.Scan(&ds.DeviceID, &ds.CommandID, &ds.State, &ds.Version, nullTime{&ds.IssuedAt}); err != nil {
			return nil, err
		}
		list = append(list, ds)
	}
	return list, rows.Err()
}

// ExpireUnconfirmed marks the commands still pending or sent more than timeout
// after they were requested as not confirmed, audits each and alerts the
// building's managers once per command. It returns the desired states of every
// not-confirmed or refused command of a device in service, for the controller
// to retry. A refused command keeps its status: the device answered.
func (s *DeviceService) ExpireUnconfirmed(ctx context.Context, timeout time.Duration) ([]doorledger.DesiredState, error) {
	if timeout <= 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The time-out must be positive.")
	}
	tx, err := s.db.BeginTx(ctx, markSentSQL)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Delivery records still held are written first, as they happened first.
	marks := s.sent.take(0)
	err = tx.writeSent(ctx, marks)
	var retries []doorledger.DesiredState
	if err == nil {
		retries, err = tx.expireUnconfirmed(ctx, timeout)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.sent.restore(marks)
		return nil, err
	}
	return retries, nil
}

// expireUnconfirmed is ExpireUnconfirmed's work in tx, without the commit.
func (tx *Tx) expireUnconfirmed(ctx context.Context, timeout time.Duration) ([]doorledger.DesiredState, error) {
	sysctx := doorledger.NewSystemContext(ctx, "system")
	type expired struct {
		id, deviceID, buildingID, version int64
		state                             doorledger.DeviceState
		details                           doorledger.DeviceDetails
		building                          string
	}
	// How long each open command has waited is judged in Go (Tx.waited): on
	// the monotonic clock for the commands this process recorded, so that
	// setting the machine's clock forward does not time them out at once, nor
	// back delay their alert by as much; by the recorded time for the others.
	// The redundant status list lets SQLite use the partial index commands_open.
	rows, err := tx.QueryContext(ctx, `SELECT cm.id, cm.device_id, cm.building_id, cm.version, cm.state, d.vendor, d.model, d.serial, d.location, b.name,
		cm.requested_at, cm.status
		FROM commands cm JOIN devices d ON d.id = cm.device_id JOIN buildings b ON b.id = cm.building_id
		WHERE cm.status IN ('pending', 'sent', 'not_confirmed', 'refused') AND d.retired = 0
		ORDER BY cm.id`)
	if err != nil {
		return nil, err
	}
	var list []expired
	open := map[commandKey]bool{}
	for rows.Next() {
		var e expired
		var requested string
		var status doorledger.CommandStatus
		if err := rows.Scan(&e.id, &e.deviceID, &e.buildingID, &e.version, &e.state, &e.details.Vendor, &e.details.Model,
			&e.details.Serial, &e.details.Location, &e.building, &requested, &status); err != nil {
			rows.Close()
			return nil, err
		}
		k := commandKey{e.deviceID, e.version}
		open[k] = true
		if (status == doorledger.CommandPending || status == doorledger.CommandSent) && tx.waited(k, parseTime(requested)) > timeout {
			list = append(list, e)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tx.db.opened.keep(open)
	for _, e := range list {
		if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = 'not_confirmed' WHERE id = ?`, e.id); err != nil {
			return nil, fmt.Errorf("expire command %d: %w", e.id, err)
		}
		if err := tx.audit(sysctx, "command.not_confirmed", e.buildingID, "command", e.id, map[string]any{
			"device": e.deviceID, "state": e.state, "version": e.version, "timeout": timeout.String()}); err != nil {
			return nil, err
		}
		subject, body := notice.CommandNotConfirmedAlert(e.deviceID, e.details, e.building, e.state, e.id, e.version, timeout)
		if err := tx.alertManagers(ctx, e.buildingID, false, subject, body, "command.not_confirmed:"+itoa(e.id)); err != nil {
			return nil, err
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT cm.device_id, cm.id, cm.state, cm.version, cm.requested_at
		FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.status IN ('pending', 'sent', 'not_confirmed', 'refused') AND cm.status IN ('not_confirmed', 'refused') AND d.retired = 0 ORDER BY cm.id`)
	if err != nil {
		return nil, err
	}
	return scanDesired(rows)
}
