package postgres

import "context"

// SetCountDaysChunk sets how many events one step of UnlockService.CountDays
// counts, and returns the previous value. For tests; not safe while it runs.
func SetCountDaysChunk(n int) int {
	old := countDaysChunk
	countDaysChunk = n
	return old
}

// CountDaysStep runs one step of UnlockService.CountDays on one building
// (dated in zone): a test interleaves other writes between steps.
func CountDaysStep(ctx context.Context, s *UnlockService, buildingID int64, zone string) (done bool, err error) {
	_, done, err = s.countDaysStep(ctx, buildingID, zone)
	return done, err
}

// IngestQueued returns how many events wait for s's next ingest transaction.
func IngestQueued(s *UnlockService) int { return s.group.Queued() }
