package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
)

// Prepared statements. Compiling SQL costs more than running the small
// statements of the device paths and of history pages (docs/benchmarks.md:
// "Prepared statements", "Every read prepared"). modernc.org/sqlite keeps a
// prepared statement compiled, so statements are prepared once per
// connection and reused, through one cache type (stmtCache) on each pool:
//
//   - reads, every one on the read pool (readPool), lazily: database/sql
//     prepares a *sql.Stmt on each pooled connection the first time it runs
//     there;
//   - writes, on the writer's one connection. That connection is held by an
//     open transaction, so a statement cannot be prepared on the pool from
//     inside one: a write names the statements it runs to BeginTx, which
//     prepares those not yet prepared before it begins. Inside the
//     transaction, Tx.exec and Tx.queryRowPrepared run every statement
//     prepared: one named to BeginTx (now or by an earlier transaction) through
//     the writer's cache, any other prepared on the transaction's connection
//     for the transaction's life. Nothing runs unprepared for lack of a call.

// maxStmts bounds the statements a cache keeps: queries built from filters
// come in a bounded number of shapes, but a bound keeps a mistake cheap.
const maxStmts = 512

// stmtCache keeps statements prepared on one pool, by query.
type stmtCache struct {
	pool  *sql.DB
	stmts sync.Map // query → *sql.Stmt
	n     atomic.Int32
}

// get returns query prepared on the pool, preparing it if needed; nil when
// the cache is full. Do not call it on the writer from inside a transaction:
// preparing waits for the writer's one connection.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	if c.n.Load() >= maxStmts {
		return nil, nil
	}
	st, err := c.pool.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, fmt.Errorf("prepare %.40q…: %w", query, err)
	}
	if prev, loaded := c.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	c.n.Add(1)
	return st, nil
}

// lookup returns query if it is prepared already, or nil; it never prepares.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	return nil
}

// readPool is the read-only pool. Its QueryContext and QueryRowContext run
// each query as a statement prepared on the pool, so every read (access
// checks, the building, the session's user, history pages) is compiled once
// per connection rather than on every call. Transactions begun on it
// (BeginTx) run their queries as given.
type readPool struct {
	*sql.DB
	stmts stmtCache
}

func newReadPool(db *sql.DB) *readPool {
	return &readPool{DB: db, stmts: stmtCache{pool: db}}
}

// stmt returns query prepared on the pool, or nil (run it unprepared: the
// cache is full or the query does not compile, which running it reports).
func (p *readPool) stmt(ctx context.Context, query string) *sql.Stmt {
	st, _ := p.stmts.get(ctx, query)
	return st
}

// QueryRowContext runs a one-row query, prepared.
func (p *readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, query, args...)
}

// QueryContext runs a query, prepared.
func (p *readPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, query, args...)
}

func (p *readPool) queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row {
	return p.QueryRowContext(ctx, query, args...)
}

// stmt returns the transaction's handle on query, prepared: through the
// writer's cache when it was prepared there (BeginTx), otherwise on the
// transaction's connection, kept until the transaction ends.
func (tx *Tx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := tx.stmts[query]; st != nil {
		return st, nil
	}
	var st *sql.Stmt
	if prepared := tx.db.writeStmts.lookup(query); prepared != nil {
		st = tx.StmtContext(ctx, prepared)
	} else {
		var err error
		if st, err = tx.PrepareContext(ctx, query); err != nil {
			return nil, fmt.Errorf("prepare %.40q…: %w", query, err)
		}
	}
	if tx.stmts == nil {
		tx.stmts = map[string]*sql.Stmt{}
	}
	tx.stmts[query] = st
	return st, nil
}

// exec runs a statement in tx, prepared.
func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := tx.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryRowPrepared runs a one-row query in tx, prepared.
func (tx *Tx) queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := tx.stmt(ctx, query)
	if err != nil {
		// A query that does not compile: running it reports why, as a Row.
		return tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// rowQuerier runs one-row queries prepared: a write transaction (*Tx) or the
// read pool (readPool).
type rowQuerier interface {
	queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row
}
