package sqlite

import (
	"context"
)

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
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
