// Package postgres implements Doorledger's services on PostgreSQL through
// github.com/jackc/pgx/v5, for deployments of several portal instances that
// share one database (issue 15). It mirrors package sqlite: every change is
// written in one transaction together with the audit entry that records it,
// and the rules SQLite enforces with triggers are PL/pgSQL triggers and
// constraints here (migrations/).
//
// A service is ported from package sqlite faithfully (same behaviour, same
// messages, the same dbtest groups pass), written for PostgreSQL:
//
//   - $1 placeholders; RETURNING instead of LastInsertId; tag.RowsAffected().
//   - Times are timestamptz: pass time.Time (ts(t) for a nullable one, NULL
//     when zero) and scan with at(&t) (UTC; zero for NULL). Flags are
//     boolean, blobs bytea, calendar dates date.
//   - A failed statement aborts the whole PostgreSQL transaction (SQLite
//     goes on): where package sqlite catches a unique violation and carries
//     on, write INSERT … ON CONFLICT … DO NOTHING RETURNING and treat "no
//     row" as the conflict.
//   - Several instances and connections write at once (SQLite has one
//     writer): a read-then-write that relied on that takes the row FOR
//     UPDATE, an advisory lock (pg_advisory_xact_lock), or retries on
//     isRetryable; ids are not commit order.
//   - Text sorts by the database's collation: ORDER BY … COLLATE "C" keeps
//     SQLite's byte order where a page or test depends on it.
//   - Refusals by triggers are RAISE EXCEPTION (SQLSTATE P0001) with
//     package sqlite's messages: isRefusal(err, message).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// Migrations are embedded, numbered .sql files (migrations/NNN_name.sql),
// each applied in a transaction and recorded in the migrations table; one
// that has shipped is never edited. 001-008 hold the whole schema of package
// sqlite's migrations, by concern; 100-119 and 120-139 are reserved for the
// ports of the remaining services (issue 15), should they need more.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is the PostgreSQL database behind every service: one pool of
// connections (PostgreSQL has many writers; it orders them itself).
type DB struct {
	pool *pgxpool.Pool
	// URL is the connection string (postgres://… or key=value pairs).
	URL string

	// Now is the DB's clock, read once per transaction (Tx.now); tests set
	// it. See clock.go.
	Now func() time.Time
	// Mono is the DB's monotonic clock: time passed since a fixed instant,
	// read once per transaction (Tx.mono) for how long things take. See
	// clock.go.
	Mono func() time.Duration
	// PasswordCost is the bcrypt cost; tests lower it.
	PasswordCost int
	// OnDesired is called after a commit that changed devices' desired state,
	// with the states to push; the device controller sets it. It must not block.
	OnDesired func([]doorledger.DesiredState)
	// OnMail is called after a commit that queued mail, so the dispatcher can
	// send it at once rather than at its next poll. It must not block.
	OnMail func()
	// OnEvent is called after a commit that queued webhook deliveries (or
	// replayed one), so the event dispatcher posts them at once. It must not block.
	OnEvent func()

	// Login throttling: failures allowed within LoginWindow per account and per IP.
	LoginAccountLimit int
	LoginIPLimit      int

	sealer  *seal.Sealer   // seals mail bodies (SetSealKey)
	leases  leases         // the leases held (lease.go)
	horizon logHorizon     // the log sequencer's horizon (log.go)
	opened  openedCommands // commands waiting for their device, by monotonic time (clock.go)
}

// NewDB returns a DB for the database at url; call Open before use.
func NewDB(url string) *DB {
	return &DB{
		URL:               url,
		Now:               time.Now,
		Mono:              machineMono(),
		PasswordCost:      bcrypt.DefaultCost,
		LoginAccountLimit: 10,
		LoginIPLimit:      30,
		sealer:            seal.Random(),
	}
}

// SetSealKey sets the key (SealKeySize bytes, kept outside the database: the
// data directory's vendor.key) that seals what the database keeps but must
// not hold in the clear, such as mail bodies waiting for delivery. Until it is
// set, a random key is used that lives as long as the process.
func (db *DB) SetSealKey(key []byte) error {
	s, err := seal.New(key)
	if err != nil {
		return fmt.Errorf("seal key: %w", err)
	}
	db.sealer = s
	return nil
}

// Open connects and applies the migrations not yet applied.
func (db *DB) Open(ctx context.Context) error {
	if db.URL == "" {
		return errors.New("postgres: database URL required")
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// Every session speaks UTC: timestamptz values come back in it, and
	// the triggers' date arithmetic does not depend on the server's zone.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close releases the DB's leases and closes the pool.
func (db *DB) Close() error {
	err := db.releaseAll()
	if db.pool != nil {
		db.pool.Close()
	}
	return err
}

// Pool returns the connection pool: for tests that go around the services
// to prove the database itself refuses what the rules forbid.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// migrationLock is the advisory lock key migrations hold, so that instances
// starting together apply each migration once ("dl-migr" in ASCII).
const migrationLock = 0x646c2d6d69677200

// migrate applies every embedded migration not yet recorded, each in its own
// transaction, in the order of their numbers. Instances that start at once
// take turns: the first applies, the rest find them recorded.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL)`); err != nil {
		return err
	}
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := db.migrateFile(ctx, conn.Conn(), name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// migrationNames lists the embedded migrations in the order they apply.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func (db *DB) migrateFile(ctx context.Context, conn *pgx.Conn, name string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var done bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM migrations WHERE name = $1)`, name).Scan(&done); err != nil {
		return err
	} else if done {
		return nil
	}
	buf, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	// Several statements in one string: the simple protocol runs them all.
	if _, err := tx.Exec(ctx, string(buf), pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO migrations (name, applied_at) VALUES ($1, $2)`, name, db.now()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// querier is what the pool and a transaction both offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is a write transaction with the time read once at its start.
type Tx struct {
	pgx.Tx
	db   *DB
	now  time.Time
	mono time.Duration // DB.Mono at the start

	pushes []doorledger.DesiredState // desired states to push after commit
	mailed bool                      // mail was queued
	hooked bool                      // webhook deliveries were queued
}

// BeginTx starts a transaction (READ COMMITTED, PostgreSQL's default).
func (db *DB) BeginTx(ctx context.Context) (*Tx, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{Tx: tx, db: db, now: db.now(), mono: db.Mono()}, nil
}

// Rollback rolls back; after Commit it does nothing. It takes no context
// so that `defer tx.Rollback()` reads as in package sqlite.
func (tx *Tx) Rollback() error {
	err := tx.Tx.Rollback(context.Background())
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// Commit commits, then hands what the transaction decided to the device
// controller and the mail dispatcher: only committed facts leave the process.
func (tx *Tx) Commit(ctx context.Context) error {
	if err := tx.Tx.Commit(ctx); err != nil {
		return err
	}
	if len(tx.pushes) > 0 {
		tx.db.opened.add(tx.pushes, tx.mono)
		if tx.db.OnDesired != nil {
			tx.db.OnDesired(tx.pushes)
		}
	}
	if tx.mailed && tx.db.OnMail != nil {
		tx.db.OnMail()
	}
	if tx.hooked && tx.db.OnEvent != nil {
		tx.db.OnEvent()
	}
	return nil
}

// Writable reports whether a write could start now, waiting until ctx ends
// at most: for /readyz. A transaction that would be read-only (a standby,
// or a database set default_transaction_read_only) or an unreachable server
// is not ready.
func (db *DB) Writable(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var readOnly string
	if err := tx.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&readOnly); err != nil {
		return err
	}
	if readOnly == "on" {
		return errors.New("the PostgreSQL database takes no writes (a standby, or set read-only)")
	}
	return nil
}
