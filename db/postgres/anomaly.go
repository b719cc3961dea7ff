package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	if r := c.role(); r != doorledger.RoleAdmin && r != doorledger.RoleManager {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only the building's managers may acknowledge anomalies.")
	}
	note, err = doorledger.NormalizeAckNote(note)
	if err != nil {
		return nil, err
	}
	ids := slices.Clone(eventIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	switch {
	case len(ids) == 0:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Choose the anomalies to acknowledge.")
	case len(ids) > doorledger.MaxAckEvents:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Acknowledge at most %d anomalies at once.", doorledger.MaxAckEvents)
	}

	// At most MaxAckEvents ids: one query.
	events, err := queryAll(ctx, tx, scanUnlock, `SELECT `+unlockColumns+` FROM `+unlockFrom+`
		WHERE e.id = ANY ($1) ORDER BY e.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("read events to acknowledge: %w", err)
	}
	found := make(map[int64]*doorledger.UnlockEvent, len(ids))
	for _, e := range events {
		found[e.ID] = e
	}
	// Refusals in the order the ids were given, so the message names the
	// first event the caller listed that cannot be acknowledged.
	for _, id := range eventIDs {
		e := found[id]
		switch {
		case e == nil || e.BuildingID != buildingID:
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Event %d not found.", id)
		case len(e.Anomalies) == 0:
			return nil, doorledger.Errorf(doorledger.EINVALID, "Event %d is not flagged as an anomaly: there is nothing to acknowledge.", id)
		case e.Acknowledged():
			return nil, alreadyAcknowledged(id, e.AcknowledgedBy, e.AcknowledgedAt, loc)
		}
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
			return nil, alreadyAcknowledged(e.ID, who, when, loc)
		}
		detail := map[string]any{"note": note, "anomalies": e.Anomalies, "event_id": e.EventID}
		if e.DeviceID != 0 {
			detail["device_id"] = e.DeviceID
		} else {
			detail["device_ref"] = e.DeviceRef
		}
		if err := tx.audit(ctx, "anomaly.acknowledge", buildingID, "unlock_event", e.ID, detail); err != nil {
			return nil, err
		}
		e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = tx.now, c.label(), note
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return events, nil
}

// alreadyAcknowledged is the ECONFLICT of an event acknowledged before.
func alreadyAcknowledged(id int64, by string, when time.Time, loc *time.Location) error {
	return doorledger.Errorf(doorledger.ECONFLICT, "Event %d was already acknowledged by %s on %s.",
		id, by, when.In(loc).Format("2006-01-02 15:04 MST"))
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
