package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// Acknowledging anomalies: a manager records what was done about an
// anomalous unlock event ("device removed", "courier's account reported").
// unlock_events never changes, so each acknowledgement is a row of its own in
// anomaly_acks (one per event, never changed or deleted: migrations/005),
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
	if err := s.db.pool.QueryRow(ctx, `SELECT building_id FROM unlock_events WHERE id = $1`, eventID).Scan(&buildingID); err != nil {
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
// acknowledgement and one journal entry per event, in one transaction.
// Package sqlite's single writer serializes acknowledgements; here two
// managers acknowledging the same event at once meet at the insert, where
// the second waits for the first's commit, finds its row (ON CONFLICT DO
// NOTHING) and is told who acknowledged it.
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
	events, err := queryAll(ctx, tx, scanUnlock, `SELECT `+unlockColumns+` FROM `+unlockFrom+`
		WHERE e.id = ANY ($1) ORDER BY e.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("read events to acknowledge: %w", err)
	}
	if err := doorledger.CheckAcknowledgeable(buildingID, eventIDs, events, loc); err != nil {
		return nil, err
	}

	for _, e := range events {
		var inserted bool
		if err := tx.QueryRow(ctx, `INSERT INTO anomaly_acks (event_id, building_id, acked_at, user_id, actor, note)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING true`,
			e.ID, buildingID, tx.now, nullID(c.id()), c.label(), note).Scan(&inserted); err != nil {
			if !isNoRows(err) {
				return nil, fmt.Errorf("acknowledge event %d: %w", e.ID, err)
			}
			// Another manager's acknowledgement committed meanwhile.
			var who string
			var when time.Time
			if err := tx.QueryRow(ctx, `SELECT actor, acked_at FROM anomaly_acks WHERE event_id = $1`, e.ID).Scan(&who, at(&when)); err != nil {
				return nil, fmt.Errorf("acknowledge event %d: %w", e.ID, err)
			}
			return nil, doorledger.AlreadyAcknowledged(e.ID, who, when, loc)
		}
		if err := tx.audit(ctx, "anomaly.acknowledge", buildingID, "unlock_event", e.ID, doorledger.AckJournalDetail(e, note)); err != nil {
			return nil, err
		}
		e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = tx.now, c.label(), note
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return events, nil
}

// CountOpenAnomalies counts the building's anomalous events without an
// acknowledgement, stopping at max (1,000 when max <= 0): it walks the
// partial index of flagged events, so its cost grows with the count it
// returns, never with the history's length.
func (s *UnlockService) CountOpenAnomalies(ctx context.Context, buildingID int64, max int) (int, error) {
	if _, err := checkUnlockRead(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return 0, err
	}
	if max <= 0 {
		max = 1000
	}
	var n int
	err := s.db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM unlock_events e
		WHERE e.building_id = $1 AND e.anomalies <> 0 AND NOT EXISTS (SELECT 1 FROM anomaly_acks a WHERE a.event_id = e.id) LIMIT $2) open`,
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

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
