package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// BuildingService implements doorledger.BuildingService.
type BuildingService struct {
	db *DB
	// BaseURL is the portal's public address, for the links in the mail sent
	// when a signer is removed ("" leaves them as paths).
	BaseURL string
}

// NewBuildingService returns the SQLite building service.
func NewBuildingService(db *DB) *BuildingService { return &BuildingService{db: db} }

var _ doorledger.BuildingService = (*BuildingService)(nil)

func (s *BuildingService) FindBuildingByID(ctx context.Context, id int64) (*doorledger.Building, error) {
	if err := checkBuilding(ctx, s.db.read, callerFrom(ctx), id); err != nil {
		return nil, err
	}
	return findBuilding(ctx, s.db.read, id)
}

// findBuilding loads a building and its active roster, without access checks.
func findBuilding(ctx context.Context, q querier, id int64) (*doorledger.Building, error) {
	var b doorledger.Building
	var created string
	err := q.QueryRowContext(ctx, `SELECT id, name, address, timezone, consent_months, created_at FROM buildings WHERE id = ?`, id).
		Scan(&b.ID, &b.Name, &b.Address, &b.Timezone, &b.ConsentMonths, &created)
	if err != nil {
		return nil, notFound(err, "Building not found.")
	}
	b.CreatedAt = parseTime(created)
	rows, err := q.QueryContext(ctx, `SELECT id, building_id, name, title, email, active FROM signers WHERE building_id = ? AND active = 1 ORDER BY name, id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var sg doorledger.Signer
		if err := rows.Scan(&sg.ID, &sg.BuildingID, &sg.Name, &sg.Title, &sg.Email, &sg.Active); err != nil {
			return nil, err
		}
		b.Signers = append(b.Signers, &sg)
	}
	return &b, rows.Err()
}

func (s *BuildingService) FindBuildings(ctx context.Context) ([]*doorledger.Building, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	query, args := `SELECT id, name, address, timezone, consent_months, created_at FROM buildings ORDER BY name, id`, []any{}
	if !c.allBuildings() {
		query = `SELECT b.id, b.name, b.address, b.timezone, b.consent_months, b.created_at FROM buildings b
			JOIN grants g ON g.building_id = b.id AND g.user_id = ? ORDER BY b.name, b.id`
		args = append(args, c.user.ID)
	}
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.Building
	for rows.Next() {
		var b doorledger.Building
		var created string
		if err := rows.Scan(&b.ID, &b.Name, &b.Address, &b.Timezone, &b.ConsentMonths, &created); err != nil {
			return nil, err
		}
		b.CreatedAt = parseTime(created)
		list = append(list, &b)
	}
	return list, rows.Err()
}

func (s *BuildingService) CreateBuilding(ctx context.Context, in doorledger.BuildingInput) (*doorledger.Building, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO buildings (name, address, timezone, consent_months, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		in.Name, in.Address, in.Timezone, in.ConsentMonths, formatTime(tx.now), formatTime(tx.now))
	if err != nil {
		return nil, fmt.Errorf("insert building: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := tx.audit(ctx, "building.create", id, "building", id, in); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &doorledger.Building{ID: id, Name: in.Name, Address: in.Address, Timezone: in.Timezone, ConsentMonths: in.ConsentMonths, CreatedAt: tx.now}, nil
}

func (s *BuildingService) UpdateBuilding(ctx context.Context, id int64, in doorledger.BuildingInput) (*doorledger.Building, error) {
	tx, err := s.db.beginManaging(ctx, id)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE buildings SET name = ?, address = ?, timezone = ?, consent_months = ?, updated_at = ? WHERE id = ?`,
		in.Name, in.Address, in.Timezone, in.ConsentMonths, formatTime(tx.now), id); err != nil {
		return nil, fmt.Errorf("update building %d: %w", id, err)
	}
	if err := tx.audit(ctx, "building.update", id, "building", id, in); err != nil {
		return nil, err
	}
	b, err := findBuilding(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return b, tx.Commit()
}

func (s *BuildingService) AddSigner(ctx context.Context, buildingID int64, in doorledger.SignerInput) (*doorledger.Signer, error) {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO signers (building_id, name, title, email, created_at) VALUES (?, ?, ?, ?, ?)`,
		buildingID, in.Name, in.Title, in.Email, formatTime(tx.now))
	if isUniqueViolation(err) {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "That address is on the roster already.",
			Fields: map[string]string{"signer_email": "That address is on the roster already."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert signer: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := tx.audit(ctx, "signer.add", buildingID, "signer", id, in); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &doorledger.Signer{ID: id, BuildingID: buildingID, Name: in.Name, Title: in.Title, Email: in.Email, Active: true}, nil
}

func (s *BuildingService) RemoveSigner(ctx context.Context, buildingID, signerID int64) error {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE signers SET active = 0, removed_at = ? WHERE id = ? AND building_id = ? AND active = 1`, formatTime(tx.now), signerID, buildingID)
	if err != nil {
		return err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "Signer not found.")
	}
	// Their pending requests can no longer be signed; their signed consents stay.
	withdrawn, signed, err := tx.withdrawSignerRequests(ctx, strings.TrimRight(s.BaseURL, "/"), buildingID, signerID)
	if err != nil {
		return err
	}
	var detail any
	if len(withdrawn)+len(signed) > 0 {
		detail = map[string]any{"requests_withdrawn": withdrawn, "signed_consents": signed}
	}
	if err := tx.audit(ctx, "signer.remove", buildingID, "signer", signerID, detail); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *BuildingService) FindGrants(ctx context.Context, buildingID int64) ([]*doorledger.Grant, error) {
	if err := checkManage(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `
		SELECT g.created_at, u.id, u.email, u.name, u.role, u.company, u.disabled, u.created_at
		FROM grants g JOIN users u ON u.id = g.user_id WHERE g.building_id = ? ORDER BY u.role, u.name`, buildingID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.Grant
	for rows.Next() {
		g := doorledger.Grant{BuildingID: buildingID, User: &doorledger.User{}}
		var gCreated, uCreated string
		if err := rows.Scan(&gCreated, &g.User.ID, &g.User.Email, &g.User.Name, &g.User.Role, &g.User.Company, &g.User.Disabled, &uCreated); err != nil {
			return nil, err
		}
		g.CreatedAt, g.User.CreatedAt = parseTime(gCreated), parseTime(uCreated)
		list = append(list, &g)
	}
	return list, rows.Err()
}

func (s *BuildingService) GrantAccess(ctx context.Context, buildingID, userID int64) error {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := checkBuilding(ctx, tx, c, buildingID); err != nil {
		return err
	}
	var role string
	if err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = ?`, userID).Scan(&role); err != nil {
		return notFound(err, "User not found.")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO grants (building_id, user_id, created_at) VALUES (?, ?, ?)`, buildingID, userID, formatTime(tx.now)); isUniqueViolation(err) {
		return doorledger.Errorf(doorledger.ECONFLICT, "That user has access already.")
	} else if err != nil {
		return err
	}
	if err := tx.audit(ctx, "building.grant", buildingID, "user", userID, map[string]string{"role": role}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *BuildingService) RevokeAccess(ctx context.Context, buildingID, userID int64) error {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE building_id = ? AND user_id = ?`, buildingID, userID)
	if err != nil {
		return err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "Grant not found.")
	}
	if err := tx.audit(ctx, "building.revoke_access", buildingID, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit()
}
