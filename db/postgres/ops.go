package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// OpsService implements doorledger.OpsService: the operator's figures, read
// from one snapshot (a repeatable-read, read-only transaction), as package
// sqlite's.
type OpsService struct{ db *DB }

var _ doorledger.OpsService = (*OpsService)(nil)

// NewOpsService returns the operator's figures service on db.
func NewOpsService(db *DB) *OpsService { return &OpsService{db: db} }

// revokeLatencySQL buckets every confirmed revoke's latency in one pass: the
// recorded times' difference, never below zero, in microseconds. (PostgreSQL's
// commands keep no monotonic measure yet, unlike SQLite's latency_us.)
func revokeLatencySQL(bounds []time.Duration) string {
	var b strings.Builder
	b.WriteString(`WITH l AS (SELECT greatest(0, (extract(epoch FROM confirmed_at - requested_at) * 1000000)::bigint) AS us
		FROM commands WHERE state = 'disabled' AND status = 'confirmed' AND confirmed_at IS NOT NULL)
		SELECT count(*), COALESCE(sum(us), 0)::bigint`)
	for _, d := range bounds {
		b.WriteString(", count(*) FILTER (WHERE us <= " + strconv.FormatInt(d.Microseconds(), 10) + ")")
	}
	b.WriteString(" FROM l")
	return b.String()
}

// readSnapshot begins the read-only transaction every figure is read in.
func (s *OpsService) readSnapshot(ctx context.Context) (pgx.Tx, error) {
	return s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// OpsStats reads every figure from one snapshot.
func (s *OpsService) OpsStats(ctx context.Context) (*doorledger.OpsStats, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.readSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	st := &doorledger.OpsStats{Commands: map[string]int64{}}

	rows, err := tx.Query(ctx, `SELECT status, count(*) FROM commands GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	var status string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		st.Commands[status] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}

	bounds := doorledger.RevokeLatencyBounds
	h := doorledger.Histogram{Bounds: bounds, Counts: make([]int64, len(bounds))}
	var sumUS int64
	dest := []any{&h.Count, &sumUS}
	for i := range h.Counts {
		dest = append(dest, &h.Counts[i])
	}
	if err := tx.QueryRow(ctx, revokeLatencySQL(bounds)).Scan(dest...); err != nil {
		return nil, fmt.Errorf("revoke latency: %w", err)
	}
	h.Sum = time.Duration(sumUS) * time.Microsecond
	st.RevokeLatency = h

	if err := tx.QueryRow(ctx, `SELECT
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
// log and how long the oldest of them has waited (for /readyz).
func (s *OpsService) LogBacklog(ctx context.Context) (pending int64, lag time.Duration, err error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, 0, err
	}
	tx, err := s.readSnapshot(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return s.logBacklog(ctx, tx)
}

// logBacklog counts, of each kind the log holds, the committed rows (those
// the snapshot sees) with an id above the largest the log holds. Ids are not
// commit order here, yet that is every committed row not in the log: the
// sequencer appends a kind's rows only up to its horizon, below which every
// id is settled (log.go), so when it has logged id N every committed row
// below N is logged too; a row committed late with an id below rows
// committed before it waits above the horizon with them, and is counted
// (TestOpsLogBacklogOutOfOrder).
func (s *OpsService) logBacklog(ctx context.Context, q querier) (pending int64, lag time.Duration, err error) {
	var first time.Time
	for _, src := range logSources {
		var n int64
		var oldest time.Time
		last, err := lastLogged(ctx, q, src.kind)
		if err != nil {
			return 0, 0, fmt.Errorf("log backlog: %w", err)
		}
		if err := q.QueryRow(ctx, `SELECT count(*), min(`+src.at+`) FROM `+src.table+` WHERE id > $1`, last).Scan(&n, at(&oldest)); err != nil {
			return 0, 0, fmt.Errorf("log backlog: %w", err)
		}
		pending += n
		if n > 0 && !oldest.IsZero() && (first.IsZero() || oldest.Before(first)) {
			first = oldest
		}
	}
	if pending > 0 && !first.IsZero() {
		lag = max(0, s.db.now().Sub(first))
	}
	return pending, lag, nil
}
