package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// BuildingService implements doorledger.BuildingService.
type BuildingService struct {
	db *DB
	// BaseURL is the portal's public address, for the links in the mail sent
	// when a signer is removed ("" leaves them as paths).
	BaseURL string
}

// NewBuildingService returns the PostgreSQL building service.
func NewBuildingService(db *DB) *BuildingService { return &BuildingService{db: db} }

var _ doorledger.BuildingService = (*BuildingService)(nil)

func (s *BuildingService) FindBuildingByID(ctx context.Context, id int64) (*doorledger.Building, error) {
	if err := checkBuilding(ctx, s.db.pool, callerFrom(ctx), id); err != nil {
		return nil, err
	}
	return findBuilding(ctx, s.db.pool, id)
}

const buildingColumns = `b.id, b.name, b.address, b.timezone, b.consent_months, b.created_at`

func scanBuilding(row interface{ Scan(...any) error }) (*doorledger.Building, error) {
	var b doorledger.Building
	err := row.Scan(&b.ID, &b.Name, &b.Address, &b.Timezone, &b.ConsentMonths, at(&b.CreatedAt))
	return &b, err
}

// findBuilding loads a building and its active roster, without access checks.
func findBuilding(ctx context.Context, q querier, id int64) (*doorledger.Building, error) {
	b, err := scanBuilding(q.QueryRow(ctx, `SELECT `+buildingColumns+` FROM buildings b WHERE b.id = $1`, id))
	if err != nil {
		return nil, notFound(err, "Building not found.")
	}
	rows, err := q.Query(ctx, `SELECT id, building_id, name, title, email, active FROM signers
		WHERE building_id = $1 AND active ORDER BY name COLLATE "C", id`, id)
	if err != nil {
		return nil, err
	}
	b.Signers, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*doorledger.Signer, error) {
		var sg doorledger.Signer
		err := row.Scan(&sg.ID, &sg.BuildingID, &sg.Name, &sg.Title, &sg.Email, &sg.Active)
		return &sg, err
	})
	return b, err
}

func (s *BuildingService) FindBuildings(ctx context.Context) ([]*doorledger.Building, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if c.allBuildings() {
		return queryAll(ctx, s.db.pool, scanBuilding, `SELECT `+buildingColumns+` FROM buildings b ORDER BY b.name COLLATE "C", b.id`)
	}
	return queryAll(ctx, s.db.pool, scanBuilding, `SELECT `+buildingColumns+` FROM buildings b
		JOIN grants g ON g.building_id = b.id AND g.user_id = $1 ORDER BY b.name COLLATE "C", b.id`, c.user.ID)
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
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO buildings (name, address, timezone, consent_months, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`, in.Name, in.Address, in.Timezone, in.ConsentMonths, tx.now).Scan(&id); err != nil {
		return nil, fmt.Errorf("insert building: %w", err)
	}
	if err := tx.audit(ctx, "building.create", id, "building", id, in); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE buildings SET name = $1, address = $2, timezone = $3, consent_months = $4, updated_at = $5 WHERE id = $6`,
		in.Name, in.Address, in.Timezone, in.ConsentMonths, tx.now, id); err != nil {
		return nil, fmt.Errorf("update building %d: %w", id, err)
	}
	if err := tx.audit(ctx, "building.update", id, "building", id, in); err != nil {
		return nil, err
	}
	b, err := findBuilding(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return b, tx.Commit(ctx)
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
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO signers (building_id, name, title, email, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (building_id, email) WHERE active DO NOTHING RETURNING id`,
		buildingID, in.Name, in.Title, in.Email, tx.now).Scan(&id)
	if doorledger.ErrorCode(notFound(err, "")) == doorledger.ENOTFOUND {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "That address is on the roster already.",
			Fields: map[string]string{"signer_email": "That address is on the roster already."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert signer: %w", err)
	}
	if err := tx.audit(ctx, "signer.add", buildingID, "signer", id, in); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
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
	tag, err := tx.Exec(ctx, `UPDATE signers SET active = false, removed_at = $1 WHERE id = $2 AND building_id = $3 AND active`, tx.now, signerID, buildingID)
	if err != nil {
		return err
	} else if tag.RowsAffected() == 0 {
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
	return tx.Commit(ctx)
}

func (s *BuildingService) FindGrants(ctx context.Context, buildingID int64) ([]*doorledger.Grant, error) {
	if err := checkManage(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db.pool, func(row interface{ Scan(...any) error }) (*doorledger.Grant, error) {
		g := doorledger.Grant{BuildingID: buildingID, User: &doorledger.User{}}
		err := row.Scan(at(&g.CreatedAt), &g.User.ID, &g.User.Email, &g.User.Name, &g.User.Role, &g.User.Company, &g.User.Disabled, at(&g.User.CreatedAt))
		return &g, err
	}, `SELECT g.created_at, u.id, u.email, u.name, u.role, u.company, u.disabled, u.created_at
		FROM grants g JOIN users u ON u.id = g.user_id WHERE g.building_id = $1 ORDER BY u.role COLLATE "C", u.name COLLATE "C"`, buildingID)
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
	if err := tx.QueryRow(ctx, `SELECT role FROM users WHERE id = $1`, userID).Scan(&role); err != nil {
		return notFound(err, "User not found.")
	}
	tag, err := tx.Exec(ctx, `INSERT INTO grants (building_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, buildingID, userID, tx.now)
	if err != nil {
		return err
	} else if tag.RowsAffected() == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "That user has access already.")
	}
	if err := tx.audit(ctx, "building.grant", buildingID, "user", userID, map[string]string{"role": role}); err != nil {
		return err
	}
	return tx.Commit(ctx)
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
	tag, err := tx.Exec(ctx, `DELETE FROM grants WHERE building_id = $1 AND user_id = $2`, buildingID, userID)
	if err != nil {
		return err
	} else if tag.RowsAffected() == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "Grant not found.")
	}
	if err := tx.audit(ctx, "building.revoke_access", buildingID, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
