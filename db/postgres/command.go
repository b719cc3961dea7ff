package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/sentlog"
	"github.com/jackc/pgx/v5"
)

// consentActive reports whether the device's consent permits enabling it now:
// signed, of the device's building, and not past its expiry.
func (tx *Tx) consentActive(ctx context.Context, deviceID int64) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices d JOIN consents c ON c.id = d.consent_id AND c.building_id = d.building_id
		WHERE d.id = $1 AND c.status = 'signed' AND c.expires_at > $2)`, deviceID, tx.now).Scan(&ok)
	return ok, err
}

// setDesiredState writes a device's next desired state and the command that
// carries it, in tx, with its audit entry. Older open commands of the device are
// superseded. The new desired state is pushed to the device after commit.
func (tx *Tx) setDesiredState(ctx context.Context, deviceID int64, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	if !state.Valid() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose enabled or disabled.")
	}
	d, err := tx.lockDesired(ctx, deviceID, "true", sqlArgs{deviceID})
	if err != nil {
		return nil, err
	}
	return tx.writeDesired(ctx, d, state, reason)
}

// desiredDevice is what writing a device's desired state reads first.
type desiredDevice struct {
	id, buildingID, version int64
	retired                 bool
}

// lockDesired reads the device whose desired state is about to change and
// takes its row FOR UPDATE, where scope (a condition on devices d) holds;
// ENOTFOUND otherwise. args are $1, the device id, then scope's. The row is
// taken before desired_version is read: a second writer of the same device
// waits for the first to commit, then reads the version it wrote and writes
// the next one, rather than both writing the same version and one failing
// on commands' unique constraint.
func (tx *Tx) lockDesired(ctx context.Context, deviceID int64, scope string, args sqlArgs) (desiredDevice, error) {
	d := desiredDevice{id: deviceID}
	err := tx.QueryRow(ctx, `SELECT d.building_id, d.desired_version, d.retired FROM devices d WHERE d.id = $1 AND `+scope+` FOR UPDATE`,
		args...).Scan(&d.buildingID, &d.version, &d.retired)
	return d, notFound(err, "Device not found.")
}

// writeDesired is setDesiredState's work once the device is locked. Its
// three writes go to the server in one round trip (a pipelined batch):
// on PostgreSQL each statement waits for the server, and a revoke's
// transaction is on the path from the click to the device.
func (tx *Tx) writeDesired(ctx context.Context, d desiredDevice, state doorledger.DeviceState, reason string) (*doorledger.Command, error) {
	if !state.Valid() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose enabled or disabled.")
	}
	if state == doorledger.StateEnabled {
		if d.retired {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "This device is retired and cannot be enabled.")
		}
		ok, err := tx.consentActive(ctx, d.id)
		if err != nil {
			return nil, err
		} else if !ok {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "This device has no active consent from an authorized signer, so it cannot be enabled.")
		}
		if hold, err := tx.privacyHold(ctx, d.id); err != nil {
			return nil, err
		} else if hold != "" {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "%s", hold)
		}
	}
	version := d.version + 1
	c := callerFrom(ctx)
	var id int64
	var b pgx.Batch
	b.Queue(`UPDATE commands SET status = 'superseded' WHERE device_id = $1 AND status IN ('pending', 'sent', 'not_confirmed', 'refused')`, d.id)
	b.Queue(`UPDATE devices SET desired_state = $1, desired_version = $2 WHERE id = $3`, state, version, d.id)
	b.Queue(`INSERT INTO commands (device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		d.id, d.buildingID, state, version, reason, c.id(), c.label(), tx.now).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("set desired state of device %d: %w", d.id, err)
	}
	action := "device.disable"
	if state == doorledger.StateEnabled {
		action = "device.enable"
	}
	if err := tx.audit(ctx, action, d.buildingID, "device", d.id, map[string]any{"command": id, "version": version, "reason": reason}); err != nil {
		return nil, err
	}
	cmd := &doorledger.Command{ID: id, DeviceID: d.id, BuildingID: d.buildingID, State: state, Version: version,
		Reason: reason, RequestedBy: c.label(), RequestedAt: tx.now, Status: doorledger.CommandPending}
	tx.pushes = append(tx.pushes, doorledger.DesiredState{DeviceID: d.id, CommandID: id, State: state, Version: version, IssuedAt: tx.now})
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

// Delivery records, as in package sqlite (its command.go says why): after a
// push the controller records that the transport took the command
// (MarkSentMany). The records are held in memory and written by the next
// transaction that concerns them: the device's report, ExpireUnconfirmed,
// MarkSent, or on their own SentFlushDelay after the first one is held, or at
// FlushSent. The statement is order-free (the latest time wins, "pending"
// becomes "sent" but "confirmed" and "not confirmed" stay), so a record
// written late, or given back by a failed transaction and written again,
// leaves the same row.

// markSentSQL records one delivery of a command at a time. GREATEST ignores
// a NULL sent_at.
const markSentSQL = `UPDATE commands SET attempts = attempts + 1, sent_at = GREATEST(sent_at, $1), last_error = '',
	status = CASE status WHEN 'pending' THEN 'sent' ELSE status END WHERE id = $2`

// sentMark is one delivery record held until written.
type sentMark = sentlog.Mark

// sentLog holds delivery records until a transaction writes them
// (internal/sentlog).
type sentLog struct{ sentlog.Log }

func (l *sentLog) take(device int64) []sentMark { return l.Take(device) }
func (l *sentLog) restore(marks []sentMark)     { l.Restore(marks) }

// writeSent writes held delivery records in tx. Their devices' rows are
// taken first, in the order of their ids, then their commands': the order
// every writer of devices takes them in (setDesiredState, a lockdown), so
// that a report or a command of the same device at once waits rather than
// deadlocks.
func (tx *Tx) writeSent(ctx context.Context, marks []sentMark) error {
	if len(marks) == 0 {
		return nil
	}
	devices := make([]int64, 0, len(marks))
	for _, m := range marks {
		devices = append(devices, m.Device)
	}
	if _, err := tx.Exec(ctx, `SELECT FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`, devices); err != nil {
		return fmt.Errorf("lock the devices of delivery records: %w", err)
	}
	for _, m := range marks {
		if _, err := tx.Exec(ctx, markSentSQL, m.At, m.Command); err != nil {
			return fmt.Errorf("mark command %d sent: %w", m.Command, err)
		}
	}
	return nil
}

// MarkSentMany records that the transport took these commands, now. It
// returns at once: the records are written by the next transaction of their
// device (its report, normally) or within SentFlushDelay (see sentLog).
func (s *DeviceService) MarkSentMany(ctx context.Context, sent []doorledger.DesiredState) error {
	at := s.db.now()
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

// withSent runs fn in a transaction that first writes every delivery record
// still held, and commits; the records are given back unless it commits.
func (s *DeviceService) withSent(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	marks := s.sent.take(0)
	err = tx.writeSent(ctx, marks)
	if err == nil && fn != nil {
		err = fn(tx)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		s.sent.restore(marks)
		return err
	}
	return nil
}

// FlushSent writes every delivery record still held, in one transaction. The
// controller calls it when it stops.
func (s *DeviceService) FlushSent(ctx context.Context) error {
	if s.sent.Len() == 0 {
		return nil
	}
	return s.withSent(ctx, nil)
}

// MarkSent records one delivery attempt of a command, at once. On success the
// command is sent (a pending one becomes "sent"; a not-confirmed one stays so
// while it is retried, so that the time-out does not report it again); on
// failure the error is kept for the manager to see. Delivery records still
// held are written first, in the same transaction. ENOTFOUND for an unknown
// command.
func (s *DeviceService) MarkSent(ctx context.Context, commandID int64, sendErr error) error {
	return s.withSent(ctx, func(tx *Tx) error { return tx.markSent(ctx, commandID, sendErr) })
}

func (tx *Tx) markSent(ctx context.Context, commandID int64, sendErr error) error {
	var n int64
	if sendErr == nil {
		tag, err := tx.Exec(ctx, markSentSQL, tx.now, commandID)
		if err != nil {
			return fmt.Errorf("mark command %d sent: %w", commandID, err)
		}
		n = tag.RowsAffected()
	} else {
		msg := sendErr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		tag, err := tx.Exec(ctx, `UPDATE commands SET attempts = attempts + 1, last_error = $1 WHERE id = $2`, msg, commandID)
		if err != nil {
			return fmt.Errorf("mark command %d sent: %w", commandID, err)
		}
		n = tag.RowsAffected()
	}
	if n == 0 {
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
	args := sqlArgs{deviceID}
	scope, err := deviceScope(c, &args)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Seen by the caller and locked in one statement: ENOTFOUND when the
	// caller cannot see it, then EFORBIDDEN when it may only look.
	d, err := tx.lockDesired(ctx, deviceID, scope, args)
	if err != nil {
		return nil, err
	}
	if !canManageDevices(c) {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only the building's managers may do that.")
	}
	cmd, err := tx.writeDesired(ctx, d, state, reason)
	if err != nil {
		return nil, err
	}
	return cmd, tx.Commit(ctx)
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
	tx, err := s.db.BeginTx(ctx)
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
	var args sqlArgs
	scope, err := deviceScope(c, &args)
	if err != nil {
		return nil, err
	}
	where := deviceFilterWhere(f, &args)
	ids, err := queryAll(ctx, tx, scanID, `SELECT d.id FROM devices d WHERE `+scope+where+
		` AND (NOT d.retired OR d.desired_state = 'enabled') ORDER BY d.id`, args...)
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
	return cmds, tx.Commit(ctx)
}

const commandColumns = `cm.id, cm.device_id, cm.building_id, cm.state, cm.version, cm.reason, cm.requested_by, cm.requested_at,
	cm.sent_at, cm.attempts, cm.last_error, cm.confirmed_at, cm.refused_at, cm.status, COALESCE(cm.latency_us, 0)`

func scanCommand(row interface{ Scan(...any) error }) (*doorledger.Command, error) {
	var cm doorledger.Command
	var took int64
	if err := row.Scan(&cm.ID, &cm.DeviceID, &cm.BuildingID, &cm.State, &cm.Version, &cm.Reason, &cm.RequestedBy,
		at(&cm.RequestedAt), at(&cm.SentAt), &cm.Attempts, &cm.LastError, at(&cm.ConfirmedAt), at(&cm.RefusedAt), &cm.Status, &took); err != nil {
		return nil, err
	}
	if cm.Status == doorledger.CommandConfirmed {
		cm.Took = time.Duration(took) * time.Microsecond
	}
	return &cm, nil
}

// FindCommands lists the commands of devices the caller may see, newest first.
// ENOTFOUND for a device or building the caller does not see. The device's
// check and the list go to the server together, in one round trip: a
// device page's stream reads them after each report.
func (s *DeviceService) FindCommands(ctx context.Context, f doorledger.CommandFilter) ([]*doorledger.Command, error) {
	c := callerFrom(ctx)
	var args sqlArgs
	scope, err := deviceScope(c, &args)
	if err != nil {
		return nil, err
	}
	var b pgx.Batch
	seen := true
	if f.DeviceID != 0 {
		seenArgs := sqlArgs{f.DeviceID}
		seenScope, err := deviceScope(c, &seenArgs)
		if err != nil {
			return nil, err
		}
		b.Queue(`SELECT EXISTS (SELECT 1 FROM devices d WHERE d.id = $1 AND `+seenScope+`)`, seenArgs...).
			QueryRow(func(row pgx.Row) error { return row.Scan(&seen) })
		scope += ` AND cm.device_id = ` + args.add(f.DeviceID)
	}
	if f.BuildingID != 0 {
		if err := checkBuilding(ctx, s.db.pool, c, f.BuildingID); err != nil {
			return nil, err
		}
		scope += ` AND cm.building_id = ` + args.add(f.BuildingID)
	}
	if f.Open {
		scope += ` AND cm.status IN ('pending', 'sent', 'not_confirmed', 'refused')`
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var cmds []*doorledger.Command
	b.Queue(`SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE `+scope+` ORDER BY cm.id DESC LIMIT `+args.add(f.Limit), args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			cm, err := scanCommand(rows)
			if err != nil {
				return err
			}
			cmds = append(cmds, cm)
		}
		return rows.Err()
	})
	if err := s.db.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	if !seen {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
	}
	s.db.measureCommands(cmds)
	return cmds, nil
}

// CommandProgress is what a lockdown page polls: of the given commands (those
// the caller may see; others are left out), how many the devices confirmed, and
// the rest with their status (pending, sent, not_confirmed, refused or superseded), so
// the page can say "confirmed of N" with N = confirmed + len(unconfirmed).
func (s *DeviceService) CommandProgress(ctx context.Context, commandIDs []int64) (confirmed int, unconfirmed []*doorledger.Command, err error) {
	c := callerFrom(ctx)
	args := sqlArgs{commandIDs}
	scope, err := deviceScope(c, &args)
	if err != nil {
		return 0, nil, err
	}
	if len(commandIDs) == 0 {
		return 0, nil, nil
	}
	// One array parameter rather than one per id: a lockdown can hold
	// thousands of commands.
	cmds, err := queryAll(ctx, s.db.pool, scanCommand, `SELECT `+commandColumns+` FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.id = ANY($1) AND `+scope+` ORDER BY cm.id`, args...)
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
	return queryAll(ctx, s.db.pool, scanDesired, `SELECT d.id, cm.id, d.desired_state, d.desired_version, cm.requested_at
		FROM devices d JOIN commands cm ON cm.device_id = d.id AND cm.version = d.desired_version
		WHERE NOT d.retired AND d.desired_version > 0 ORDER BY d.id`)
}

func scanDesired(row interface{ Scan(...any) error }) (doorledger.DesiredState, error) {
	var ds doorledger.DesiredState
	err := row.Scan(&ds.DeviceID, &ds.CommandID, &ds.State, &ds.Version, at(&ds.IssuedAt))
	return ds, err
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
	// Delivery records still held are written first, as they happened first.
	var retries []doorledger.DesiredState
	err := s.withSent(ctx, func(tx *Tx) (err error) {
		retries, err = tx.expireUnconfirmed(ctx, timeout)
		return err
	})
	if err != nil {
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
	// the monotonic clock for the commands this process recorded, by the
	// recorded time for the others (package sqlite's expireUnconfirmed says
	// why). A device's report may confirm a command between this read and
	// its update: the update re-checks the status (READ COMMITTED re-reads
	// the row it waited for) and leaves an answered command alone.
	rows, err := tx.Query(ctx, `SELECT cm.id, cm.device_id, cm.building_id, cm.version, cm.state, d.vendor, d.model, d.serial, d.location, b.name,
		cm.requested_at, cm.status
		FROM commands cm JOIN devices d ON d.id = cm.device_id JOIN buildings b ON b.id = cm.building_id
		WHERE cm.status IN ('pending', 'sent', 'not_confirmed', 'refused') AND NOT d.retired
		ORDER BY cm.id`)
	if err != nil {
		return nil, err
	}
	var list []expired
	open := map[commandKey]bool{}
	for rows.Next() {
		var e expired
		var requested time.Time
		var status doorledger.CommandStatus
		if err := rows.Scan(&e.id, &e.deviceID, &e.buildingID, &e.version, &e.state, &e.details.Vendor, &e.details.Model,
			&e.details.Serial, &e.details.Location, &e.building, at(&requested), &status); err != nil {
			rows.Close()
			return nil, err
		}
		k := commandKey{e.deviceID, e.version}
		open[k] = true
		if (status == doorledger.CommandPending || status == doorledger.CommandSent) && tx.waited(k, requested) > timeout {
			list = append(list, e)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tx.db.opened.keep(open)
	for _, e := range list {
		tag, err := tx.Exec(ctx, `UPDATE commands SET status = 'not_confirmed' WHERE id = $1 AND status IN ('pending', 'sent')`, e.id)
		if err != nil {
			return nil, fmt.Errorf("expire command %d: %w", e.id, err)
		} else if tag.RowsAffected() == 0 {
			continue // answered or superseded meanwhile
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
	return queryAll(ctx, tx, scanDesired, `SELECT cm.device_id, cm.id, cm.state, cm.version, cm.requested_at
		FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.status IN ('not_confirmed', 'refused') AND NOT d.retired ORDER BY cm.id`)
}
