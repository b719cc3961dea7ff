package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// Acknowledging anomalies: a manager records what was done about an
// anomalous unlock event ("device removed", "courier's account reported").
// unlock_events never changes, so each acknowledgement is a row of its own in
// anomaly_acks (one per event, never changed or deleted: migrations/010),
// written with its journal entry in one transaction. History reads join it
// (unlockFrom), so every event carries its acknowledgement.

// AcknowledgeAnomaly acknowledges one anomalous event with a note (the
// managers and admins of its building). An event the caller may not read is
// ENOTFOUND, whoever asks, so that ids do not leak.
func (s *UnlockService) AcknowledgeAnomaly(ctx context.Context, eventID int64, note string) (*doorledger.UnlockEvent, error) {
	if err := callerFrom(ctx).requireSignedIn(); err != nil {
		return nil, err
	}
	var buildingID int64
	if err := s.db.read.QueryRowContext(ctx, `SELECT building_id FROM unlock_events WHERE id = ?`, eventID).Scan(&buildingID); err != nil {
		return nil, notFound(err, "Event not found.")
	}
	events, err := s.acknowledge(ctx, buildingID, []int64{eventID}, note)
	if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Event not found.")
	} else if err != nil {
		return nil, err
	}
	return events[0], nil
}

// AcknowledgeAnomalies acknowledges anomalous events of a building with one
// note, all or nothing. Repeated ids count once.
func (s *UnlockService) AcknowledgeAnomalies(ctx context.Context, buildingID int64, eventIDs []int64, note string) ([]*doorledger.UnlockEvent, error) {
	return s.acknowledge(ctx, buildingID, eventIDs, note)
}

// acknowledge checks the caller, the note and every event, then writes one
// acknowledgement and one journal entry per event, in one transaction on the
// writer (which serializes acknowledgements: the check for an existing one
// cannot race another manager's).
func (s *UnlockService) acknowledge(ctx context.Context, buildingID int64, eventIDs []int64, note string) ([]*doorledger.UnlockEvent, error) {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	loc, err := checkUnlockRead(ctx, tx, c, buildingID)
	if err != nil {
		return nil, err
	}
	note, ids, err := doorledger.CheckAck(c.role(), note, eventIDs)
	if err != nil {
		return nil, err
	}
	// At most MaxAckEvents ids: one query.
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	events, err := queryAll(ctx, tx, scanUnlock, `SELECT `+unlockColumns+` FROM `+unlockFrom+`
		WHERE e.id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")+`) ORDER BY e.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read events to acknowledge: %w", err)
	}
	if err := doorledger.CheckAcknowledgeable(buildingID, eventIDs, events, loc); err != nil {
		return nil, err
	}

	now := formatTime(tx.now)
	for _, e := range events {
		if _, err := tx.ExecContext(ctx, `INSERT INTO anomaly_acks (event_id, building_id, acked_at, user_id, actor, note)
			VALUES (?, ?, ?, ?, ?, ?)`, e.ID, buildingID, now, nullID(c.id()), c.label(), note); err != nil {
			if isUniqueViolation(err) { // cannot happen under the write lock; said plainly if it does
				return nil, doorledger.Errorf(doorledger.ECONFLICT, "Event %d was already acknowledged.", e.ID)
			}
			return nil, fmt.Errorf("acknowledge event %d: %w", e.ID, err)
		}
		if err := tx.audit(ctx, "anomaly.acknowledge", buildingID, "unlock_event", e.ID, doorledger.AckJournalDetail(e, note)); err != nil {
			return nil, err
		}
		e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = parseTime(now), c.label(), note
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return events, nil
}

// CountOpenAnomalies counts the building's anomalous events without an
// acknowledgement, stopping at max (1,000 when max <= 0): it walks the
// partial index of flagged events, so its cost grows with the count it
// returns, never with the history's length.
func (s *UnlockService) CountOpenAnomalies(ctx context.Context, buildingID int64, max int) (int, error) {
	if _, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return 0, err
	}
	if max <= 0 {
		max = 1000
	}
	var n int
	err := s.db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM unlock_events e
		WHERE e.building_id = ?1 AND e.anomalies <> 0 AND NOT EXISTS (SELECT 1 FROM anomaly_acks a WHERE a.event_id = e.id) LIMIT ?2)`,
		buildingID, max).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open anomalies: %w", err)
	}
	return n, nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
