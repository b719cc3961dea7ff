package postgres

import (
	"errors"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5/pgconn"
)

// Driver errors are told apart here, by PostgreSQL's SQLSTATE codes and
// constraint names, and nowhere else.

// SQLSTATE codes the services tell apart.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
	codeNotNullViolation    = "23502"
	codeRaiseException      = "P0001" // RAISE EXCEPTION in a trigger: a refusal
	codeSerialization       = "40001"
	codeDeadlock            = "40P01"
)

// pgError returns the server's error in err's chain, or nil.
func pgError(err error) *pgconn.PgError {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func hasCode(err error, code string) bool {
	e := pgError(err)
	return e != nil && e.Code == code
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY violation.
func isUniqueViolation(err error) bool { return hasCode(err, codeUniqueViolation) }

// isUniqueOn reports a unique violation of the named constraint or unique
// index (PostgreSQL names it; the migrations name each one).
func isUniqueOn(err error, constraint string) bool {
	e := pgError(err)
	return e != nil && e.Code == codeUniqueViolation && e.ConstraintName == constraint
}

// isForeignKeyViolation reports a row naming one that does not exist (or a
// delete leaving rows that name it).
func isForeignKeyViolation(err error) bool { return hasCode(err, codeForeignKeyViolation) }

// isCheckViolation reports a CHECK constraint failure.
func isCheckViolation(err error) bool { return hasCode(err, codeCheckViolation) }

// isRefusal reports whether err is a trigger's RAISE EXCEPTION with the
// given message: the database refusing a write by one of its own rules.
func isRefusal(err error, message string) bool {
	e := pgError(err)
	return e != nil && e.Code == codeRaiseException && e.Message == message
}

// isRetryable reports a transaction PostgreSQL aborted to keep concurrent
// ones apart (serialization failure, deadlock): running it again is right.
func isRetryable(err error) bool {
	return hasCode(err, codeSerialization) || hasCode(err, codeDeadlock)
}

// classify turns what the database refused into the root's vocabulary, for
// writes whose refusal the user can cause and a service has no better
// message for: a trigger's refusal and a broken constraint are conflicts
// with the state of things (their message is written for people), a row
// naming one that does not exist is not found. Anything else is returned
// as it is (EINTERNAL to the caller).
func classify(err error) error {
	e := pgError(err)
	if e == nil {
		return err
	}
	switch e.Code {
	case codeRaiseException:
		return doorledger.Errorf(doorledger.ECONFLICT, "%s", e.Message)
	case codeUniqueViolation:
		return doorledger.Errorf(doorledger.ECONFLICT, "That already exists.")
	case codeForeignKeyViolation:
		return doorledger.Errorf(doorledger.ENOTFOUND, "Not found.")
	case codeCheckViolation, codeNotNullViolation:
		return doorledger.Errorf(doorledger.EINVALID, "That is not a valid value.")
	}
	return err
}
