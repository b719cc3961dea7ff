package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// OpsService reads the operator's figures from one read transaction.
type OpsService struct{ db *DB }

var _ doorledger.OpsService = (*OpsService)(nil)

// NewOpsService returns the operator's figures service on db.
func NewOpsService(db *DB) *OpsService { return &OpsService{db: db} }

// revokeLatencySQL buckets every confirmed revoke's latency in one pass: the
// monotonic measure where there is one, else the recorded times' difference
// (never below zero), in microseconds.
func revokeLatencySQL(bounds []time.Duration) string {
	var b strings.Builder
	b.WriteString(`WITH l AS (SELECT COALESCE(latency_us,
		max(0, CAST(round((julianday(confirmed_at) - julianday(requested_at)) * 86400000000) AS INTEGER))) AS us
		FROM commands WHERE state = 'disabled' AND status = 'confirmed' AND confirmed_at IS NOT NULL)
		SELECT count(*), COALESCE(sum(us), 0)`)
	for _, d := range bounds {
		b.WriteString(", COALESCE(sum(us <= " + strconv.FormatInt(d.Microseconds(), 10) + "), 0)")
	}
	b.WriteString(" FROM l")
	return b.String()
}

// OpsStats reads every figure in one read transaction.
func (s *OpsService) OpsStats(ctx context.Context) (*doorledger.OpsStats, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st := &doorledger.OpsStats{Commands: map[string]int64{}}

	rows, err := tx.QueryContext(ctx, `SELECT status, count(*) FROM commands GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return nil, err
		}
		st.Commands[status] = n
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}

	bounds := doorledger.RevokeLatencyBounds
	h := doorledger.Histogram{Bounds: bounds, Counts: make([]int64, len(bounds))}
	var sumUS int64
	dest := []any{&h.Count, &sumUS}
	for i := range h.Counts {
		dest = append(dest, &h.Counts[i])
	}
	if err := tx.QueryRowContext(ctx, revokeLatencySQL(bounds)).Scan(dest...); err != nil {
		return nil, fmt.Errorf("revoke latency: %w", err)
	}
	h.Sum = time.Duration(sumUS) * time.Microsecond
	st.RevokeLatency = h

	if err := tx.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL),
		(SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NOT NULL),
		(SELECT count(*) FROM reports WHERE status IN ('queued', 'running'))`).Scan(&st.OutboxQueued, &st.OutboxFailed, &st.ReportsQueued); err != nil {
		return nil, fmt.Errorf("outbox and reports: %w", err)
	}

	if st.LogPending, st.LogLag, err = s.logBacklog(ctx, tx); err != nil {
		return nil, err
	}
	return st, nil
}

// LogBacklog returns how many committed rows are not yet in the verifiable
// log and how long the oldest of them has waited (the sequencer runs every
// second: /readyz calls a lag past ten seconds not ready).
func (s *OpsService) LogBacklog(ctx context.Context) (pending int64, lag time.Duration, err error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, 0, err
	}
	tx, err := s.db.read.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	return s.logBacklog(ctx, tx)
}

// logBacklog counts the rows past the highest row id of each kind in the
// log: the sequencer's own rule on SQLite's single writer.
func (s *OpsService) logBacklog(ctx context.Context, tx *sql.Tx) (pending int64, lag time.Duration, err error) {
	var first time.Time
	if err := tx.QueryRowContext(ctx, `WITH
		a AS (SELECT at FROM audit_entries WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'audit')),
		u AS (SELECT received_at AS at FROM unlock_events WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'unlock'))
		SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM u), (SELECT min(at) FROM (SELECT at FROM a UNION ALL SELECT at FROM u))`).Scan(&pending, nullTime{&first}); err != nil {
		return 0, 0, fmt.Errorf("log backlog: %w", err)
	}
	if pending > 0 && !first.IsZero() {
		lag = max(0, s.db.Now().Sub(first))
	}
	return pending, lag, nil
}
