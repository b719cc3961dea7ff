package sqlite

import (
	"context"

	"github.com/doorledger/doorledger"
)

// AuditService implements doorledger.AuditService.
type AuditService struct{ db *DB }

// NewAuditService returns the SQLite audit service.
func NewAuditService(db *DB) *AuditService { return &AuditService{db: db} }

var _ doorledger.AuditService = (*AuditService)(nil)

func (s *AuditService) FindAuditEntries(ctx context.Context, f doorledger.AuditFilter) ([]*doorledger.AuditEntry, error) {
	c := callerFrom(ctx)
	if f.BuildingID == 0 {
		if err := c.requireAdmin(); err != nil {
			return nil, err
		}
	} else if err := checkBuilding(ctx, s.db.read, c, f.BuildingID); err != nil {
		return nil, err
	} else if err := doorledger.CheckJournalReader(c.role()); err != nil {
		return nil, err
	}
	f.Limit = f.PageSize()
	query, args := `SELECT `+auditColumns+` FROM audit_entries`, []any{}
	if f.BuildingID != 0 {
		query += ` WHERE building_id = ?`
		args = append(args, f.BuildingID)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	return queryAll(ctx, s.db.read, scanAuditEntry, query, args...)
}

const auditColumns = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`

// scanAuditEntry reads auditColumns.
func scanAuditEntry(row interface{ Scan(...any) error }) (*doorledger.AuditEntry, error) {
	var e doorledger.AuditEntry
	var at string
	if err := row.Scan(&e.ID, &at, &e.ActorID, &e.Actor, &e.Action, &e.BuildingID, &e.ObjectType, &e.ObjectID, &e.IP, &e.Detail); err != nil {
		return nil, err
	}
	e.At = parseTime(at)
	return &e, nil
}
