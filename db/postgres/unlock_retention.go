package postgres

import (
	"context"
	"fmt"
	"time"
)

// purgeChunk bounds the rows one purge transaction deletes.
const purgeChunk = 5000

// Purge deletes, building by building, the events older than the
// building's retention at now (on both their effective time and the time
// received), in chunks, each chunk with an audit entry saying how many it
// deleted. The system's daily job; admins may run it too. now is capped at
// the real time: the database refuses to delete anything younger than the
// retention by its own clock.
func (s *UnlockService) Purge(ctx context.Context, now time.Time) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	if real := time.Now(); now.After(real) {
		now = real
	}
	type building struct {
		id   int64
		days int
	}
	list, err := queryAll(ctx, s.db.pool, func(r interface{ Scan(...any) error }) (building, error) {
		var b building
		return b, r.Scan(&b.id, &b.days)
	}, `SELECT id, unlock_retention_days FROM buildings ORDER BY id`)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, b := range list {
		cutoff := now.AddDate(0, 0, -b.days).UTC().Truncate(time.Microsecond)
		for {
			n, err := s.purgeChunk(ctx, b.id, b.days, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge unlock events of building %d: %w", b.id, err)
			}
			if n < purgeChunk {
				break
			}
		}
	}
	return total, nil
}

func (s *UnlockService) purgeChunk(ctx context.Context, buildingID int64, days int, cutoff time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	ids, err := queryAll(ctx, tx, scanID, `SELECT id FROM unlock_events
		WHERE building_id = $1 AND effective_at < $2 AND received_at < $2 ORDER BY id LIMIT $3`, buildingID, cutoff, purgeChunk)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// The tamper-evident log keeps the purged leaves and records which ids
	// went and their hashes, so verify accepts exactly these missing rows.
	if _, err := tx.LogUnlockPurge(ctx, buildingID, cutoff, ids); err != nil {
		return 0, fmt.Errorf("log purge: %w", err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM unlock_events WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, err
	}
	n := tag.RowsAffected()
	if err := tx.audit(ctx, "unlocks.purge", buildingID, "building", buildingID, map[string]any{
		"deleted": n, "before": cutoff.Format(logTimeLayout), "retention_days": days}); err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}
