package testtool

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
)

// DatabaseFiles returns the bytes of the SQLite database at path and of its
// WAL, as a copy of the data directory would hold them: for tests that prove
// a secret is not at rest in the database's files.
func DatabaseFiles(tb testing.TB, path string) []byte {
	tb.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			tb.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TableText returns every column of every row of every table of the
// database, as text (blobs as their bytes), one NUL after each value: what
// sqlite3 would print of it, for tests that look for a secret in it.
func TableText(tb testing.TB, db *sql.DB) string {
	tb.Helper()
	var names []string
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table'`)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			tb.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	var b strings.Builder
	for _, name := range names {
		rows, err := db.Query(`SELECT * FROM "` + name + `"`)
		if err != nil {
			tb.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatal(err)
			}
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					b.Write(bs)
				} else if v != nil {
					fmt.Fprint(&b, v)
				}
				b.WriteByte(0)
			}
		}
		rows.Close()
	}
	return b.String()
}
