package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// Background work that must run once across instances (log sequencing,
// report generation, retention, mail dispatch…) runs under a lease: a
// session-level advisory lock held on a connection of its own. PostgreSQL
// lets it go the moment that session ends, so when the instance holding it
// dies (its connections close, or the server finds them dead) another
// instance's next TryLease takes it over, with no expiry to wait for.

// Lease is a named lease this instance holds.
type Lease struct {
	db   *DB
	name string
	conn *pgx.Conn // the session holding the lock, out of the pool
}

// leases are the leases a DB holds, closed with it.
type leases struct {
	mu   sync.Mutex
	held map[*Lease]bool
}

// lockKey is the advisory lock key of a name: sign-in attempts of one
// account or IP take turns on it, and a lease is held on it.
func lockKey(kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("doorledger " + kind + " " + name))
	return int64(h.Sum64())
}

// LeaseApplicationName is how a lease's session shows in pg_stat_activity.
func LeaseApplicationName(name string) string { return "doorledger lease " + name }

// TryLease takes the named lease if no instance holds it: ok is false when
// another does. The holder calls Release when done; Close releases the
// DB's leases too.
func (db *DB) TryLease(ctx context.Context, name string) (lease *Lease, ok bool, err error) {
	return db.tryLock(ctx, name, `SELECT pg_try_advisory_lock($1)`)
}

// tryLock takes the advisory lock of the lease name with query (a
// pg_try_advisory_lock function of $1) on a session of its own.
func (db *DB) tryLock(ctx context.Context, name, query string) (lease *Lease, ok bool, err error) {
	pooled, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	// The lock lives with the session: the connection leaves the pool, so
	// that no other work runs on it and the pool never recycles it.
	conn := pooled.Hijack()
	if _, err := conn.Exec(ctx, `SELECT set_config('application_name', $1, false)`, LeaseApplicationName(name)); err != nil {
		conn.Close(ctx)
		return nil, false, fmt.Errorf("lease %s: %w", name, err)
	}
	if err := conn.QueryRow(ctx, query, lockKey("lease", name)).Scan(&ok); err != nil || !ok {
		conn.Close(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("lease %s: %w", name, err)
		}
		return nil, false, nil
	}
	l := &Lease{db: db, name: name, conn: conn}
	db.leases.mu.Lock()
	if db.leases.held == nil {
		db.leases.held = map[*Lease]bool{}
	}
	db.leases.held[l] = true
	db.leases.mu.Unlock()
	return l, true, nil
}

// Held reports whether the lease is still held: false when its session was
// lost (the server restarted, or ended it). Work under a lease checks it
// before each step it must not do twice.
func (l *Lease) Held(ctx context.Context) bool {
	var held bool
	key := lockKey("lease", l.name)
	// pg_locks names a bigint advisory key by its two halves.
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
		AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`,
		uint64(key)>>32, uint64(key)&0xffffffff).Scan(&held)
	return err == nil && held
}

// Release lets the lease go (another instance may take it at once): it
// ends the lease's session, and the lock with it.
func (l *Lease) Release() error {
	l.db.leases.mu.Lock()
	delete(l.db.leases.held, l)
	l.db.leases.mu.Unlock()
	return l.conn.Close(context.Background())
}

// releaseAll releases every lease the DB holds (Close).
func (db *DB) releaseAll() error {
	db.leases.mu.Lock()
	list := make([]*Lease, 0, len(db.leases.held))
	for l := range db.leases.held {
		list = append(list, l)
	}
	db.leases.mu.Unlock()
	var errs []error
	for _, l := range list {
		errs = append(errs, l.Release())
	}
	return errors.Join(errs...)
}

// LeaseService implements doorledger.LeaseService on the leases table
// (migration 140), as package sqlite's: time-limited leases that a holder
// renews, for callers written against the root interface. (TryLease above
// is the session-bound alternative, free the moment its holder's session
// ends.)
//
// The lease's times come from the DB's clock read once per transaction
// (Tx.now), as everywhere in Go code here and as in package sqlite: the
// behavioural suite moves that clock to lapse a lease. Instances therefore
// compare terms by their own clocks, which must agree to well within a
// lease's term (NTP keeps them within milliseconds; terms are seconds).
type LeaseService struct{ db *DB }

// NewLeaseService returns the lease service on db.
func NewLeaseService(db *DB) *LeaseService { return &LeaseService{db: db} }

var _ doorledger.LeaseService = (*LeaseService)(nil)

// AcquireLease is one upsert: the row is written only when it is new, lapsed
// or holder's own. Racing upserts of one name take turns on the row and
// each re-checks the condition on the row as the one before left it, so two
// instances racing for a free lease cannot both win. When the upsert wrote
// nothing, the row as it stands (committed by the winner) says who holds it.
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
	var until time.Time
	err = tx.QueryRow(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= $4
		RETURNING holder, until`,
		name, holder, tx.now.Add(ttl), tx.now).Scan(&held, at(&until))
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `SELECT holder, until FROM leases WHERE name = $1`, name).Scan(&held, at(&until))
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, time.Time{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return held == holder, until, nil
}

// ReleaseLease deletes the row when holder holds it.
func (s *LeaseService) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
