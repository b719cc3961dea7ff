package sqlite

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/doorledger/doorledger"

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

// isDiskFull reports an error of a write the disk had no room for: SQLite's
// SQLITE_FULL (the unix VFS turns a write's ENOSPC into it, as it does
// max_page_count reached), an I/O error whose cause is ENOSPC or EDQUOT,
// or the portal's own refusal of ingest below the free-space floor
// (space.go). Every layer above sees it as one EUNAVAILABLE error (diskFull).
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errDiskFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	c := code(err)
	switch {
	case c&0xff == sqlite3.SQLITE_FULL:
		return true
	case c&0xff == sqlite3.SQLITE_IOERR:
		// SQLite keeps the errno only for sqlite3_system_errno, which the
		// driver does not report; its message names the cause when the
		// VFS logged one.
		msg := err.Error()
		return strings.Contains(msg, "no space left") || strings.Contains(msg, "quota exceeded")
	}
	return false
}

// errDiskFull is the one disk-full error every layer above the database
// sees: EUNAVAILABLE, to be tried again later (HTTP 503 with Retry-After, a
// negative PUBACK), nothing of the write kept.
var errDiskFull = &doorledger.Error{Code: doorledger.EUNAVAILABLE,
	Message: "The portal's disk is full, so nothing was recorded. Please try again later."}

// diskFull returns err as errDiskFull (keeping the cause in the chain) when
// it is a disk-full error, and err unchanged otherwise.
func diskFull(err error) error {
	if err == nil || errors.Is(err, errDiskFull) || !isDiskFull(err) {
		return err
	}
	return fmt.Errorf("%w (%w)", errDiskFull, err)
}
