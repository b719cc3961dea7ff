package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// adminSnapshot begins the read-only snapshot of an admin's or the system's
// figures; EFORBIDDEN for anyone else.
func (s *OpsService) adminSnapshot(ctx context.Context) (pgx.Tx, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return s.readSnapshot(ctx)
}

// WebhookStats reads the outbound events' figures from one snapshot, as
// package sqlite's: the backlog, then the failing and given-up deliveries
// of active subscriptions by subscription in one pass.
func (s *OpsService) WebhookStats(ctx context.Context) (*doorledger.WebhookStats, error) {
	tx, err := s.adminSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	st := &doorledger.WebhookStats{GivenUp: map[int64]int64{}}
	var earliest time.Time
	if err := tx.QueryRow(ctx, `SELECT count(*), min(give_up_at) FROM webhook_deliveries
		WHERE delivered_at IS NULL AND failed_at IS NULL`).Scan(&st.Pending, at(&earliest)); err != nil {
		return nil, fmt.Errorf("webhook backlog: %w", err)
	}
	st.SetOldestPending(s.db.now(), earliest)
	rows, err := tx.Query(ctx, `SELECT d.failed_at IS NOT NULL, d.subscription_id, d.response_status, count(*)
		FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.disabled_at IS NULL
		WHERE d.delivered_at IS NULL AND (d.failed_at IS NOT NULL OR d.attempts > 0) GROUP BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("webhook failures: %w", err)
	}
	var givenUp bool
	var sub, n int64
	var status int
	if _, err := pgx.ForEachRow(rows, []any{&givenUp, &sub, &status, &n}, func() error {
		if givenUp {
			st.GivenUp[sub] += n
		} else {
			st.AddFailing(sub, status, n)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("webhook failures: %w", err)
	}
	return st, nil
}
