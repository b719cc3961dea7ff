package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/doorledger/doorledger"
)

// Internals of the report's event scan, for the tests in db_test.

var (
	ParseDBTime = parseDBTime
	ParseTime   = parseTime
	FormatTime  = formatTime
)

// SetMaxKeptEvents lowers how many events a report keeps a copy of, until
// the returned function restores it.
func SetMaxKeptEvents(n int) (restore func()) {
	old := maxKeptEvents
	maxKeptEvents = n
	return func() { maxKeptEvents = old }
}

// WalkAsHistory walks a building's events of [from, to) in one read
// snapshot as GatherReport read them before BenchmarkReportEvents' levers:
// History's 15 columns, scanned by scanUnlock (time.Parse, a new event and
// anomaly slice each). For that benchmark.
func WalkAsHistory(ctx context.Context, d *DB, buildingID int64, from, to time.Time, walks int, yield func(*doorledger.UnlockEvent)) error {
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for range walks {
		rows, err := tx.QueryContext(ctx, `SELECT `+unlockColumns+` FROM `+unlockFrom+`
			WHERE e.building_id = ?1 AND e.effective_at >= ?2 AND e.effective_at < ?3 ORDER BY e.effective_at, e.id`, buildingID, formatTime(from), formatTime(to))
		if err != nil {
			return err
		}
		for rows.Next() {
			e, err := scanUnlock(rows)
			if err != nil {
				rows.Close()
				return err
			}
			yield(e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}
