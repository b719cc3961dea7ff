package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/passhash"
)

// InvitationService implements doorledger.InvitationService.
type InvitationService struct {
	db      *DB
	BaseURL string
}

// NewInvitationService returns the SQLite invitation service.
func NewInvitationService(db *DB, baseURL string) *InvitationService {
	return &InvitationService{db: db, BaseURL: strings.TrimRight(baseURL, "/")}
}

var _ doorledger.InvitationService = (*InvitationService)(nil)

var badInvitation = doorledger.Errorf(doorledger.ENOTFOUND, "This invitation link is not valid: it was already used, withdrawn or expired. Ask the building's manager for a new one.")

const invitationColumns = `id, building_id, email, name, company, invited_by, created_at, expires_at, accepted_at, withdrawn_at`

func scanInvitation(row interface{ Scan(...any) error }) (*doorledger.Invitation, error) {
	var i doorledger.Invitation
	var created, expires string
	err := row.Scan(&i.ID, &i.BuildingID, &i.Email, &i.Name, &i.Company, &i.InvitedBy, &created, &expires, nullTime{&i.AcceptedAt}, nullTime{&i.Withdrawn})
	if err != nil {
		return nil, err
	}
	i.CreatedAt, i.ExpiresAt = parseTime(created), parseTime(expires)
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
	switch err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE email = ?`, email).Scan(&role); {
	case err == sql.ErrNoRows:
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
	res, err := tx.ExecContext(ctx, `INSERT INTO invitations (building_id, email, name, company, token_hash, invited_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, buildingID, email, name, company, hash, callerFrom(ctx).id(), formatTime(tx.now), formatTime(tx.now.Add(doorledger.InvitationTTL)))
	if err != nil {
		return nil, fmt.Errorf("insert invitation: %w", err)
	}
	id, _ := res.LastInsertId()
	body := fmt.Sprintf(`Hello %s,

%s invites you to submit delivery-device consent requests for %s (%s) on Doorledger.

Accept the invitation (the link works once, for 7 days):

  %s/invite/%s

— Doorledger
`, name, callerFrom(ctx).label(), b.Name, b.Address, s.BaseURL, token)
	if err := tx.queueMail(ctx, &doorledger.Message{To: email, Subject: "Invitation to install at " + b.Name, Body: body, Kind: "invitation", BuildingID: buildingID}, ""); err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "invitation.create", buildingID, "invitation", id, map[string]string{"email": email, "company": company}); err != nil {
		return nil, err
	}
	inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	return inv, tx.Commit()
}

func (s *InvitationService) FindInvitations(ctx context.Context, buildingID int64) ([]*doorledger.Invitation, error) {
	if err := checkManage(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE building_id = ? ORDER BY id DESC`, buildingID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.Invitation
	for rows.Next() {
		i, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, i)
	}
	return list, rows.Err()
}

func (s *InvitationService) WithdrawInvitation(ctx context.Context, buildingID, id int64) error {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE invitations SET withdrawn_at = ? WHERE id = ? AND building_id = ? AND accepted_at IS NULL AND withdrawn_at IS NULL`,
		formatTime(tx.now), id, buildingID)
	if err != nil {
		return err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "No pending invitation with that id.")
	}
	if err := tx.audit(ctx, "invitation.withdraw", buildingID, "invitation", id, nil); err != nil {
		return err
	}
	return tx.Commit()
}

// liveInvitation resolves a pending invitation by its token.
func liveInvitation(ctx context.Context, q querier, token string, now string) (*doorledger.Invitation, error) {
	inv, err := scanInvitation(q.QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE token_hash = ? AND accepted_at IS NULL AND withdrawn_at IS NULL AND expires_at > ?`, HashToken(token), now))
	if err == sql.ErrNoRows {
		return nil, badInvitation
	}
	return inv, err
}

func (s *InvitationService) OpenInvitation(ctx context.Context, token string) (*doorledger.Invitation, *doorledger.Building, bool, error) {
	inv, err := liveInvitation(ctx, s.db.read, token, formatTime(s.db.Now()))
	if err != nil {
		return nil, nil, false, err
	}
	b, err := findBuilding(ctx, s.db.read, inv.BuildingID)
	if err != nil {
		return nil, nil, false, err
	}
	var n int
	if err := s.db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE email = ?`, inv.Email).Scan(&n); err != nil {
		return nil, nil, false, err
	}
	return inv, b, n > 0, nil
}

func (s *InvitationService) AcceptInvitation(ctx context.Context, token, password string) (*doorledger.User, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	inv, err := liveInvitation(ctx, tx, token, formatTime(tx.now))
	if err != nil {
		return nil, err
	}
	var u *doorledger.User
	var hash string
	row := tx.QueryRowContext(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE email = ?`, inv.Email)
	var x doorledger.User
	var created string
	switch err := row.Scan(&x.ID, &x.Email, &x.Name, &x.Role, &x.Company, &x.Disabled, &created, &hash); {
	case err == sql.ErrNoRows:
		// A new installer sets their password here.
		n := doorledger.NewUser{Email: inv.Email, Name: inv.Name, Role: doorledger.RoleInstaller, Company: inv.Company, Password: password}
		if err := n.Validate(); err != nil {
			return nil, err
		}
		h, err := passhash.Hash(password, s.db.PasswordCost)
		if err != nil {
			return nil, err
		}
		if u, err = createUser(doorledger.NewSystemContext(ctx, "invitation "+itoa(inv.ID)), tx, n, h); err != nil {
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
		x.CreatedAt = parseTime(created)
		u = &x
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO grants (building_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		inv.BuildingID, u.ID, formatTime(tx.now)); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_at = ?, user_id = ? WHERE id = ?`, formatTime(tx.now), u.ID, inv.ID); err != nil {
		return nil, err
	}
	if err := tx.auditAs(ctx, u.ID, u.Email, "invitation.accept", inv.BuildingID, "invitation", inv.ID, nil); err != nil {
		return nil, err
	}
	return u, tx.Commit()
}
