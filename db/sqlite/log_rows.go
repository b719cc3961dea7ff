package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/anomalybits"
)

// Rows are read column by column as SQLite holds them, strictly: a value of
// the wrong type or a time not in the stored form makes the row unencodable,
// which verify reports as changed rather than failing.

const (
	logAuditColumns  = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`
	logUnlockColumns = `id, building_id, COALESCE(device_id, 0), device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source`
	logPurgeColumns  = `id, at, actor, of_kind, building_id, cutoff, ids, leaves_hash`
)

func loadAuditRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logAuditColumns+` FROM audit_entries WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, func(c *logColumns) ([]byte, error) {
			a := doorledger.AuditEntry{ID: c.int(0), At: c.time(1), ActorID: c.int(2), Actor: c.text(3), Action: c.text(4),
				BuildingID: c.int(5), ObjectType: c.text(6), ObjectID: c.int(7), IP: c.text(8), Detail: c.text(9)}
			if c.err != nil {
				return nil, c.err
			}
			return auditlog.EncodeAudit(&a)
		})
}

func loadUnlockRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logUnlockColumns+`, COALESCE(u.redaction_id, 0), r.leaf, r.redacted
		FROM unlock_events u LEFT JOIN unlock_redactions r ON r.unlock_id = u.id WHERE u.id > ?1 AND u.id <= ?2 ORDER BY u.id LIMIT ?3`,
		after, upto, limit, encodeUnlockColumns)
}

// unlockFromColumns reads an event from logUnlockColumns.
func unlockFromColumns(c *logColumns) (*doorledger.UnlockEvent, error) {
	u := doorledger.UnlockEvent{ID: c.int(0), BuildingID: c.int(1), DeviceID: c.int(2), DeviceRef: c.text(3), EventID: c.text(4),
		OccurredAt: c.time(5), ReceivedAt: c.time(6), Method: c.text(7), ActorRef: c.text(8),
		Result: doorledger.UnlockResult(c.text(9)), Source: c.text(11)}
	bits := c.int(10)
	if c.err != nil {
		return nil, c.err
	}
	if bits < 0 || bits > 63 {
		return nil, fmt.Errorf("anomalies: unknown flags %d", bits)
	}
	u.Anomalies = anomalybits.Kinds(bits)
	return &u, nil
}

// encodeUnlockColumns encodes an event read as loadUnlockRows reads it,
// with what a redaction recorded of it.
func encodeUnlockColumns(c *logColumns) ([]byte, error) {
	if by := c.int(12); by != 0 && c.err == nil {
		x := &auditlog.LeafRedaction{By: by}
		l, ok1 := c.vals[13].([]byte)
		r, ok2 := c.vals[14].([]byte)
		if x.Recorded = ok1 && ok2 && len(l) == 32 && len(r) == 32; x.Recorded {
			copy(x.Logged[:], l)
			copy(x.Redacted[:], r)
		}
		c.red = x
	}
	u, err := unlockFromColumns(c)
	if err != nil {
		return nil, err
	}
	return auditlog.EncodeUnlock(u)
}

func loadPurgeRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logPurgeColumns+` FROM log_purges WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, func(c *logColumns) ([]byte, error) {
			p, err := c.purge()
			if err != nil {
				return nil, err
			}
			return auditlog.EncodePurge(p)
		})
}

func loadLogRows(ctx context.Context, q querier, query string, after, upto int64, limit int, encode func(*logColumns) ([]byte, error)) ([]logRow, error) {
	return loadLogRowsArgs(ctx, q, query, []any{after, upto, limit}, encode)
}

// loadLogRowsArgs is loadLogRows for a query of any arguments.
func loadLogRowsArgs(ctx context.Context, q querier, query string, args []any, encode func(*logColumns) ([]byte, error)) ([]logRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	c := &logColumns{names: names, vals: make([]any, len(names))}
	ptrs := make([]any, len(names))
	for i := range ptrs {
		ptrs[i] = &c.vals[i]
	}
	var out []logRow
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		c.err = nil
		id, ok := c.vals[0].(int64)
		if !ok {
			return nil, fmt.Errorf("row id %v is not an integer", c.vals[0])
		}
		c.red = nil
		enc, err := encode(c)
		out = append(out, logRow{id: id, enc: enc, err: err, red: c.red})
	}
	return out, rows.Err()
}

type logColumns struct {
	names []string
	vals  []any
	err   error
	red   *auditlog.LeafRedaction // set by encodeUnlockColumns
}

func (c *logColumns) fail(i int, want string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %T is not %s", c.names[i], c.vals[i], want)
	}
}

func (c *logColumns) int(i int) int64 {
	v, ok := c.vals[i].(int64)
	if !ok {
		c.fail(i, "an integer")
	}
	return v
}

func (c *logColumns) text(i int) string {
	v, ok := c.vals[i].(string)
	if !ok {
		c.fail(i, "text")
	}
	return v
}

func (c *logColumns) time(i int) time.Time {
	s := c.text(i)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		if c.err == nil {
			c.err = fmt.Errorf("%s: %q is not a stored time", c.names[i], s)
		}
		return time.Time{}
	}
	return t
}

func (c *logColumns) purge() (*doorledger.LogPurge, error) {
	p := &doorledger.LogPurge{ID: c.int(0), At: c.time(1), Actor: c.text(2), Of: c.text(3), BuildingID: c.int(4), Before: c.time(5)}
	ids := c.text(6)
	hash, ok := c.vals[7].([]byte)
	if !ok || len(hash) != len(p.LeavesHash) {
		c.fail(7, "a hash")
	}
	if c.err != nil {
		return nil, c.err
	}
	copy(p.LeavesHash[:], hash)
	var err error
	if p.IDs, err = auditlog.ParseIDRanges(ids); err != nil {
		return nil, fmt.Errorf("ids: %w", err)
	}
	return p, nil
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

	type leaf struct {
		idx  int64
		hash doorledger.LogHash
	}
	found := map[int64]leaf{}
	for _, part := range chunks(slices.Clone(unique), 500) {
		marks, args := inList(part)
		rows, err := tx.QueryContext(ctx, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'unlock' AND ref_id IN (`+marks+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var l leaf
			var ref int64
			var h []byte
			if err := rows.Scan(&l.idx, &ref, &h); err != nil {
				rows.Close()
				return nil, err
			}
			copy(l.hash[:], h)
			found[ref] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	leaves := make([]leaf, 0, len(unique))
	for _, id := range unique {
		l, ok := found[id]
		if !ok {
			return nil, fmt.Errorf("log purge: unlock event %d is not in the log; it cannot be purged", id)
		}
		leaves = append(leaves, l)
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return cmp.Compare(a.idx, b.idx) })
	var sum auditlog.PurgeHasher
	for _, l := range leaves {
		sum.Add(l.idx, l.hash)
	}

	p := &doorledger.LogPurge{At: tx.now, Actor: callerFrom(ctx).label(), Of: doorledger.LogKindUnlock, BuildingID: buildingID,
		Before: before.UTC().Truncate(time.Microsecond), IDs: ranges, LeavesHash: sum.Sum()}
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
