package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
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

// Delivery records. After a push the controller records that the transport
// took the command (MarkSentMany). Written in a transaction of its own, that
// record took the single writer just before the device's confirming report
// in 199 of 200 revokes, so the report waited behind a durable commit it did
// not need (docs/benchmarks.md, issue 4). The records are therefore held in
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
type sentMark struct {
	command, device int64
	at              string
}

// sentLog holds delivery records until a transaction writes them. A
// transaction takes them while it holds the writer and gives them back unless
// it commits, so each is written exactly once.
type sentLog struct {
	mu    sync.Mutex
	marks []sentMark
	armed bool // a flush is scheduled
}

// add holds marks; it reports whether a flush must be scheduled.
func (l *sentLog) add(marks []sentMark) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks = append(l.marks, marks...)
	arm := !l.armed && len(l.marks) > 0
	l.armed = l.armed || arm
	return arm
}

// take removes and returns the marks of device (0: all).
func (l *sentLog) take(device int64) []sentMark {
	l.mu.Lock()
	defer l.mu.Unlock()
	if device == 0 {
		m := l.marks
		l.marks = nil
		return m
	}
	var taken []sentMark
	kept := l.marks[:0]
	for _, m := range l.marks {
		if m.device == device {
			taken = append(taken, m)
		} else {
			kept = append(kept, m)
		}
	}
	clear(l.marks[len(kept):])
	l.marks = kept
	return taken
}

// restore gives back marks a transaction did not commit.
func (l *sentLog) restore(marks []sentMark) {
	if len(marks) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks = append(l.marks, marks...)
}

func (l *sentLog) disarm() {
	l.mu.Lock()
	l.armed = false
	l.mu.Unlock()
}

// writeSent writes held delivery records in tx.
func (tx *Tx) writeSent(ctx context.Context, marks []sentMark) error {
	for _, m := range marks {
		if _, err := tx.exec(ctx, markSentSQL, m.at, m.command); err != nil {
			return fmt.Errorf("mark command %d sent: %w", m.command, err)
		}
	}
	return nil
}

// MarkSentMany records that the transport took these commands, now. It
// returns at once: the records are written by the next transaction of their
// device (its report, normally) or within SentFlushDelay (see sentLog).
func (s *DeviceService) MarkSentMany(ctx context.Context, sent []doorledger.DesiredState) error {
	at := formatTime(s.db.Now())
	marks := make([]sentMark, 0, len(sent))
	for _, d := range sent {
		if d.CommandID != 0 {
			marks = append(marks, sentMark{command: d.CommandID, device: d.DeviceID, at: at})
		}
	}
	if s.sent.add(marks) {
		time.AfterFunc(s.SentFlushDelay, func() {
			s.sent.disarm()
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
	s.sent.mu.Lock()
	n := len(s.sent.marks)
	s.sent.mu.Unlock()
	if n == 0 {
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
