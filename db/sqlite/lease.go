package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// LeaseService implements doorledger.LeaseService on the leases table.
type LeaseService struct{ db *DB }

// NewLeaseService returns the lease service on db.
func NewLeaseService(db *DB) *LeaseService { return &LeaseService{db: db} }

var _ doorledger.LeaseService = (*LeaseService)(nil)

// AcquireLease is one upsert: the row is written only when it is new, lapsed
// or holder's own, so two instances racing for a free lease cannot both win.
// When the upsert wrote nothing, the row as it stands says who holds it.
func (s *LeaseService) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, time.Time, error) {
	if err := doorledger.CheckLeaseRequest(name, holder, ttl); err != nil {
		return false, time.Time{}, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return false, time.Time{}, err
	}
	defer tx.Rollback()
	var held string
	var until string
	err = tx.QueryRowContext(ctx, `INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= ?4
		RETURNING holder, until`,
		name, holder, formatTime(tx.now.Add(ttl)), formatTime(tx.now)).Scan(&held, &until)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `SELECT holder, until FROM leases WHERE name = ?`, name).Scan(&held, &until)
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, time.Time{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return held == holder, parseTime(until), nil
}

// ReleaseLease deletes the row when holder holds it.
func (s *LeaseService) ReleaseLease(ctx context.Context, name, holder string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return tx.Commit()
}
