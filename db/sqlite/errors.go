package sqlite

import (
	"errors"
	"strings"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Driver errors are told apart here, by SQLite's result codes, and nowhere
// else. modernc.org/sqlite reports extended result codes, so a unique
// violation and a trigger's refusal are distinct codes of the constraint
// family.

// code returns SQLite's extended result code of err, or 0 when err did not come
// from SQLite.
func code(err error) int {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	c := code(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isUniqueOn reports a unique violation on the named columns ("table.column",
// several joined by ", " as SQLite names them). SQLite names the columns only in
// its message, so this is the one place that reads it.
func isUniqueOn(err error, columns string) bool {
	if !isUniqueViolation(err) {
		return false
	}
	_, named, ok := strings.Cut(err.Error(), "constraint failed: ")
	if !ok {
		return false
	}
	named = strings.TrimPrefix(named, "UNIQUE constraint failed: ")
	named = strings.TrimPrefix(named, "PRIMARY KEY constraint failed: ")
	if i := strings.LastIndex(named, " ("); i >= 0 {
		named = named[:i] // the code SQLite's driver appends
	}
	return named == columns
}

// isRefusal reports whether err is a trigger's RAISE(ABORT, message) with the
// given message: the database refusing a write by one of its own rules.
func isRefusal(err error, message string) bool {
	if code(err) != sqlite3.SQLITE_CONSTRAINT_TRIGGER {
		return false
	}
	return strings.Contains(err.Error(), message)
}
