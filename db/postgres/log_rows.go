package postgres

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
// reads, and read by it column by column as PostgreSQL hands them, strictly: a
// value of the wrong type makes the row unencodable, which verify reports
// as changed rather than failing.

const (
	logAuditColumns  = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`
	logUnlockColumns = `id, building_id, COALESCE(device_id, 0), device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies::bigint, source`
	logPurgeColumns  = `id, at, actor, of_kind, building_id, cutoff, ids, leaves_hash`
)

// LIMIT NULL is no limit: a limit of -1 reads every row.
func loadAuditRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logAuditColumns+` FROM audit_entries WHERE id > $1 AND id <= $2 ORDER BY id LIMIT NULLIF($3::bigint, -1)`,
		after, upto, limit, logrows.EncodeAudit)
}

func loadUnlockRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logUnlockColumns+`, COALESCE(u.redaction_id, 0), r.leaf, r.redacted
		FROM unlock_events u LEFT JOIN unlock_redactions r ON r.unlock_id = u.id WHERE u.id > $1 AND u.id <= $2 ORDER BY u.id LIMIT NULLIF($3::bigint, -1)`,
		after, upto, limit, logrows.EncodeUnlock)
}

func loadPurgeRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logPurgeColumns+` FROM log_purges WHERE id > $1 AND id <= $2 ORDER BY id LIMIT NULLIF($3::bigint, -1)`,
		after, upto, limit, logrows.EncodePurge)
}

func loadLogRows(ctx context.Context, q querier, query string, after, upto int64, limit int, encode func(*logrows.Columns) ([]byte, error)) ([]logRow, error) {
	return loadLogRowsArgs(ctx, q, query, []any{after, upto, limit}, encode)
}

// loadLogRowsArgs is loadLogRows of a query with its own arguments.
func loadLogRowsArgs(ctx context.Context, q querier, query string, args []any, encode func(*logrows.Columns) ([]byte, error)) ([]logRow, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	c := logrows.NewColumns(names, logTime)
	var out []logRow
	for rows.Next() {
		if c.Vals, err = rows.Values(); err != nil {
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

// logTime reads a timestamptz, in UTC; NULL is the zero time.
func logTime(name string, v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return v.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%s: %T is not a time", name, v)
}

// LogUnlockPurge records in the log that the retention purge deletes the
// unlock events ids of a building, those older than before, as package
// sqlite's does. Call it in the purge's transaction, BEFORE the DELETE, with
// exactly the ids the DELETE removes; it takes the sequencer's lock until
// the purge ends. No ids: nothing.
func (tx *Tx) LogUnlockPurge(ctx context.Context, buildingID int64, before time.Time, ids []int64) (*doorledger.LogPurge, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := tx.lockLog(ctx); err != nil {
		return nil, err
	}
	ranges := auditlog.IDRanges(ids)
	unique := slices.Compact(slices.Sorted(slices.Values(ids)))
	if err := tx.logUntil(ctx, doorledger.LogKindUnlock, unique[len(unique)-1]); err != nil {
		return nil, err
	}

	logged := make(map[int64]doorledger.LogLeaf, len(unique))
	rows, err := tx.Query(ctx, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'unlock' AND ref_id = ANY($1)`, unique)
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
	if err := tx.QueryRow(ctx, `INSERT INTO log_purges (at, actor, of_kind, building_id, cutoff, ids, leaves_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		p.At, p.Actor, p.Of, p.BuildingID, p.Before, text, p.LeavesHash[:]).Scan(&p.ID); err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if _, err := auditlog.EncodePurge(p); err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if err := tx.logUntil(ctx, doorledger.LogKindPurge, p.ID); err != nil {
		return nil, err
	}
	return p, nil
}

// logUntilWait bounds how long logUntil waits for lower ids in flight in
// other transactions to settle.
const logUntilWait = 30 * time.Second

// logUntil appends to the log, in tx (holding logLock), until the row id of
// kind is in it; while other writers hold lower ids in flight, it polls.
func (tx *Tx) logUntil(ctx context.Context, kind string, id int64) error {
	deadline := time.Now().Add(logUntilWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		last, err := lastLogged(ctx, tx, kind)
		if err != nil || last >= id {
			return err
		}
		n, _, err := tx.appendLog(ctx, logBatch)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("log: %s #%d is not committed, or lower ids are still in flight after %s", kind, id, logUntilWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
