package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// WebhookStats reads the outbound events' figures in one read transaction:
// the backlog (the dispatcher's partial index holds it), then the failing
// and given-up deliveries by subscription in one pass.
func (s *OpsService) WebhookStats(ctx context.Context) (*doorledger.WebhookStats, error) {
	tx, err := s.adminRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st := &doorledger.WebhookStats{GivenUp: map[int64]int64{}}
	var earliest time.Time
	if err := tx.QueryRowContext(ctx, `SELECT count(*), min(give_up_at) FROM webhook_deliveries
		WHERE delivered_at IS NULL AND failed_at IS NULL`).Scan(&st.Pending, nullTime{&earliest}); err != nil {
		return nil, fmt.Errorf("webhook backlog: %w", err)
	}
	st.SetOldestPending(s.db.Now(), earliest)
	// Failing (tried, not given up) or given up, of a subscription still
	// active (a disabled one gave up its own, which cannot be replayed).
	rows, err := tx.QueryContext(ctx, `SELECT d.failed_at IS NOT NULL AS given_up, d.subscription_id, d.response_status, count(*)
		FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
		WHERE s.disabled_at IS NULL AND d.delivered_at IS NULL AND (d.attempts > 0 OR d.failed_at IS NOT NULL)
		GROUP BY given_up, d.subscription_id, d.response_status`)
	if err != nil {
		return nil, fmt.Errorf("webhook failures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var givenUp bool
		var sub, n int64
		var status int
		if err := rows.Scan(&givenUp, &sub, &status, &n); err != nil {
			return nil, fmt.Errorf("webhook failures: %w", err)
		}
		if givenUp {
			st.GivenUp[sub] += n
		} else {
			st.AddFailing(sub, status, n)
		}
	}
	return st, rows.Err()
}

// adminRead begins the read transaction of an admin's or the system's
// figures; EFORBIDDEN for anyone else.
func (s *OpsService) adminRead(ctx context.Context) (*sql.Tx, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return s.db.read.BeginTx(ctx, nil)
}
