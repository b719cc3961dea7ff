package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/logrows"
)

// The log's rows are selected here, in the column order package logrows
// reads, and read by it column by column as SQLite holds them, strictly: a
// value of the wrong type makes the row unencodable, which verify reports
// as changed rather than failing.

const (
	logAuditColumns  = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`
	logUnlockColumns = `id, building_id, COALESCE(device_id, 0), device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source`
	logPurgeColumns  = `id, at, actor, of_kind, building_id, cutoff, ids, leaves_hash`
)

func loadAuditRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logAuditColumns+` FROM audit_entries WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, logrows.EncodeAudit)
}

func loadUnlockRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logUnlockColumns+`, COALESCE(u.redaction_id, 0), r.leaf, r.redacted
		FROM unlock_events u LEFT JOIN unlock_redactions r ON r.unlock_id = u.id WHERE u.id > ?1 AND u.id <= ?2 ORDER BY u.id LIMIT ?3`,
		after, upto, limit, logrows.EncodeUnlock)
}

func loadPurgeRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logPurgeColumns+` FROM log_purges WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, logrows.EncodePurge)
}

func loadLogRows(ctx context.Context, q querier, query string, after, upto int64, limit int, encode func(*logrows.Columns) ([]byte, error)) ([]logRow, error) {
	return loadLogRowsArgs(ctx, q, query, []any{after, upto, limit}, encode)
}

// loadLogRowsArgs is loadLogRows for a query of any arguments.
func loadLogRowsArgs(ctx context.Context, q querier, query string, args []any, encode func(*logrows.Columns) ([]byte, error)) ([]logRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	c := logrows.NewColumns(names, logTime)
	ptrs := make([]any, len(names))
	for i := range ptrs {
		ptrs[i] = &c.Vals[i]
	}
	var out []logRow
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		id, err := c.Begin()
		if err != nil {
			return nil, err
		}
		enc, err := encode(c)
		out = append(out, logRow{id: id, enc: enc, err: err, red: c.Redaction()})
	}
	return out, rows.Err()
}

// logTime reads a time column as SQLite holds it, strictly: text in the
// stored form (timeLayout), "" for none.
func logTime(name string, v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: %T is not text", name, v)
	}
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("%s: %q is not a stored time", name, s)
	}
	return t, nil
}

// LogUnlockPurge records in the log that the retention purge deletes the
// unlock events ids of a building, those older than before. Call it in the
// purge's transaction, BEFORE the DELETE, with exactly the ids the DELETE
// removes. It first logs any of them not yet logged (with everything committed
// before them), then writes a purge record naming the ids and the hash of
// their leaves, and logs that record too: the rows' leaves stay in the log,
// and Verify accepts these rows, and only these, being gone. No ids: nothing.
func (tx *Tx) LogUnlockPurge(ctx context.Context, buildingID int64, before time.Time, ids []int64) (*doorledger.LogPurge, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ranges := auditlog.IDRanges(ids)
	unique := slices.Compact(slices.Sorted(slices.Values(ids)))
	if err := tx.logUntil(ctx, doorledger.LogKindUnlock, unique[len(unique)-1]); err != nil {
		return nil, err
	}

	logged := make(map[int64]doorledger.LogLeaf, len(unique))
	for _, part := range chunks(slices.Clone(unique), 500) {
		marks, args := inList(part)
		rows, err := tx.QueryContext(ctx, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'unlock' AND ref_id IN (`+marks+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var l doorledger.LogLeaf
			var h []byte
			if err := rows.Scan(&l.Index, &l.RefID, &h); err != nil {
				rows.Close()
				return nil, err
			}
			copy(l.Hash[:], h)
			logged[l.RefID] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	hash, err := logrows.UnlockPurgeHash(unique, logged)
	if err != nil {
		return nil, err
	}

	p := &doorledger.LogPurge{At: tx.now, Actor: callerFrom(ctx).label(), Of: doorledger.LogKindUnlock, BuildingID: buildingID,
		Before: before.UTC().Truncate(time.Microsecond), IDs: ranges, LeavesHash: hash}
	text, err := auditlog.FormatIDRanges(ranges)
	if err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO log_purges (at, actor, of_kind, building_id, cutoff, ids, leaves_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		formatTime(p.At), p.Actor, p.Of, p.BuildingID, formatTime(p.Before), text, p.LeavesHash[:])
	if err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return nil, err
	}
	if _, err := auditlog.EncodePurge(p); err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if err := tx.logUntil(ctx, doorledger.LogKindPurge, p.ID); err != nil {
		return nil, err
	}
	return p, nil
}

// logUntil appends to the log, in tx, until the row id of kind is in it.
func (tx *Tx) logUntil(ctx context.Context, kind string, id int64) error {
	for {
		last, err := lastLogged(ctx, tx, kind)
		if err != nil || last >= id {
			return err
		}
		n, _, err := tx.appendLog(ctx, logBatch)
		if err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("log: %s #%d is not committed", kind, id)
		}
	}
}
