// Package sqlite implements Doorledger's services on an embedded SQLite database
// (modernc.org/sqlite, no cgo). Every change is written in one transaction
// together with the audit entry that records it.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"golang.org/x/crypto/bcrypt"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is the SQLite database behind every service. Writes go through one
// connection (SQLite has one writer; queuing in Go beats spinning on SQLITE_BUSY),
// reads through a pool of read-only connections that WAL lets run beside it.
type DB struct {
	write *sql.DB
	read  *readPool
	Path  string

	// Now is the DB's clock, read once per transaction (Tx.now); tests set
	// it. It is the only clock Go code in this package reads; see clock.go
	// for how it and SQLite's own clock meet.
	Now func() time.Time
	// Mono is the DB's monotonic clock: time passed since a fixed instant,
	// which does not jump when Now does (clock.go). Read once per
	// transaction (Tx.mono) for how long things take.
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

	space    *Space       // free space: ingest's floor and the reserve (space.go)
	maxPages atomic.Int64 // SetMaxPages's limit (0: none)

	writeStmts stmtCache      // statements prepared on the writer (stmt.go)
	writes     writeGate      // which write transaction gets the writer next (writegate.go)
	opened     openedCommands // commands waiting for their device, by monotonic time (clock.go)
	sealer     *seal.Sealer   // seals mail bodies (SetSealKey)

	migrateThrough string // tests: the last migration to apply ("": all)
}

// NewDB returns a DB for the SQLite file at path; call Open before use.
func NewDB(path string) *DB {
	db := &DB{
		Path:              path,
		Now:               time.Now,
		Mono:              machineMono(),
		PasswordCost:      bcrypt.DefaultCost,
		LoginAccountLimit: 10,
		LoginIPLimit:      30,
		sealer:            seal.Random(),
	}
	db.space = newSpace(db)
	return db
}

// SetSealKey sets the key (SealKeySize bytes, kept outside the database: the
// data directory's vendor.key) that seals what the database keeps but must
// not hold in the clear, such as mail bodies waiting for delivery. Until it is
// set, a random key is used that lives as long as the process: enough for
// tests, not for a portal that restarts with mail still queued.
func (db *DB) SetSealKey(key []byte) error {
	s, err := seal.New(key)
	if err != nil {
		return fmt.Errorf("seal key: %w", err)
	}
	db.sealer = s
	return nil
}

// dsn builds the connection string. Pragmas are per connection, so they go in the
// DSN where every pooled connection gets them (not one Exec on whichever
// connection the pool hands out):
//   - foreign_keys(1): SQLite leaves them off by default; the schema relies on them.
//   - journal_mode(WAL): readers do not block the writer nor it them.
//   - synchronous(FULL): a commit survives power loss, not only a crash; consent
//     and revocation facts are evidence, and group commit keeps ingest fast anyway.
//   - busy_timeout(5000): wait for a lock up to 5 s instead of failing at once
//     (another process such as the CLI may hold it briefly).
//   - journal_size_limit(16 MiB): after a checkpoint resets the WAL, the file is
//     cut back to this. Without it the WAL kept the largest size it ever had:
//     a backup's long read transaction pins it, and 20 s of ingest grew it past
//     100 MB that stayed on disk after the reader went (docs/reliability.md).
//     Four times the auto-checkpoint's 1000 pages, so ordinary work never cuts.
//   - _txlock=immediate (writer): take the write lock at BEGIN, so a transaction
//     that reads then writes cannot deadlock on the upgrade.
//   - query_only(1) (readers): a read connection can never write by mistake.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(busyTimeoutMS)+")")
	q.Add("_pragma", "journal_size_limit(16777216)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens the database file, creating it if needed, and applies migrations.
func (db *DB) Open() (err error) {
	if db.Path == "" {
		return errors.New("db: path required")
	}
	if db.Path, err = filepath.Abs(db.Path); err != nil {
		return err
	}
	if db.write, err = sql.Open("sqlite", dsn(db.Path, false)); err != nil {
		return fmt.Errorf("open writer: %w", err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetConnMaxIdleTime(0)
	db.writeStmts.pool = db.write
	if err := db.migrate(context.Background()); err != nil {
		db.write.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	if err := db.checkZoneOffsets(context.Background()); err != nil {
		db.write.Close()
		return fmt.Errorf("daily unlock counts: %w", err)
	}
	read, err := sql.Open("sqlite", dsn(db.Path, true))
	if err != nil {
		db.write.Close()
		return fmt.Errorf("open readers: %w", err)
	}
	db.read = newReadPool(read)
	db.read.SetMaxOpenConns(8)
	// Keep them all: opening one parses the schema again and loses the
	// statements prepared on it (database/sql keeps only 2 idle by default).
	db.read.SetMaxIdleConns(8)
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// migrate applies every embedded migration not yet recorded, each in its own
// transaction. Migrations are numbered NNN_name.sql; a shipped one is never edited.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for _, name := range names {
		if db.migrateThrough != "" && name > "migrations/"+db.migrateThrough {
			break
		}
		if err := db.migrateFile(ctx, name); err != nil {
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

func (db *DB) migrateFile(ctx context.Context, name string) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	buf, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(buf)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`, name, formatTime(db.now())); err != nil {
		return err
	}
	return tx.Commit()
}

// Tx is a write transaction with the time read once at its start.
type Tx struct {
	*sql.Tx
	db   *DB
	now  time.Time
	mono time.Duration // DB.Mono at the start

	gate   *writeGate                // held until Commit or Rollback (nil: given back)
	stmts  map[string]*sql.Stmt      // the transaction's handles on prepared statements (stmt.go)
	pushes []doorledger.DesiredState // desired states to push after commit
	mailed bool                      // mail was queued
	hooked bool                      // webhook deliveries were queued
}

// Commit commits, then hands what the transaction decided to the device
// controller and the mail dispatcher: only committed facts leave the process.
//
// A commit the disk had no room for is errDiskFull (EUNAVAILABLE) and starts
// a disk-full episode (space.go).
func (tx *Tx) Commit() error {
	err := tx.Tx.Commit()
	tx.release()
	if err != nil {
		return tx.db.space.failed(err)
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

// Rollback rolls the transaction back, unless it committed already.
func (tx *Tx) Rollback() error {
	err := tx.Tx.Rollback()
	tx.release()
	return err
}

// release gives the writer back to the gate, once.
func (tx *Tx) release() {
	if tx.gate != nil {
		tx.gate.release()
		tx.gate = nil
	}
}

// BeginTx starts a write transaction. stmts are the statements the write
// runs often enough to keep compiled across transactions: those not prepared
// yet are prepared on the writer first, while it is free (stmt.go). It takes
// the writer ahead of any bulk work waiting for it (writeGate).
func (db *DB) BeginTx(ctx context.Context, stmts ...string) (*Tx, error) {
	return db.beginTx(ctx, false, stmts)
}

// beginBulkTx is BeginTx for bulk work (unlock events): it waits while any
// other write waits for the writer (writeGate).
func (db *DB) beginBulkTx(ctx context.Context, stmts ...string) (*Tx, error) {
	return db.beginTx(ctx, true, stmts)
}

func (db *DB) beginTx(ctx context.Context, bulk bool, stmts []string) (*Tx, error) {
	for _, q := range stmts {
		if _, err := db.writeStmts.get(ctx, q); err != nil {
			return nil, err
		}
	}
	if err := db.writes.acquire(ctx, bulk); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		db.writes.release()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{Tx: tx, db: db, gate: &db.writes, now: db.now(), mono: db.Mono()}, nil
}

// Reader returns the read-only pool, for queries that need no transaction.
func (db *DB) Reader() *sql.DB { return db.read.DB }

// Writer returns the write pool: for tests that go around the services to prove
// the database itself refuses what the rules forbid.
func (db *DB) Writer() *sql.DB { return db.write }

// IntegrityCheck runs PRAGMA integrity_check and returns its answer ("ok" when sound).
// busyTimeoutMS is how long a statement waits for a lock another connection
// holds before it fails (SQLITE_BUSY).
const busyTimeoutMS = 5000

// Writable reports whether a write could start now: it takes the write lock
// (BEGIN IMMEDIATE) on the writer's connection and lets it go, waiting until
// ctx ends at most. For /readyz: a database another process holds locked, or
// one on a read-only or failed disk, is not ready.
func (db *DB) Writable(ctx context.Context) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		// SQLite's busy wait does not see ctx: wait for the lock no longer
		// than ctx allows, then give the connection its usual wait back.
		wait := min(max(time.Until(deadline).Milliseconds(), 0), busyTimeoutMS)
		if _, err := conn.ExecContext(ctx, `PRAGMA busy_timeout = `+strconv.FormatInt(wait, 10)); err != nil {
			return err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA busy_timeout = `+strconv.Itoa(busyTimeoutMS))
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	_, err = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	return err
}

func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var s string
	err := db.read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&s)
	return s, err
}

// Times are stored as RFC 3339 UTC text with fixed microsecond precision, so
// that they sort as text and compare in SQL.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s)
	}
	return t.UTC()
}

// nullTime scans a nullable time column.
type nullTime struct{ t *time.Time }

func (n nullTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*n.t = time.Time{}
	case string:
		*n.t = parseTime(v)
	case []byte:
		*n.t = parseTime(string(v))
	default:
		return fmt.Errorf("time column: unexpected %T", v)
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
