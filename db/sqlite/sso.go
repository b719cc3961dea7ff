package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// SSOService implements doorledger.SSOService on SQLite (migrations/125):
// the domains allowed to sign up by single sign-on, the states already used,
// and the sign-in itself, counted with the password sign-ins
// (login_attempts), so one throttle holds both.
type SSOService struct{ db *DB }

// NewSSOService returns the SQLite SSO service.
func NewSSOService(db *DB) *SSOService { return &SSOService{db: db} }

var _ doorledger.SSOService = (*SSOService)(nil)

func scanSSODomain(row interface{ Scan(...any) error }) (*doorledger.SSODomain, error) {
	var d doorledger.SSODomain
	if err := row.Scan(&d.Domain, &d.Role, nullTime{&d.CreatedAt}, &d.CreatedBy); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *SSOService) SSODomains(ctx context.Context) ([]*doorledger.SSODomain, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db.read, scanSSODomain, `SELECT domain, role, created_at, created_by FROM sso_domains ORDER BY domain`)
}

func (s *SSOService) AllowSSODomain(ctx context.Context, d doorledger.SSODomain) (*doorledger.SSODomain, error) {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	d.CreatedAt, d.CreatedBy = tx.now.UTC(), c.label()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sso_domains (domain, role, created_at, created_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (domain) DO UPDATE SET role = excluded.role, created_at = excluded.created_at, created_by = excluded.created_by`,
		d.Domain, d.Role, formatTime(tx.now), d.CreatedBy); err != nil {
		return nil, fmt.Errorf("allow sso domain: %w", err)
	}
	if err := tx.audit(ctx, "sso.domain_allow", 0, "", 0, map[string]any{"domain": d.Domain, "role": d.Role}); err != nil {
		return nil, err
	}
	return &d, tx.Commit()
}

func (s *SSOService) RemoveSSODomain(ctx context.Context, domain string) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	domain = strings.ToLower(strings.TrimSpace(domain))
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM sso_domains WHERE domain = ?`, domain)
	if err != nil {
		return fmt.Errorf("remove sso domain: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "That domain is not allowed for single sign-on.")
	}
	if err := tx.audit(ctx, "sso.domain_remove", 0, "", 0, map[string]any{"domain": domain}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SSOService) UseSSOState(ctx context.Context, state string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM sso_states WHERE expires_at < ?`, formatTime(tx.now)); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO sso_states (state_hash, used_at, expires_at) VALUES (?, ?, ?)`,
		HashToken(state), formatTime(tx.now), formatTime(tx.now.Add(doorledger.SSOStateLifetime)))
	if isUniqueViolation(err) {
		return doorledger.Errorf(doorledger.ECONFLICT, "This sign-in was used already.")
	} else if err != nil {
		return fmt.Errorf("use sso state: %w", err)
	}
	return tx.Commit()
}

// ssoThrottle counts SSO sign-ins with the password ones: one table, one limit.
func (s *SSOService) ssoThrottle() throttle {
	return throttle{table: "login_attempts", account: "email", accountLimit: s.db.LoginAccountLimit,
		ipLimit: s.db.LoginIPLimit, message: "Too many failed sign-ins. Try again in %s."}
}

func (s *SSOService) CheckSSOThrottle(ctx context.Context, ip string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// No address yet: the IP's failures alone (NULL matches no account's).
	return tx.checkThrottle(ctx, s.ssoThrottle(), nil, ip, tx.now.UTC())
}

func (s *SSOService) SSOFailed(ctx context.Context, issuer, email, ip, reason string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.ssoAttempt(ctx, issuer, strings.ToLower(email), ip, 0, reason); err != nil {
		return err
	}
	return tx.Commit()
}

// ssoAttempt records a sign-in by SSO in login_attempts and the journal:
// a success when reason is "", else a failure with its reason.
func (tx *Tx) ssoAttempt(ctx context.Context, issuer, email, ip string, userID int64, reason string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO login_attempts (at, email, ip, user_id, ok) VALUES (?, ?, ?, ?, ?)`,
		formatTime(tx.now), email, ip, userID, reason == ""); err != nil {
		return fmt.Errorf("record sso sign-in: %w", err)
	}
	if reason == "" {
		return tx.auditAs(ctx, userID, email, "user.login_sso", 0, "user", userID, map[string]any{"issuer": issuer})
	}
	actor := email
	if actor == "" {
		actor = "anonymous"
	}
	return tx.auditAs(ctx, userID, actor, "user.login_sso_failed", 0, "user", userID, map[string]any{"issuer": issuer, "reason": reason})
}

func (s *SSOService) SSOSignIn(ctx context.Context, id doorledger.SSOIdentity, ip string) (*doorledger.User, error) {
	id.Email = strings.ToLower(strings.TrimSpace(id.Email))
	if doorledger.EmailDomain(id.Email) == "" {
		return nil, doorledger.Errorf(doorledger.EUNAUTHORIZED, "The identity provider gave no email address.")
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, id.Email))
	if err != nil && doorledger.ErrorCode(notFound(err, "")) != doorledger.ENOTFOUND {
		return nil, err
	}
	var uid int64
	if u != nil {
		uid = u.ID
	}
	if err := tx.checkThrottle(ctx, s.ssoThrottle(), id.Email, ip, tx.now.UTC()); err != nil {
		if doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			return nil, err
		}
		if aerr := tx.auditAs(ctx, uid, id.Email, "user.login_throttled", 0, "user", uid, nil); aerr != nil {
			return nil, aerr
		}
		if cerr := tx.Commit(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	refuse := func(reason string) (*doorledger.User, error) {
		if err := tx.ssoAttempt(ctx, id.Issuer, id.Email, ip, uid, reason); err != nil {
			return nil, err
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		return nil, doorledger.SSORefusal(reason, id)
	}
	switch {
	case !id.EmailVerified:
		return refuse(doorledger.SSOReasonUnverified)
	case u == nil:
		domain := doorledger.EmailDomain(id.Email)
		var role doorledger.Role
		err := tx.QueryRowContext(ctx, `SELECT role FROM sso_domains WHERE domain = ?`, domain).Scan(&role)
		if doorledger.ErrorCode(notFound(err, "")) == doorledger.ENOTFOUND {
			return refuse(doorledger.SSOReasonUnknown)
		} else if err != nil {
			return nil, err
		}
		// No password: the account signs in by SSO until an admin sets one.
		res, err := tx.ExecContext(ctx, `INSERT INTO users (email, name, role, company, password_hash, created_at, updated_at)
			VALUES (?, ?, ?, '', '', ?, ?)`, id.Email, doorledger.SSOName(id), role, formatTime(tx.now), formatTime(tx.now))
		if err != nil {
			return nil, fmt.Errorf("create sso user: %w", err)
		}
		uid, _ = res.LastInsertId()
		u = &doorledger.User{ID: uid, Email: id.Email, Name: doorledger.SSOName(id), Role: role, CreatedAt: tx.now.UTC()}
		if err := tx.auditAs(ctx, uid, id.Email, "user.create_sso", 0, "user", uid,
			map[string]any{"issuer": id.Issuer, "email": id.Email, "role": role, "domain": domain}); err != nil {
			return nil, err
		}
	case u.Disabled:
		return refuse(doorledger.SSOReasonDisabled)
	}
	if err := tx.ssoAttempt(ctx, id.Issuer, id.Email, ip, uid, ""); err != nil {
		return nil, err
	}
	return u, tx.Commit()
}
