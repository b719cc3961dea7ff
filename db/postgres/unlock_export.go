package postgres

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// exportPage is how many rows ExportCSV reads per query: each page is a short
// read, so a long export holds no snapshot open (vacuum goes on).
const exportPage = 2000

// ExportCSV streams every event matching f to w as CSV, newest first by
// effective time, page by page, so memory stays constant however many there are. The export is
// audited first. Each anomalous event carries its acknowledgement, if any
// (when, by whom, the manager's note). Text that came from devices or people
// and starts like a spreadsheet formula (= + - @) is prefixed with ' so that
// opening the file runs nothing.
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
	detail := map[string]any{"format": "csv", "events": count, "from": f.From, "to": f.To}
	for k, v := range map[string]any{"device_id": f.DeviceID, "device_ref": f.DeviceRef, "method": f.Method, "result": string(f.Result),
		"anomalies_only": f.AnomaliesOnly, "anomaly": f.Anomaly, "open_only": f.OpenOnly} {
		if v != int64(0) && v != "" && v != false {
			detail[k] = v
		}
	}
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

	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	// effective_at, last so that the earlier columns keep their places, is
	// the time the event counts at and the file's order (the device's time,
	// or the time received when its clock is flagged skewed).
	if err := cw.Write([]string{"occurred_at", "occurred_at_utc", "received_at_utc", "device_id", "device_ref", "event_id",
		"method", "actor_ref", "result", "anomalies", "source", "acknowledged_at_utc", "acknowledged_by", "ack_note", "effective_at"}); err != nil {
		return 0, err
	}
	var n int64
	rec := make([]string, 15)
	for {
		query, args, _ := historyQuery(f, loc, exportPage)
		rows, err := s.db.pool.Query(ctx, query, args...)
		if err != nil {
			return n, fmt.Errorf("export unlocks: %w", err)
		}
		var last *doorledger.UnlockEvent
		got := 0
		for rows.Next() {
			e, err := scanUnlock(rows)
			if err != nil {
				rows.Close()
				return n, err
			}
			rec[0] = e.OccurredAt.In(loc).Format(time.RFC3339Nano)
			rec[1] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
			rec[2] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
			rec[3] = ""
			if e.DeviceID != 0 {
				rec[3] = itoa(e.DeviceID)
			}
			rec[4], rec[5], rec[6], rec[7] = safeCell(e.DeviceRef), safeCell(e.EventID), e.Method, safeCell(e.ActorRef)
			rec[8], rec[9], rec[10] = string(e.Result), strings.Join(e.Anomalies, " "), e.Source
			rec[11], rec[12], rec[13] = "", safeCell(e.AcknowledgedBy), safeCell(e.AckNote)
			if e.Acknowledged() {
				rec[11] = e.AcknowledgedAt.UTC().Format(time.RFC3339Nano)
			}
			rec[14] = e.EffectiveAt().In(loc).Format(time.RFC3339Nano)
			if err := cw.Write(rec); err != nil {
				rows.Close()
				return n, err
			}
			n++
			got++
			last = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
		if got < exportPage {
			break
		}
		f.After = doorledger.UnlockCursor{At: last.EffectiveAt(), ID: last.ID}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// safeCell defuses text that a spreadsheet would read as a formula.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
