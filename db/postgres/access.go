package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// caller is who a request acts as: a signed-in user or the system.
type caller struct {
	user   *doorledger.User
	system string
}

func callerFrom(ctx context.Context) caller {
	return caller{user: doorledger.UserFromContext(ctx), system: doorledger.SystemFromContext(ctx)}
}

// allBuildings reports whether the caller reaches every building.
func (c caller) allBuildings() bool { return c.system != "" || c.user.IsAdmin() }

func (c caller) id() int64 {
	if c.user != nil {
		return c.user.ID
	}
	return 0
}

func (c caller) label() string {
	switch {
	case c.system != "":
		return c.system
	case c.user != nil:
		return c.user.Email
	}
	return "anonymous"
}

func (c caller) role() doorledger.Role {
	if c.system != "" {
		return doorledger.RoleAdmin
	}
	if c.user == nil {
		return ""
	}
	return c.user.Role
}

// requireSignedIn returns EUNAUTHORIZED for an anonymous caller.
func (c caller) requireSignedIn() error {
	if c.system == "" && c.user == nil {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Please sign in.")
	}
	return nil
}

// requireAdmin returns EFORBIDDEN unless the caller is an admin or the system.
func (c caller) requireAdmin() error {
	if err := c.requireSignedIn(); err != nil {
		return err
	}
	if !c.allBuildings() {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Only an administrator may do that.")
	}
	return nil
}

// checkBuilding returns ENOTFOUND unless the building exists and the caller holds
// a grant on it (admins and the system reach every building). Not found and not
// granted are the same answer, so that ids do not leak.
func checkBuilding(ctx context.Context, q querier, c caller, buildingID int64) error {
	if err := c.requireSignedIn(); err != nil {
		return err
	}
	var ok bool
	var err error
	if c.allBuildings() {
		err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM buildings WHERE id = $1)`, buildingID).Scan(&ok)
	} else {
		err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM grants WHERE building_id = $1 AND user_id = $2)`, buildingID, c.user.ID).Scan(&ok)
	}
	if err != nil {
		return err
	} else if !ok {
		return doorledger.Errorf(doorledger.ENOTFOUND, "Building not found.")
	}
	return nil
}

// beginManaging begins a write to a building the caller must manage, as
// checkManage says (ENOTFOUND without a grant, EFORBIDDEN for a role that
// only reads it); the caller commits or rolls it back as after BeginTx.
func (db *DB) beginManaging(ctx context.Context, buildingID int64) (*Tx, error) {
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkManage(ctx, tx, callerFrom(ctx), buildingID); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// checkManage is checkBuilding plus the manager role: a board member or
// installer who sees the building gets EFORBIDDEN.
func checkManage(ctx context.Context, q querier, c caller, buildingID int64) error {
	if err := checkBuilding(ctx, q, c, buildingID); err != nil {
		return err
	}
	if r := c.role(); r != doorledger.RoleAdmin && r != doorledger.RoleManager {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Only the building's managers may do that.")
	}
	return nil
}

// audit appends an entry to the journal inside tx, at the transaction's time.
// detail is marshalled to JSON (nil for none).
func (tx *Tx) audit(ctx context.Context, action string, buildingID int64, objectType string, objectID int64, detail any) error {
	c := callerFrom(ctx)
	return tx.auditAs(ctx, c.id(), c.label(), action, buildingID, objectType, objectID, detail)
}

// auditAs appends an entry with an explicit actor (a signer, a device, a failed sign-in).
func (tx *Tx) auditAs(ctx context.Context, actorID int64, actor, action string, buildingID int64, objectType string, objectID int64, detail any) error {
	d := "{}"
	if detail != nil {
		buf, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		d = string(buf)
	}
	const insert = `INSERT INTO audit_entries (at, actor_id, actor, action, building_id, object_type, object_id, ip, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	args := []any{tx.now, actorID, actor, action, buildingID, objectType, objectID, doorledger.IPFromContext(ctx), d}
	if _, ok := doorledger.EventTypeForAction(action); !ok {
		_, err := tx.Exec(ctx, insert, args...)
		return err
	}
	// Outbound events are made from the journal, in the entry's transaction (webhook.go).
	var entryID int64
	if err := tx.QueryRow(ctx, insert+` RETURNING id`, args...).Scan(&entryID); err != nil {
		return err
	}
	return tx.queueJournalEvent(ctx, entryID, actor, action, buildingID, objectType, objectID, d)
}

// notFound maps pgx.ErrNoRows to a coded ENOTFOUND with msg.
func notFound(err error, msg string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return doorledger.Errorf(doorledger.ENOTFOUND, "%s", msg)
	}
	return err
}
