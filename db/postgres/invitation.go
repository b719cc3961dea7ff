package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/passhash"
	"github.com/jackc/pgx/v5"
)

// InvitationService implements doorledger.InvitationService.
type InvitationService struct {
	db      *DB
	BaseURL string
}

// NewInvitationService returns the PostgreSQL invitation service.
func NewInvitationService(db *DB, baseURL string) *InvitationService {
	return &InvitationService{db: db, BaseURL: strings.TrimRight(baseURL, "/")}
}

var _ doorledger.InvitationService = (*InvitationService)(nil)

var badInvitation = doorledger.Errorf(doorledger.ENOTFOUND, "This invitation link is not valid: it was already used, withdrawn or expired. Ask the building's manager for a new one.")

const invitationColumns = `id, building_id, email, name, company, invited_by, created_at, expires_at, accepted_at, withdrawn_at`

func scanInvitation(row interface{ Scan(...any) error }) (*doorledger.Invitation, error) {
	var i doorledger.Invitation
	err := row.Scan(&i.ID, &i.BuildingID, &i.Email, &i.Name, &i.Company, &i.InvitedBy,
		at(&i.CreatedAt), at(&i.ExpiresAt), at(&i.AcceptedAt), at(&i.Withdrawn))
	if err != nil {
		return nil, err
	}
	return &i, nil
}

func (s *InvitationService) Invite(ctx context.Context, buildingID int64, email, name, company string) (*doorledger.Invitation, error) {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	email, name, company = strings.ToLower(strings.TrimSpace(email)), strings.TrimSpace(name), strings.TrimSpace(company)
	v := doorledger.Validation{}
	doorledger.ValidateEmail(v, "invite_email", email)
	if name == "" {
		v.Add("invite_name", "Enter the installer's name.")
	} else if len(name) > 200 {
		v.Add("invite_name", "Keep the name under 200 characters.")
	}
	doorledger.ValidateLine(v, "invite_name", name)
	if company == "" {
		v.Add("invite_company", "Enter the installer's company.")
	} else if len(company) > 200 {
		v.Add("invite_company", "Keep the company under 200 characters.")
	}
	doorledger.ValidateLine(v, "invite_company", company)
	var role string
	switch err := tx.QueryRow(ctx, `SELECT role FROM users WHERE email = $1`, email).Scan(&role); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, err
	case role != string(doorledger.RoleInstaller):
		v.Add("invite_email", "This address belongs to an account that is not an installer's.")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	token, hash := newToken()
	b, err := findBuilding(ctx, tx, buildingID)
	if err != nil {
		return nil, err
	}
	inv, err := scanInvitation(tx.QueryRow(ctx, `INSERT INTO invitations (building_id, email, name, company, token_hash, invited_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+invitationColumns,
		buildingID, email, name, company, hash, callerFrom(ctx).id(), tx.now, tx.now.Add(doorledger.InvitationTTL)))
	if err != nil {
		return nil, fmt.Errorf("insert invitation: %w", err)
	}
	body := fmt.Sprintf(`Hello %s,

%s invites you to submit delivery-device consent requests for %s (%s) on Doorledger.

Accept the invitation (the link works once, for 7 days):

  %s/invite/%s

— Doorledger
`, name, callerFrom(ctx).label(), b.Name, b.Address, s.BaseURL, token)
	if err := tx.queueMail(ctx, &doorledger.Message{To: email, Subject: "Invitation to install at " + b.Name, Body: body, Kind: "invitation", BuildingID: buildingID}, ""); err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "invitation.create", buildingID, "invitation", inv.ID, map[string]string{"email": email, "company": company}); err != nil {
		return nil, err
	}
	return inv, tx.Commit(ctx)
}

func (s *InvitationService) FindInvitations(ctx context.Context, buildingID int64) ([]*doorledger.Invitation, error) {
	if err := checkManage(ctx, s.db.pool, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db.pool, scanInvitation, `SELECT `+invitationColumns+` FROM invitations WHERE building_id = $1 ORDER BY id DESC`, buildingID)
}

func (s *InvitationService) WithdrawInvitation(ctx context.Context, buildingID, id int64) error {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tag, err := tx.Exec(ctx, `UPDATE invitations SET withdrawn_at = $1 WHERE id = $2 AND building_id = $3 AND accepted_at IS NULL AND withdrawn_at IS NULL`,
		tx.now, id, buildingID)
	if err != nil {
		return err
	} else if tag.RowsAffected() == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "No pending invitation with that id.")
	}
	if err := tx.audit(ctx, "invitation.withdraw", buildingID, "invitation", id, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// liveInvitation resolves a pending invitation by its token; lock (in a
// transaction) holds its row until the transaction ends, so that it is
// accepted once however many instances are asked at once.
func liveInvitation(ctx context.Context, q querier, token string, now time.Time, lock bool) (*doorledger.Invitation, error) {
	query := `SELECT ` + invitationColumns + ` FROM invitations
		WHERE token_hash = $1 AND accepted_at IS NULL AND withdrawn_at IS NULL AND expires_at > $2`
	if lock {
		query += ` FOR UPDATE`
	}
	inv, err := scanInvitation(q.QueryRow(ctx, query, HashToken(token), now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, badInvitation
	}
	return inv, err
}

func (s *InvitationService) OpenInvitation(ctx context.Context, token string) (*doorledger.Invitation, *doorledger.Building, bool, error) {
	inv, err := liveInvitation(ctx, s.db.pool, token, s.db.now(), false)
	if err != nil {
		return nil, nil, false, err
	}
	b, err := findBuilding(ctx, s.db.pool, inv.BuildingID)
	if err != nil {
		return nil, nil, false, err
	}
	var exists bool
	if err := s.db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)`, inv.Email).Scan(&exists); err != nil {
		return nil, nil, false, err
	}
	return inv, b, exists, nil
}

func (s *InvitationService) AcceptInvitation(ctx context.Context, token, password string) (*doorledger.User, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// FOR UPDATE: a second acceptance at once waits, then finds it accepted.
	inv, err := liveInvitation(ctx, tx, token, tx.now, true)
	if err != nil {
		return nil, err
	}
	var u *doorledger.User
	var hash string
	var x doorledger.User
	switch err := tx.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE email = $1`, inv.Email).
		Scan(&x.ID, &x.Email, &x.Name, &x.Role, &x.Company, &x.Disabled, at(&x.CreatedAt), &hash); {
	case errors.Is(err, pgx.ErrNoRows):
		// A new installer sets their password here.
		n := doorledger.NewUser{Email: inv.Email, Name: inv.Name, Role: doorledger.RoleInstaller, Company: inv.Company, Password: password}
		if err := n.Validate(); err != nil {
			return nil, err
		}
		h, err := passhash.Hash(password, s.db.PasswordCost)
		if err != nil {
			return nil, err
		}
		if u, err = createUser(doorledger.NewSystemContext(ctx, "invitation "+strconv.FormatInt(inv.ID, 10)), tx, n, h); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		// An installer with an account proves it with their password.
		if x.Role != doorledger.RoleInstaller || x.Disabled || !passhash.Matches(hash, password) {
			return nil, &doorledger.Error{Code: doorledger.EINVALID, Message: "That is not the password of your installer account.",
				Fields: map[string]string{"password": "That is not the password of your installer account."}}
		}
		u = &x
	}
	if _, err := tx.Exec(ctx, `INSERT INTO grants (building_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		inv.BuildingID, u.ID, tx.now); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE invitations SET accepted_at = $1, user_id = $2 WHERE id = $3`, tx.now, u.ID, inv.ID); err != nil {
		return nil, err
	}
	if err := tx.auditAs(ctx, u.ID, u.Email, "invitation.accept", inv.BuildingID, "invitation", inv.ID, nil); err != nil {
		return nil, err
	}
	return u, tx.Commit(ctx)
}
