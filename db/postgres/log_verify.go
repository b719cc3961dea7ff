package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/logverify"
	"github.com/jackc/pgx/v5"
)

// Verify recomputes the whole log from the rows, in one REPEATABLE READ
// transaction (a consistent snapshot while the portal goes on writing),
// and reports the first entry that does not match, and the first signed
// head that does not. Admins and the system; a person's verification is
// itself audited.
func (s *LogService) Verify(ctx context.Context) (*doorledger.LogVerification, error) {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	v, err := s.verify(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify the log: %w", err)
	}
	if c.user != nil {
		tx, err := s.db.BeginTx(ctx)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		detail := map[string]any{"ok": v.OK(), "entries": v.Entries}
		if v.Problem != nil {
			detail["problem"] = v.Problem.String()
		}
		if err := tx.audit(ctx, "log.verify", 0, "log", 0, detail); err != nil {
			return nil, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (s *LogService) verify(ctx context.Context) (*doorledger.LogVerification, error) {
	rtx, err := s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer rtx.Rollback(context.WithoutCancel(ctx))
	v := &doorledger.LogVerification{VerifierKey: s.verifierKey}
	if v.Entries, err = logSize(ctx, rtx); err != nil {
		return nil, err
	}
	heads, err := loadLogHeads(ctx, rtx, `ORDER BY size`)
	if err != nil {
		return nil, err
	}
	if len(heads) > 0 {
		v.Head = &heads[len(heads)-1]
	}
	purges, err := loadPurgeLeaves(ctx, rtx)
	if err != nil {
		return nil, err
	}
	chk := auditlog.NewChecker(s.verifier, heads, purges)
	redactions, err := loadRedactionLeaves(ctx, rtx)
	if err != nil {
		return nil, err
	}
	chk.AddRedactions(redactions)
	last := map[string]int64{}
	for next := int64(0); ; {
		stored, err := loadStoredLeaves(ctx, rtx, next)
		if err != nil {
			return nil, err
		}
		if len(stored) == 0 {
			break
		}
		batch, err := logLeafBatch(ctx, rtx, stored, last)
		if err != nil {
			return nil, err
		}
		if v.Problem = chk.Check(batch); v.Problem != nil {
			break
		}
		next = stored[len(stored)-1].Idx + 1
	}
	if v.Problem == nil {
		v.Problem = chk.Finish()
	}
	v.Purged, v.Redacted, v.Heads = chk.Purged(), chk.Redacted(), chk.Heads()
	if err := checkUnsequenced(ctx, rtx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// checkUnsequenced counts the rows committed but not in the log, as package
// sqlite's does: judged by the rows' own times, those within LogMergeDelay
// of the database's newest row are Pending, older ones Overdue (a problem
// when the log is otherwise intact). The sequencer logging each kind in id
// order, a row not in the log has an id above the largest logged (one
// below it is a row slipped in, which the checker names).
func checkUnsequenced(ctx context.Context, q querier, v *doorledger.LogVerification) error {
	var newest time.Time
	for _, src := range logSources {
		var t time.Time
		if err := q.QueryRow(ctx, `SELECT MAX(`+src.at+`) FROM `+src.table).Scan(at(&t)); err != nil {
			return err
		}
		if t.After(newest) {
			newest = t
		}
	}
	if newest.IsZero() {
		return nil
	}
	v.Newest = newest
	cutoff := v.Newest.Add(-doorledger.LogMergeDelay)
	var overdue int64
	for _, src := range logSources {
		after, err := lastLogged(ctx, q, src.kind)
		if err != nil {
			return err
		}
		var n, late int64
		if err := q.QueryRow(ctx, `SELECT COUNT(*), COUNT(*) FILTER (WHERE `+src.at+` < $1) FROM `+src.table+` WHERE id > $2`,
			cutoff, after).Scan(&n, &late); err != nil {
			return err
		}
		v.Pending += n - late
		overdue += late
		if late == 0 {
			continue
		}
		refs, err := queryAll(ctx, q, func(row interface{ Scan(...any) error }) (doorledger.LogRowRef, error) {
			r := doorledger.LogRowRef{Kind: src.kind}
			return r, row.Scan(&r.ID, at(&r.At))
		}, `SELECT id, `+src.at+` FROM `+src.table+` WHERE id > $1 AND `+src.at+` < $2 ORDER BY id LIMIT $3`, after, cutoff, logverify.MaxOverdue)
		if err != nil {
			return err
		}
		v.Overdue = append(v.Overdue, refs...)
	}
	if overdue == 0 {
		return nil
	}
	logverify.Unsequenced(v, overdue, newest.Format(logTimeLayout))
	return nil
}

// logTimeLayout is how a verification's problem writes times (package
// sqlite's stored form).
const logTimeLayout = logverify.TimeLayout

func loadStoredLeaves(ctx context.Context, q querier, from int64) ([]logverify.Stored, error) {
	return queryAll(ctx, q, func(row interface{ Scan(...any) error }) (logverify.Stored, error) {
		var l logverify.Stored
		var h []byte
		err := row.Scan(&l.Idx, &l.Kind, &l.Ref, &l.Enc, &h)
		copy(l.Hash[:], h)
		return l, err
	}, `SELECT idx, kind, ref_id, enc::bigint, hash FROM log_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, verifyBatch)
}

// logLeafBatch joins stored leaves with their rows as they are now and their
// stored tree hashes. last holds, by kind, the largest id of the leaves
// before; the rows in between are read by id range, so that a row slipped in
// among logged ones is seen.
func logLeafBatch(ctx context.Context, q querier, stored []logverify.Stored, last map[string]int64) ([]auditlog.Leaf, error) {
	upto := logverify.Upto(stored)
	rows := map[string][]logverify.Row{}
	for _, src := range logSources {
		if upto[src.kind] <= last[src.kind] {
			continue
		}
		list, err := src.load(ctx, q, last[src.kind], upto[src.kind], -1)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", src.table, err)
		}
		joined := make([]logverify.Row, len(list))
		for i, r := range list {
			joined[i] = logverify.Row{ID: r.id, Enc: r.enc, Err: r.err, Red: r.red}
		}
		rows[src.kind] = joined
	}
	lo := auditlog.StoredHashIndex(0, stored[0].Idx)
	hi := auditlog.StoredHashCount(stored[len(stored)-1].Idx + 1)
	tree := map[int64]doorledger.LogHash{}
	hrows, err := q.Query(ctx, `SELECT idx, hash FROM log_hashes WHERE idx >= $1 AND idx < $2`, lo, hi)
	if err != nil {
		return nil, err
	}
	for hrows.Next() {
		var i int64
		var b []byte
		if err := hrows.Scan(&i, &b); err != nil {
			hrows.Close()
			return nil, err
		}
		var h doorledger.LogHash
		copy(h[:], b)
		tree[i] = h
	}
	hrows.Close()
	if err := hrows.Err(); err != nil {
		return nil, err
	}

	return logverify.Join(stored, rows, tree, last), nil
}

// loggedLeaf is a leaf as the log stored it: its index, the id of the row it
// logs, its hash and its level-0 tree hash (zero when not stored).
type loggedLeaf struct {
	index, ref  int64
	hash, tree0 doorledger.LogHash
}

// loadLoggedLeaves reads the leaves query selects (idx, ref_id, hash, in
// order) with their level-0 tree hashes.
func loadLoggedLeaves(ctx context.Context, q querier, query string, args ...any) ([]loggedLeaf, error) {
	leaves, err := queryAll(ctx, q, func(row interface{ Scan(...any) error }) (loggedLeaf, error) {
		var l loggedLeaf
		var h []byte
		err := row.Scan(&l.index, &l.ref, &h)
		copy(l.hash[:], h)
		return l, err
	}, query, args...)
	if err != nil {
		return nil, err
	}
	for i := range leaves {
		var b []byte
		err := q.QueryRow(ctx, `SELECT hash FROM log_hashes WHERE idx = $1`, auditlog.StoredHashIndex(0, leaves[i].index)).Scan(&b)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		copy(leaves[i].tree0[:], b)
	}
	return leaves, nil
}

// loadPurgeLeaves reads every logged purge record with its leaf, for the
// checker to know up front which missing rows are accounted for.
func loadPurgeLeaves(ctx context.Context, q querier) ([]auditlog.PurgeLeaf, error) {
	logged, err := loadLoggedLeaves(ctx, q, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'purge' ORDER BY idx`)
	if err != nil || len(logged) == 0 {
		return nil, err
	}
	records, err := loadPurgeRows(ctx, q, 0, math.MaxInt64, -1)
	if err != nil {
		return nil, err
	}
	byID := map[int64][]byte{}
	for _, r := range records {
		if r.err == nil {
			byID[r.id] = r.enc
		}
	}
	leaves := make([]auditlog.PurgeLeaf, len(logged))
	for i, l := range logged {
		leaves[i] = auditlog.PurgeLeaf{Index: l.index, Hash: l.hash, Tree0: l.tree0, Row: byID[l.ref]}
	}
	return leaves, nil
}

// loadRedactionLeaves reads every logged redaction entry with its leaf and
// the digest of what the database recorded of the events it names, for the
// checker to know up front how to check redacted rows.
func loadRedactionLeaves(ctx context.Context, q querier) ([]auditlog.RedactionLeaf, error) {
	logged, err := loadLoggedLeaves(ctx, q, `SELECT l.idx, l.ref_id, l.hash FROM log_leaves l JOIN audit_entries a ON a.id = l.ref_id
		WHERE l.kind = 'audit' AND a.action = $1 ORDER BY l.idx`, doorledger.RedactAction)
	if err != nil {
		return nil, err
	}
	// And those committed but not yet sequenced (the merge delay).
	last, err := lastLogged(ctx, q, doorledger.LogKindAudit)
	if err != nil {
		return nil, err
	}
	pending, err := queryAll(ctx, q, scanID, `SELECT id FROM audit_entries WHERE id > $1 AND action = $2 ORDER BY id`, last, doorledger.RedactAction)
	if err != nil {
		return nil, err
	}
	leaves := make([]auditlog.RedactionLeaf, 0, len(logged)+len(pending))
	refs := make([]int64, 0, cap(leaves))
	for _, l := range logged {
		leaves = append(leaves, auditlog.RedactionLeaf{Index: l.index, Hash: l.hash, Tree0: l.tree0})
		refs = append(refs, l.ref)
	}
	for _, id := range pending {
		leaves = append(leaves, auditlog.RedactionLeaf{Index: -1, Pending: true})
		refs = append(refs, id)
	}
	for i := range leaves {
		l := &leaves[i]
		entry, err := loadAuditRows(ctx, q, refs[i]-1, refs[i], 1)
		if err != nil {
			return nil, err
		}
		if len(entry) == 1 && entry[0].err == nil {
			l.Row = entry[0].enc
		}
		recs, err := redactedLeaves(ctx, q, refs[i])
		if err != nil {
			return nil, err
		}
		var h auditlog.RedactionHasher
		for _, r := range recs {
			h.Add(r.UnlockID, r.Logged, r.Redacted)
		}
		l.Count = h.Count()
		l.Recorded, l.Err = h.Sum()
	}
	return leaves, nil
}

// redactedLeaves reads what a redaction recorded of each event it names, by id.
func redactedLeaves(ctx context.Context, q querier, redactionID int64) ([]doorledger.RedactedLeaf, error) {
	return queryAll(ctx, q, func(row interface{ Scan(...any) error }) (doorledger.RedactedLeaf, error) {
		var r doorledger.RedactedLeaf
		var l, d []byte
		err := row.Scan(&r.UnlockID, &l, &d)
		copy(r.Logged[:], l)
		copy(r.Redacted[:], d)
		return r, err
	}, `SELECT unlock_id, leaf, redacted FROM unlock_redactions WHERE redaction_id = $1 ORDER BY unlock_id`, redactionID)
}
