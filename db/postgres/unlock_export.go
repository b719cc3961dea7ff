package postgres

import (
	"context"
	"fmt"
	"io"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/unlockcsv"
)

// ExportCSV streams every event matching f to w as CSV, newest first by
// effective time, page by page, so memory stays constant however many there
// are (internal/unlockcsv: its columns and spreadsheet-safe cells). The
// export is audited first.
func (s *UnlockService) ExportCSV(ctx context.Context, f doorledger.UnlockFilter, w io.Writer) (int64, error) {
	c := callerFrom(ctx)
	loc, err := checkUnlockRead(ctx, s.db.pool, c, f.BuildingID)
	if err != nil {
		return 0, err
	}
	f.After, f.Limit = doorledger.UnlockCursor{}, 0
	query, args, err := historyQuery(f, loc, -1)
	if err != nil {
		return 0, err
	}
	// The journal says what was exported: how many events, of which range
	// and filters (doorledger.AuditSentence reads it).
	var count int64
	if err := s.db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM (`+query+`) export`, args...).Scan(&count); err != nil {
		return 0, fmt.Errorf("count the export: %w", err)
	}
	detail := unlockcsv.AuditDetail(f, count)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := tx.audit(ctx, "unlocks.export", f.BuildingID, "building", f.BuildingID, detail); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}

	return unlockcsv.Write(ctx, w, f, loc, func(f doorledger.UnlockFilter, each func(*doorledger.UnlockEvent) error) error {
		query, args, _ := historyQuery(f, loc, unlockcsv.Page)
		rows, err := s.db.pool.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("export unlocks: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanUnlock(rows)
			if err != nil {
				return err
			}
			if err := each(e); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}
