package pgmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// sqliteOnly lists the tables of package sqlite's schema that have no
// counterpart in package postgres's, and why nothing is lost by leaving them.
// Any other table found on one side only stops the copy.
var sqliteOnly = map[string]string{
	"sqlite_sequence":    "SQLite's AUTOINCREMENT bookkeeping: the largest id each table ever gave; it sets the target's sequences instead, so no id is given twice",
	"migrations":         "each backend records its own migrations; the target's are db/postgres's, applied before the copy",
	"unlock_day_offsets": "SQLite's table of UTC offsets per time zone for dating unlock events; PostgreSQL knows time zones itself",
	"disk_full_episodes": "episodes of the SQLite data directory's disk running full (db/sqlite/space.go); PostgreSQL's disk is the database server's, and the alerts the episodes raised are in the outbox and the journal, which are copied",
}

// postgresOnly lists the tables of package postgres's schema that have no
// counterpart in package sqlite's.
var postgresOnly = map[string]string{
	"migrations": "each backend records its own migrations",
}

// seeded are the tables the target's migrations fill with their one row;
// the copy replaces it with the source's. (witness_policy: once the
// witnesses' port adds it, as package sqlite's migration 095 seeds it.)
var seeded = []string{"unlock_cache_epoch", "resident_notice_cursor", "witness_policy"}

// column is one column of a table: its name and, on PostgreSQL, its type
// as format_type writes it ("bigint", "timestamp with time zone", …).
type column struct {
	Name    string
	PGType  string
	NotNull bool
}

// table is what is copied of one table: the columns both schemas have, in
// the target's order.
type table struct {
	name    string
	columns []column
}

// readSQLiteSchema lists the source's tables and their columns.
func readSQLiteSchema(ctx context.Context, tx *sql.Tx) (map[string][]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read the SQLite schema: %w", err)
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	schema := map[string][]string{}
	for _, name := range names {
		cols, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			return nil, fmt.Errorf("read the SQLite schema of %s: %w", name, err)
		}
		schema[name] = []string{}
		for cols.Next() {
			var col string
			if err := cols.Scan(&col); err != nil {
				cols.Close()
				return nil, err
			}
			schema[name] = append(schema[name], col)
		}
		cols.Close()
		if err := cols.Err(); err != nil {
			return nil, err
		}
	}
	return schema, nil
}

// readPostgresSchema lists the target's tables (in its current schema) and
// their columns with their types.
func readPostgresSchema(ctx context.Context, tx pgx.Tx) (map[string][]column, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
		AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("read the PostgreSQL schema: %w", err)
	}
	defer rows.Close()
	schema := map[string][]column{}
	for rows.Next() {
		var t string
		var c column
		if err := rows.Scan(&t, &c.Name, &c.PGType, &c.NotNull); err != nil {
			return nil, err
		}
		schema[t] = append(schema[t], c)
	}
	return schema, rows.Err()
}

// plan matches the two schemas table by table and column by column. A table
// or column on one side only is an error that names every one of them
// (but for the tables listed above with their reason): copying would drop
// its data, or leave a column the services expect to hold it empty.
func plan(src map[string][]string, dst map[string][]column) ([]table, error) {
	var onlySrc, onlyDst, colsSrc, colsDst []string
	var tables []table
	for name, cols := range src {
		if _, ok := sqliteOnly[name]; ok {
			continue
		}
		dcols, ok := dst[name]
		if !ok {
			onlySrc = append(onlySrc, name)
			continue
		}
		t := table{name: name}
		for _, c := range dcols {
			if !slices.Contains(cols, c.Name) {
				colsDst = append(colsDst, name+"."+c.Name)
				continue
			}
			t.columns = append(t.columns, c)
		}
		for _, c := range cols {
			if !slices.ContainsFunc(dcols, func(d column) bool { return d.Name == c }) {
				colsSrc = append(colsSrc, name+"."+c)
			}
		}
		tables = append(tables, t)
	}
	for name := range dst {
		if _, ok := postgresOnly[name]; ok {
			continue
		}
		if _, ok := src[name]; !ok {
			onlyDst = append(onlyDst, name)
		}
	}
	var problems []string
	for _, p := range []struct {
		what  string
		names []string
	}{
		{"tables in the SQLite database but not in PostgreSQL's schema", onlySrc},
		{"columns in the SQLite database but not in PostgreSQL's schema", colsSrc},
		{"tables in PostgreSQL's schema but not in the SQLite database", onlyDst},
		{"columns in PostgreSQL's schema but not in the SQLite database", colsDst},
	} {
		if len(p.names) > 0 {
			sort.Strings(p.names)
			problems = append(problems, p.what+": "+strings.Join(p.names, ", "))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the two schemas differ, and copying would lose data or leave it out (a migration of db/postgres is missing, or the SQLite data directory is of another version): %s", strings.Join(problems, "; "))
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	return tables, nil
}

// foreignKey is a foreign key constraint as pg_get_constraintdef writes it.
type foreignKey struct {
	table, name, def string
}

// dropForeignKeys drops the copied tables' foreign keys, returning them to
// be added again (addForeignKeys) in the same transaction.
func dropForeignKeys(ctx context.Context, tx pgx.Tx, tables []table) ([]foreignKey, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
	}
	rows, err := tx.Query(ctx, `
		SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace AND c.conrelid::regclass::text = ANY($1)
		ORDER BY 1, 2`, names)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (foreignKey, error) {
		var fk foreignKey
		return fk, r.Scan(&fk.table, &fk.name, &fk.def)
	})
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	for _, fk := range fks {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{fk.table}.Sanitize()+` DROP CONSTRAINT `+pgx.Identifier{fk.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop %s's foreign key %s for the copy: %w", fk.table, fk.name, err)
		}
	}
	return fks, nil
}

// addForeignKeys adds the foreign keys again; each is checked on every row.
func addForeignKeys(ctx context.Context, tx pgx.Tx, fks []foreignKey) error {
	for _, fk := range fks {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{fk.table}.Sanitize()+` ADD CONSTRAINT `+pgx.Identifier{fk.name}.Sanitize()+` `+fk.def); err != nil {
			return fmt.Errorf("the copy breaks %s's foreign key %s (%s), and was rolled back: %w", fk.table, fk.name, fk.def, err)
		}
	}
	return nil
}
