package db

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
//   - reads, on the read pool, lazily: database/sql prepares a *sql.Stmt on
//     each pooled connection the first time it runs there;
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
	read  sync.Map // query → *sql.Stmt on the read pool
	write sync.Map // query → *sql.Stmt on the writer
	reads atomic.Int32
}

// maxReadStmts bounds the read statements kept: queries built from filters
// come in a bounded number of shapes, but a bound keeps a mistake cheap.
const maxReadStmts = 256

// readStmt returns query prepared on the read pool, or nil (run it unprepared).
func (db *DB) readStmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := db.stmts.read.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if db.stmts.reads.Load() >= maxReadStmts {
		return nil
	}
	st, err := db.read.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	if prev, loaded := db.stmts.read.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	db.stmts.reads.Add(1)
	return st
}

// queryRowRead runs a one-row query on the read pool, prepared.
func (db *DB) queryRowRead(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.read.QueryRowContext(ctx, query, args...)
}

// queryRead runs a query on the read pool, prepared.
func (db *DB) queryRead(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.read.QueryContext(ctx, query, args...)
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

// readPool is the read pool as a rowQuerier.
type readPool struct{ db *DB }

func (r readPool) queryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row {
	return r.db.queryRowRead(ctx, query, args...)
}
