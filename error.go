// Package doorledger holds the domain of the Doorledger portal: its types, the
// service interfaces that store and act on them, and the one error vocabulary that
// every layer speaks. It imports only the standard library; db, web, views, reports
// and the device-control package implement or present what is declared here.
package doorledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes. A handful, mapped to HTTP status in one place (web/errors.go).
const (
	EINVALID      = "invalid"      // the input is wrong; the message says how
	ENOTFOUND     = "not_found"    // no such object, or the caller may not know it exists
	EFORBIDDEN    = "forbidden"    // the caller may see the object but not do this
	EUNAUTHORIZED = "unauthorized" // no valid sign-in
	ECONFLICT     = "conflict"     // the object's state does not allow this now
	ETOOMANY      = "too_many"     // throttled; retry later
	EUNAVAILABLE  = "unavailable"  // cannot be done now (the disk is full); retry later, nothing was kept
	EINTERNAL     = "internal"     // a bug or an outage; the user sees "Internal error"
)

// Error is a coded error whose Message is safe to show to the user. Fields carries
// per-field messages for forms (field name → message).
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("doorledger error: code=%s message=%s", e.Code, e.Message)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k+": "+e.Fields[k])
	}
	sort.Strings(keys)
	return fmt.Sprintf("doorledger error: code=%s message=%s fields=[%s]", e.Code, e.Message, strings.Join(keys, "; "))
}

// Errorf returns a coded error with a formatted, user-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first coded error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of a coded error, and "Internal
// error." for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorFields returns the per-field messages of a coded error, or nil.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// Validation collects per-field problems and turns them into one EINVALID error.
type Validation map[string]string

// Add records msg for field unless the field already has a message.
func (v Validation) Add(field, msg string) {
	if _, ok := v[field]; !ok {
		v[field] = msg
	}
}

// Err returns nil when nothing was added, else an EINVALID *Error.
func (v Validation) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "Please correct the highlighted fields.", Fields: map[string]string(v)}
}
