package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// scanID scans a row of one integer column, for queryAll.
func scanID(row interface{ Scan(...any) error }) (int64, error) {
	var id int64
	return id, row.Scan(&id)
}

// Times. timestamptz keeps microseconds and an instant; the domain's times
// are UTC, and zero where a column is NULL.

// ts is a time as a query argument: UTC to the microsecond (as the DB's
// clock reads), NULL when zero.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// timeCol scans a timestamptz column, NULL or not, into *t in UTC (zero for
// NULL): pgx hands sql.Scanner targets the decoded time.Time.
type timeCol struct{ t *time.Time }

func at(t *time.Time) timeCol { return timeCol{t} }

func (c timeCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	default:
		*c.t = time.Time{}
		return fmt.Errorf("time column: unexpected %T", v)
	}
	return nil
}

// nullString is s as a query argument, NULL when empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sqlArgs collects the arguments of a query built piece by piece (a scope,
// optional filters): add appends one and returns its placeholder.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// insertReturningID runs an INSERT … ON CONFLICT DO NOTHING RETURNING id: the
// new row's id, or 0 when the conflict inserted nothing.
func insertReturningID(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, query, args...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return id, err
}
