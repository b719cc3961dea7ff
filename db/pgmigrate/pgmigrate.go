// Package pgmigrate copies a Doorledger SQLite database (package sqlite's)
// into an empty PostgreSQL database (package postgres's schema) and proves
// the copy: `portal migrate`.
//
// The copy is driven by the two schemas: every table both have, every
// column both have, converted by the target column's type (SQLite's text
// times to timestamptz, 0/1 to boolean, …); a table or column on one side
// only is an error naming it, but for the few tables listed with their
// reason (schema.go). Rows stream through COPY, table by table, in one
// transaction: a copy that fails leaves the target as it found it.
//
// The target's user triggers are off during the copy, in that transaction
// only (ALTER TABLE … DISABLE TRIGGER USER, undone before the commit; its
// lock keeps every other session out of the tables meanwhile). Checks and
// unique constraints stay on; foreign keys are dropped for the copy and
// added again after it, in the same transaction, which checks each in one
// pass over its table. Every rule a trigger
// enforces is re-checked on the copied rows before the commit (rules.go).
//
// The proof, after the copy: the row count of every table equals the
// source's, every report's hash is the source's, the log's root (over all
// its entries) and its latest signed head are the source's, and the
// target's own log verification (postgres.LogService.Verify, what `portal
// audit verify` runs) passes on the committed copy.
package pgmigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrNotEmpty is the refusal of a target that holds data already.
var ErrNotEmpty = errors.New("the target database is not empty")

// Result is what Migrate copied and proved.
type Result struct {
	Tables   []TableCount // every table copied, in copy order
	Rows     int64        // rows copied in all
	Reports  int          // reports whose hash was compared
	LogSize  int64        // entries in the log
	LogRoot  string       // the root of the tree of all of them, in hex
	Head     *doorledger.LogHead
	Rules    int // rules re-checked
	Verified *doorledger.LogVerification
	Took     time.Duration
}

// TableCount is a table's row count on both sides.
type TableCount struct {
	Name           string
	Source, Target int64
}

// Migrate copies the SQLite database src (opened by package sqlite, so
// its migrations are applied) into dst, whose migrations Open applied,
// and proves the copy. key is the data directory's log key (nil: heads are
// checked against the key they say, as `portal audit verify` without
// one); progress, if not nil, gets a line per table.
//
// Nothing is written to the source, which should not be in use: the copy
// reads one snapshot of it, and rows written after that would not be on
// the target.
func Migrate(ctx context.Context, src *sql.DB, dst *postgres.DB, key *auditlog.Key, progress io.Writer) (*Result, error) {
	began := time.Now()
	if progress == nil {
		progress = io.Discard
	}
	// One read transaction: one snapshot of the source for every table.
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read the SQLite database: %w", err)
	}
	defer stx.Rollback()
	ptx, err := dst.Pool().Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))

	srcSchema, err := readSQLiteSchema(ctx, stx)
	if err != nil {
		return nil, err
	}
	dstSchema, err := readPostgresSchema(ctx, ptx)
	if err != nil {
		return nil, err
	}
	tables, err := plan(srcSchema, dstSchema)
	if err != nil {
		return nil, err
	}
	triggers, err := userTriggers(ctx, ptx)
	if err != nil {
		return nil, err
	}
	if u := unclassified(triggers); len(u) > 0 {
		return nil, fmt.Errorf("the target has triggers portal migrate neither re-checks nor knows to guard changes only: %s; "+
			"say how each is re-checked in db/pgmigrate/rules.go", strings.Join(u, ", "))
	}

	// Triggers off, in this transaction only. ALTER TABLE takes each
	// table's ACCESS EXCLUSIVE lock until the commit: no other session
	// reads or writes it meanwhile, and none sees the triggers off.
	for _, t := range tables {
		if _, err := ptx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{t.name}.Sanitize()+` DISABLE TRIGGER USER`); err != nil {
			return nil, fmt.Errorf("turn the triggers of %s off for the copy (the target's tables must belong to the user portal migrate connects as): %w", t.name, err)
		}
	}
	if err := checkEmpty(ctx, ptx, tables); err != nil {
		return nil, err
	}
	for _, t := range tables {
		if !slices.Contains(seeded, t.name) {
			continue
		}
		if _, err := ptx.Exec(ctx, `DELETE FROM `+pgx.Identifier{t.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("clear %s: %w", t.name, err)
		}
	}

	// Foreign keys are checked once per table after the copy, not once
	// per row during it (a check per row halved COPY's speed).
	fks, err := dropForeignKeys(ctx, ptx, tables)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "The target is empty and its schema matches; copying %d tables:\n", len(tables))
	res := &Result{}
	for _, t := range tables {
		start := time.Now()
		n, err := copyTable(ctx, stx, ptx, t)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, TableCount{Name: t.name, Source: -1, Target: n})
		res.Rows += n
		fmt.Fprintf(progress, "  %-30s %10d rows  %s\n", t.name, n, time.Since(start).Round(time.Millisecond))
	}
	if err := addForeignKeys(ctx, ptx, fks); err != nil {
		return nil, err
	}
	if err := setSequences(ctx, stx, ptx, tables); err != nil {
		return nil, err
	}
	for _, t := range tables {
		if _, err := ptx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{t.name}.Sanitize()+` ENABLE TRIGGER USER`); err != nil {
			return nil, fmt.Errorf("turn the triggers of %s on again: %w", t.name, err)
		}
	}

	// The proof inside the transaction: a failure rolls the copy back.
	if err := compareCounts(ctx, stx, ptx, res.Tables); err != nil {
		return nil, err
	}
	if res.Reports, err = compareReports(ctx, stx, ptx); err != nil {
		return nil, err
	}
	if err := compareLog(ctx, stx, ptx, res); err != nil {
		return nil, err
	}
	broken, err := checkRules(ctx, ptx)
	if err != nil {
		return nil, err
	}
	if len(broken) > 0 {
		return nil, fmt.Errorf("the copy breaks rules the target's triggers enforce, and was rolled back: %s", strings.Join(broken, " | "))
	}
	res.Rules = len(rules)
	if err := ptx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit the copy: %w", err)
	}

	// The log verified on the committed copy, as `portal audit verify`
	// would on a portal running on it.
	logs := postgres.NewLogService(dst, key)
	v, err := logs.Verify(doorledger.NewSystemContext(ctx, "migrate"))
	if err != nil {
		return nil, fmt.Errorf("verify the log on the target: %w", err)
	}
	res.Verified = v
	if v.Problem != nil {
		return res, fmt.Errorf("the log does not verify on the target: %s (the copy is committed: drop the target database before trying again)", v.Problem)
	}
	if (v.Head == nil) != (res.Head == nil) || (v.Head != nil && (v.Head.Size != res.Head.Size || v.Head.Root != res.Head.Root)) {
		return res, fmt.Errorf("the target's verified head is not the source's latest head (the copy is committed: drop the target database before trying again)")
	}
	res.Took = time.Since(began)
	return res, nil
}

// checkEmpty refuses a target that holds any row in a table the copy
// writes (but for the rows its migrations seed).
func checkEmpty(ctx context.Context, tx pgx.Tx, tables []table) error {
	var full []string
	for _, t := range tables {
		if slices.Contains(seeded, t.name) {
			continue
		}
		var rows bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t.name}.Sanitize()+`)`).Scan(&rows); err != nil {
			return fmt.Errorf("look into %s: %w", t.name, err)
		}
		if rows {
			full = append(full, t.name)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("%w: %s hold rows. portal migrate copies into an empty database only, so that nothing on the target is "+
			"mixed with or hidden by the copy: create a new database (createdb) and give its URL", ErrNotEmpty, strings.Join(full, ", "))
	}
	return nil
}

// setSequences moves every sequence of a copied column past the largest id
// the source holds or ever gave (sqlite_sequence: AUTOINCREMENT ids are
// never given twice, even after the newest rows were deleted).
func setSequences(ctx context.Context, stx *sql.Tx, ptx pgx.Tx, tables []table) error {
	given := map[string]int64{}
	if rows, err := stx.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`); err == nil {
		for rows.Next() {
			var name string
			var seq int64
			if err := rows.Scan(&name, &seq); err != nil {
				rows.Close()
				return err
			}
			given[name] = seq
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, t := range tables {
		for _, c := range t.columns {
			var seq *string
			if err := ptx.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, $2)`, pgx.Identifier{t.name}.Sanitize(), c.Name).Scan(&seq); err != nil {
				return fmt.Errorf("sequence of %s.%s: %w", t.name, c.Name, err)
			}
			if seq == nil {
				continue
			}
			var max int64
			if err := ptx.QueryRow(ctx, `SELECT COALESCE(max(`+pgx.Identifier{c.Name}.Sanitize()+`), 0) FROM `+pgx.Identifier{t.name}.Sanitize()).Scan(&max); err != nil {
				return err
			}
			max = maxInt(max, given[t.name])
			if max == 0 {
				continue
			}
			if _, err := ptx.Exec(ctx, `SELECT setval($1, $2)`, *seq, max); err != nil {
				return fmt.Errorf("set %s past %d: %w", *seq, max, err)
			}
		}
	}
	return nil
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// compareCounts counts every table on both sides.
func compareCounts(ctx context.Context, stx *sql.Tx, ptx pgx.Tx, counts []TableCount) error {
	var differ []string
	for i := range counts {
		c := &counts[i]
		if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM "`+c.Name+`"`).Scan(&c.Source); err != nil {
			return fmt.Errorf("count %s in the SQLite database: %w", c.Name, err)
		}
		if err := ptx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{c.Name}.Sanitize()).Scan(&c.Target); err != nil {
			return fmt.Errorf("count %s in PostgreSQL: %w", c.Name, err)
		}
		if c.Source != c.Target {
			differ = append(differ, fmt.Sprintf("%s: %d in SQLite, %d in PostgreSQL", c.Name, c.Source, c.Target))
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("row counts differ, the copy was rolled back: %s", strings.Join(differ, "; "))
	}
	return nil
}

// compareReports compares every report's status and file hash.
func compareReports(ctx context.Context, stx *sql.Tx, ptx pgx.Tx) (int, error) {
	src := map[string]string{}
	rows, err := stx.QueryContext(ctx, `SELECT id, status || ' ' || COALESCE(sha256, '') FROM reports`)
	if err != nil {
		return 0, fmt.Errorf("read the reports: %w", err)
	}
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			rows.Close()
			return 0, err
		}
		src[id] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	prows, err := ptx.Query(ctx, `SELECT id, status || ' ' || COALESCE(sha256, '') FROM reports`)
	if err != nil {
		return 0, fmt.Errorf("read the copied reports: %w", err)
	}
	defer prows.Close()
	n := 0
	var differ []string
	for prows.Next() {
		var id, h string
		if err := prows.Scan(&id, &h); err != nil {
			return 0, err
		}
		if src[id] != h {
			differ = append(differ, id)
		}
		n++
	}
	if err := prows.Err(); err != nil {
		return 0, err
	}
	if n != len(src) || len(differ) > 0 {
		return 0, fmt.Errorf("the reports' hashes differ (%d in SQLite, %d in PostgreSQL; differ: %s), the copy was rolled back", len(src), n, strings.Join(differ, ", "))
	}
	return n, nil
}

// compareLog compares the log's size, the root of the tree of all its
// entries (from its stored hashes) and its latest signed head.
func compareLog(ctx context.Context, stx *sql.Tx, ptx pgx.Tx, res *Result) error {
	var size, psize int64
	if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM log_leaves`).Scan(&size); err != nil {
		return err
	}
	if err := ptx.QueryRow(ctx, `SELECT count(*) FROM log_leaves`).Scan(&psize); err != nil {
		return err
	}
	if size != psize {
		return fmt.Errorf("the log holds %d entries in SQLite, %d in PostgreSQL", size, psize)
	}
	res.LogSize = size
	srcRoot, err := tlog.TreeHash(size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			var b []byte
			if err := stx.QueryRowContext(ctx, `SELECT hash FROM log_hashes WHERE idx = ?`, x).Scan(&b); err != nil {
				return nil, fmt.Errorf("log hash %d in SQLite: %w", x, err)
			}
			copy(out[i][:], b)
		}
		return out, nil
	}))
	if err != nil {
		return err
	}
	dstRoot, err := tlog.TreeHash(size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			var b []byte
			if err := ptx.QueryRow(ctx, `SELECT hash FROM log_hashes WHERE idx = $1`, x).Scan(&b); err != nil {
				return nil, fmt.Errorf("log hash %d in PostgreSQL: %w", x, err)
			}
			copy(out[i][:], b)
		}
		return out, nil
	}))
	if err != nil {
		return err
	}
	if srcRoot != dstRoot {
		return fmt.Errorf("the log's root differs: %s in SQLite, %s in PostgreSQL", doorledger.LogHash(srcRoot), doorledger.LogHash(dstRoot))
	}
	res.LogRoot = doorledger.LogHash(srcRoot).String()

	var h doorledger.LogHead
	var root []byte
	var at string
	err = stx.QueryRowContext(ctx, `SELECT size, root, note, at FROM log_heads ORDER BY size DESC LIMIT 1`).Scan(&h.Size, &root, &h.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("the latest signed head in SQLite: %w", err)
	}
	copy(h.Root[:], root)
	if t, err := parseTime(at); err == nil {
		h.At = t
	}
	var p doorledger.LogHead
	var proot []byte
	if err := ptx.QueryRow(ctx, `SELECT size, root, note FROM log_heads ORDER BY size DESC LIMIT 1`).Scan(&p.Size, &proot, &p.Note); err != nil {
		return fmt.Errorf("the latest signed head in PostgreSQL: %w", err)
	}
	copy(p.Root[:], proot)
	if p.Size != h.Size || p.Root != h.Root || p.Note != h.Note {
		return fmt.Errorf("the latest signed head differs: %d entries, root %s in SQLite; %d entries, root %s in PostgreSQL", h.Size, h.Root, p.Size, p.Root)
	}
	res.Head = &h
	return nil
}
