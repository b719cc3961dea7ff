package sqlite

import (
	"context"
	"io/fs"
)

// SetBurstMemoryMax sets how many recorded times a group's burst check may
// keep in memory before it counts each event in the database, and returns
// the previous bound. For tests; not safe while unlocks are recorded.
func SetBurstMemoryMax(n int) int {
	old := burstMemoryMax
	burstMemoryMax = n
	return old
}

// SetMigrateThrough makes Open apply the migrations up to the file name
// (e.g. "011_command_refused.sql") only: to build a database as an older
// portal left it, and test a later migration on it.
func SetMigrateThrough(d *DB, name string) { d.migrateThrough = name }

// MigrationsBefore returns the embedded migrations named before name, in
// order, as name and SQL: a test applies them to build a database as an
// older version left it.
func MigrationsBefore(name string) (names, sqls []string, err error) {
	all, err := migrationNames()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range all {
		if n >= "migrations/"+name {
			break
		}
		buf, err := fs.ReadFile(migrationFS, n)
		if err != nil {
			return nil, nil, err
		}
		names, sqls = append(names, n), append(sqls, string(buf))
	}
	return names, sqls, nil
}

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

// IsDiskFull is the classifier of disk-full errors (errors.go).
var IsDiskFull = isDiskFull

// WritersWaiting returns how many write transactions wait for the writer:
// urgent ones and bulk ones (writeGate).
func WritersWaiting(d *DB) (urgent, bulk int) {
	d.writes.mu.Lock()
	defer d.writes.mu.Unlock()
	return len(d.writes.urgent), len(d.writes.bulk)
}

// IngestQueued returns the events waiting for the next ingest transaction.
func IngestQueued(s *UnlockService) int {
	return s.group.Queued()
}
