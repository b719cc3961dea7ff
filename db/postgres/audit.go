package postgres

import (
	"context"

	"github.com/doorledger/doorledger"
)

// AuditService implements doorledger.AuditService.
type AuditService struct{ db *DB }

// NewAuditService returns the PostgreSQL audit service.
func NewAuditService(db *DB) *AuditService { return &AuditService{db: db} }

var _ doorledger.AuditService = (*AuditService)(nil)

func (s *AuditService) FindAuditEntries(ctx context.Context, f doorledger.AuditFilter) ([]*doorledger.AuditEntry, error) {
	c := callerFrom(ctx)
	if f.BuildingID == 0 {
		if err := c.requireAdmin(); err != nil {
			return nil, err
		}
	} else if err := checkBuilding(ctx, s.db.pool, c, f.BuildingID); err != nil {
		return nil, err
	} else if err := doorledger.CheckJournalReader(c.role()); err != nil {
		return nil, err
	}
	f.Limit = f.PageSize()
	if f.BuildingID != 0 {
		return queryAll(ctx, s.db.pool, scanAuditEntry, `SELECT `+auditColumns+` FROM audit_entries
			WHERE building_id = $1 ORDER BY id DESC LIMIT $2`, f.BuildingID, f.Limit)
	}
	return queryAll(ctx, s.db.pool, scanAuditEntry, `SELECT `+auditColumns+` FROM audit_entries ORDER BY id DESC LIMIT $1`, f.Limit)
}

const auditColumns = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`

// scanAuditEntry reads auditColumns.
func scanAuditEntry(row interface{ Scan(...any) error }) (*doorledger.AuditEntry, error) {
	var e doorledger.AuditEntry
	if err := row.Scan(&e.ID, at(&e.At), &e.ActorID, &e.Actor, &e.Action, &e.BuildingID, &e.ObjectType, &e.ObjectID, &e.IP, &e.Detail); err != nil {
		return nil, err
	}
	return &e, nil
}
