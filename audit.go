package doorledger

import (
	"context"
	"time"
)

// AuditEntry is one fact in the append-only journal: who did what, to which
// object, in which building, when (UTC) and from where. Entries are never edited
// or deleted; the database refuses both.
type AuditEntry struct {
	ID         int64
	At         time.Time
	ActorID    int64  // 0 for the system, a device or a signer
	Actor      string // a readable label: an email, "system", "device 12", "signer 3"
	Action     string // e.g. "user.login", "building.create"
	BuildingID int64  // 0 when not about one building
	ObjectType string
	ObjectID   int64
	IP         string
	Detail     string // JSON with the facts specific to the action
}

// AuditFilter selects entries, newest first.
type AuditFilter struct {
	BuildingID int64 // 0: every building (admins)
	Limit      int
}

// AuditService reads the journal. Entries are written by the other services in
// the same transaction as the change they record.
type AuditService interface {
	// FindAuditEntries lists entries the caller may see (admins: all; managers
	// and boards: their building's).
	FindAuditEntries(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

// Journal pages: entries read when the filter asks for none, and at most.
const (
	DefaultAuditPage = 200
	MaxAuditPage     = 500
)

// PageSize is the entries a page f asks for: Limit, DefaultAuditPage when
// it is not from 1 to MaxAuditPage.
func (f AuditFilter) PageSize() int {
	if f.Limit <= 0 || f.Limit > MaxAuditPage {
		return DefaultAuditPage
	}
	return f.Limit
}

// CheckJournalReader refuses installers a building's journal, as a
// building they cannot see (the role of a caller who may see the
// building): ENOTFOUND.
func CheckJournalReader(role Role) error {
	if role == RoleInstaller {
		return Errorf(ENOTFOUND, "Building not found.")
	}
	return nil
}
