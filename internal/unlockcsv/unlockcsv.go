// Package unlockcsv writes a building's unlock history as CSV, the export
// both storage backends (package sqlite and package postgres) stream: the
// columns, their formats, spreadsheet-safe cells and the paging. The
// backend runs its own query for each page.
package unlockcsv

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// Page is how many rows an export reads per query: each page is a short
// read, so a long export holds no read transaction or snapshot open (WAL
// checkpoints and vacuum go on).
const Page = 2000

// header names the columns. effective_at, last so that the earlier columns
// keep their places, is the time the event counts at and the file's order
// (the device's time, or the time received when its clock is flagged
// skewed).
var header = []string{"occurred_at", "occurred_at_utc", "received_at_utc", "device_id", "device_ref", "event_id",
	"method", "actor_ref", "result", "anomalies", "source", "acknowledged_at_utc", "acknowledged_by", "ack_note", "effective_at"}

// AuditDetail is the journal's detail of an export of count events matching
// f: how many, of which range and filters (doorledger.AuditSentence reads
// it).
func AuditDetail(f doorledger.UnlockFilter, count int64) map[string]any {
	detail := map[string]any{"format": "csv", "events": count, "from": f.From, "to": f.To}
	for k, v := range map[string]any{"device_id": f.DeviceID, "device_ref": f.DeviceRef, "method": f.Method, "result": string(f.Result),
		"anomalies_only": f.AnomaliesOnly, "anomaly": f.Anomaly, "open_only": f.OpenOnly} {
		if v != int64(0) && v != "" && v != false {
			detail[k] = v
		}
	}
	return detail
}

// PageFunc reads the events matching f (f.After is where the page starts),
// at most Page of them, newest first by effective time, calling each for
// every event in turn; it stops at each's first error and returns it.
type PageFunc func(f doorledger.UnlockFilter, each func(*doorledger.UnlockEvent) error) error

// Write streams every event matching f to w as CSV, page by page (read
// reads one), so memory stays constant however many there are. Times are
// shown in loc and in UTC. Each anomalous event carries its
// acknowledgement, if any (when, by whom, the manager's note). Text that
// came from devices or people and starts like a spreadsheet formula is made
// safe (SafeCell). It returns how many events it wrote.
func Write(ctx context.Context, w io.Writer, f doorledger.UnlockFilter, loc *time.Location, read PageFunc) (int64, error) {
	f.After, f.Limit = doorledger.UnlockCursor{}, 0
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	var n int64
	rec := make([]string, len(header))
	for {
		var last *doorledger.UnlockEvent
		got := 0
		err := read(f, func(e *doorledger.UnlockEvent) error {
			record(rec, e, loc)
			if err := cw.Write(rec); err != nil {
				return err
			}
			n++
			got++
			last = e
			return nil
		})
		if err != nil {
			return n, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
		if got < Page {
			break
		}
		f.After = doorledger.UnlockCursor{At: last.EffectiveAt(), ID: last.ID}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// record fills rec with e's cells.
func record(rec []string, e *doorledger.UnlockEvent, loc *time.Location) {
	rec[0] = e.OccurredAt.In(loc).Format(time.RFC3339Nano)
	rec[1] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	rec[2] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
	rec[3] = ""
	if e.DeviceID != 0 {
		rec[3] = strconv.FormatInt(e.DeviceID, 10)
	}
	rec[4], rec[5], rec[6], rec[7] = SafeCell(e.DeviceRef), SafeCell(e.EventID), e.Method, SafeCell(e.ActorRef)
	rec[8], rec[9], rec[10] = string(e.Result), strings.Join(e.Anomalies, " "), e.Source
	rec[11], rec[12], rec[13] = "", SafeCell(e.AcknowledgedBy), SafeCell(e.AckNote)
	if e.Acknowledged() {
		rec[11] = e.AcknowledgedAt.UTC().Format(time.RFC3339Nano)
	}
	rec[14] = e.EffectiveAt().In(loc).Format(time.RFC3339Nano)
}

// SafeCell defuses text that a spreadsheet would read as a formula: a '
// before = + - @, a tab or a carriage return that starts it.
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
