package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
)

// Prepared statements. Compiling SQL costs more than running the small
// statements of the device paths: on the revoke path the device query took
// 99–167 µs compiled per call against 30 µs prepared once, and compiling was a
// third of the CPU (docs/benchmarks.md, issue 4). modernc.org/sqlite keeps a
// prepared statement compiled, so the hot statements are prepared once per
// connection and reused:
//
//   - reads, every one on the read pool (readPool), lazily: database/sql
//     prepares a *sql.Stmt on each pooled connection the first time it runs
//     there;
//   - writes, on the writer connection, before the transaction that uses them
//     (prepareWrites): the writer's one connection is held by an open
//     transaction, so a statement cannot be prepared on the pool from inside
//     one. Inside a transaction tx.StmtContext borrows the compiled statement
//     of the transaction's connection.
//
// Preparing is an optimisation only: a statement that is not prepared (a
// helper called from a path that did not prepare it, a failed prepare) runs as
// plain SQL, with the same result.
type stmtCache struct {
	write sync.Map // query → *sql.Stmt on the writer
}

// maxReadStmts bounds the read statements kept: queries built from filters
// come in a bounded number of shapes, but a bound keeps a mistake cheap.
const maxReadStmts = 512

// readPool is the read-only pool. Its QueryContext and QueryRowContext run
// each query as a statement prepared on the pool, so every read (access
// checks, the building, the session's user, history pages) is compiled once
// per connection rather than on every call: compiling was 22% of a history
// page's CPU (docs/benchmarks.md, issue 5). Transactions begun on it
// (BeginTx) run their queries as given.
type readPool struct {
	*sql.DB
	stmts sync.Map // query → *sql.Stmt
	n     atomic.Int32
}

// stmt returns query prepared on the pool, or nil (run it unprepared).
func (p *readPool) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := p.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if p.n.Load() >= maxReadStmts {
		return nil
	}
	st, err := p.DB.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	if prev, loaded := p.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	p.n.Add(1)
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

// prepareWrites prepares queries on the writer connection, those not yet
// prepared. Call it outside any transaction: it waits for the writer.
func (db *DB) prepareWrites(ctx context.Context, queries []string) error {
	for _, q := range queries {
		if _, ok := db.stmts.write.Load(q); ok {
			continue
		}
		st, err := db.write.PrepareContext(context.WithoutCancel(ctx), q)
		if err != nil {
			return fmt.Errorf("prepare %.40q…: %w", q, err)
		}
		if _, loaded := db.stmts.write.LoadOrStore(q, st); loaded {
			st.Close()
		}
	}
	return nil
}

// stmt returns the transaction's handle on query prepared on the writer, or
// nil when it was not prepared.
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	st, ok := tx.db.stmts.write.Load(query)
	if !ok {
		return nil
	}
	return tx.StmtContext(ctx, st.(*sql.Stmt))
}

// exec runs a statement in tx, prepared when it was.
func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// queryRowPrepared runs a one-row query in tx, prepared when it was.
func (tx *Tx) queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// rowQuerier runs one-row queries prepared: a write transaction (*Tx) or the
// read pool (readPool).
type rowQuerier interface {
	queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row
}
