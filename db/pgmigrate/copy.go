package pgmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// copyTable streams one table from the source into the target with COPY
// (pgx's CopyFrom): rows are read, converted and sent as they come, so a
// table of millions of unlock events never sits in memory.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, t table) (int64, error) {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.Name
	}
	rows, err := src.QueryContext(ctx, `SELECT `+quoteSQLite(names)+` FROM "`+t.name+`"`)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	s := &rowSource{rows: rows, t: t, raw: make([]any, len(names)), out: make([]any, len(names))}
	n, err := dst.CopyFrom(ctx, pgx.Identifier{t.name}, names, s)
	if s.err != nil {
		return 0, fmt.Errorf("copy %s: %w", t.name, s.err)
	}
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", t.name, err)
	}
	return n, nil
}

func quoteSQLite(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, ", ")
}

// rowSource is pgx.CopyFromSource over the source's rows.
type rowSource struct {
	rows     *sql.Rows
	t        table
	raw, out []any
	err      error
}

func (s *rowSource) Next() bool { return s.err == nil && s.rows.Next() }

func (s *rowSource) Values() ([]any, error) {
	ptrs := make([]any, len(s.raw))
	for i := range s.raw {
		ptrs[i] = &s.raw[i]
	}
	if err := s.rows.Scan(ptrs...); err != nil {
		s.err = err
		return nil, err
	}
	for i, c := range s.t.columns {
		v, err := convert(s.t.name, c, s.raw[i])
		if err != nil {
			// Name the row by its first column (its id or key).
			s.err = fmt.Errorf("row %s = %v, column %s: %w", s.t.columns[0].Name, s.raw[0], c.Name, err)
			return nil, s.err
		}
		s.out[i] = v
	}
	return s.out, nil
}

func (s *rowSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

// SQLite keeps times as RFC 3339 UTC text (db/sqlite's timeLayout).
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// convert turns a value as SQLite holds it into the target column's type.
// What it cannot convert exactly is an error: nothing is guessed or dropped.
func convert(tableName string, c column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if special, ok := specialColumns[tableName+"."+c.Name]; ok {
		return special(v)
	}
	switch c.PGType {
	case "bigint", "integer", "smallint":
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("want an integer, the SQLite database holds %T %q", v, fmt.Sprint(v))
		}
		return n, nil
	case "boolean":
		switch v {
		case int64(0):
			return false, nil
		case int64(1):
			return true, nil
		}
		return nil, fmt.Errorf("want 0 or 1 for a flag, the SQLite database holds %T %q", v, fmt.Sprint(v))
	case "text":
		switch v := v.(type) {
		case string:
			return v, nil
		case []byte:
			if utf8.Valid(v) {
				return string(v), nil
			}
		}
		return nil, fmt.Errorf("want text, the SQLite database holds %T %q", v, fmt.Sprint(v))
	case "bytea":
		switch v := v.(type) {
		case []byte:
			return v, nil
		}
		return nil, fmt.Errorf("want a blob, the SQLite database holds %T %q", v, fmt.Sprint(v))
	case "timestamp with time zone":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a time, the SQLite database holds %T %q", v, fmt.Sprint(v))
		}
		if s == "" {
			// db/sqlite writes no time as '' (formatTime); db/postgres as NULL.
			if c.NotNull {
				return nil, fmt.Errorf("no time ('') in a column that needs one")
			}
			return nil, nil
		}
		t, err := parseTime(s)
		if err != nil {
			return nil, err
		}
		return t, nil
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a date, the SQLite database holds %T %q", v, fmt.Sprint(v))
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("want a date (YYYY-MM-DD), the SQLite database holds %q", s)
		}
		return pgtype.Date{Time: t, Valid: true}, nil
	}
	return nil, fmt.Errorf("no conversion into PostgreSQL's %s: add one to db/pgmigrate", c.PGType)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(sqliteTime, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, fmt.Errorf("want a time (RFC 3339), the SQLite database holds %q", s)
		}
	}
	return t.UTC(), nil
}

// specialColumns convert columns whose SQLite values mean something a plain
// conversion would not read.
var specialColumns = map[string]func(any) (any, error){
	// The daily counts' mark: SQLite writes '9999' (all counted) and ''
	// (none yet), PostgreSQL infinity and -infinity.
	"unlock_daily_zones.counted_until": func(v any) (any, error) {
		switch v {
		case "9999":
			return pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}, nil
		case "":
			return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a time, '9999' or '', the SQLite database holds %T %q", v, fmt.Sprint(v))
		}
		t, err := parseTime(s)
		if err != nil {
			return nil, err
		}
		return t, nil
	},
}
