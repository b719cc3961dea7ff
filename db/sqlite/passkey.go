package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// Passkeys of SecondFactorService: the browser proves them (package web
// runs the WebAuthn ceremonies); storage keeps them, counts their uses and
// failures in the second factor's throttle, and journals each.

const passkeyColumns = `id, user_id, name, credential_id, data, created_at, last_used_at`

func scanPasskey(row interface{ Scan(...any) error }) (*doorledger.Passkey, error) {
	var p doorledger.Passkey
	var created string
	var used sql.NullString
	if err := row.Scan(&p.ID, &p.UserID, &p.Name, &p.CredentialID, &p.Data, &created, &used); err != nil {
		return nil, err
	}
	p.CreatedAt = parseTime(created)
	if used.Valid {
		p.LastUsedAt = parseTime(used.String)
	}
	return &p, nil
}

func (s *SecondFactorService) AddPasskey(ctx context.Context, name string, credentialID, data []byte) (*doorledger.Passkey, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	v := doorledger.Validation{}
	doorledger.ValidatePasskeyName(v, "name", name)
	if len(credentialID) == 0 || len(data) == 0 {
		v.Add("credential", "The browser gave no passkey. Try again.")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	p, err := scanPasskey(tx.QueryRowContext(ctx, `
		INSERT INTO passkeys (user_id, name, credential_id, data, created_at) VALUES (?, ?, ?, ?, ?)
		RETURNING `+passkeyColumns, u.ID, name, credentialID, data, formatTime(tx.now)))
	if isUniqueViolation(err) {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "That passkey is registered already.",
			Fields: map[string]string{"name": "That passkey is registered already."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert passkey: %w", err)
	}
	if err := tx.auditAs(ctx, u.ID, u.Email, "user.2fa_enrolled", 0, "user", u.ID,
		map[string]any{"factor": doorledger.FactorPasskey, "name": name}); err != nil {
		return nil, err
	}
	return p, tx.Commit()
}

func (s *SecondFactorService) Passkeys(ctx context.Context, userID int64) ([]*doorledger.Passkey, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if !c.allBuildings() && c.user.ID != userID {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	return queryAll(ctx, s.db.read, scanPasskey, `SELECT `+passkeyColumns+` FROM passkeys WHERE user_id = ? ORDER BY id`, userID)
}

func (s *SecondFactorService) FindPasskey(ctx context.Context, credentialID []byte) (*doorledger.Passkey, *doorledger.User, error) {
	p, err := scanPasskey(s.db.read.QueryRowContext(ctx, `SELECT `+passkeyColumns+` FROM passkeys WHERE credential_id = ?`, credentialID))
	if err != nil {
		return nil, nil, notFound(err, "That passkey is not registered here.")
	}
	u, err := scanUser(s.db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ? AND disabled = 0`, p.UserID))
	if err != nil {
		return nil, nil, notFound(err, "That passkey is not registered here.")
	}
	return p, u, nil
}

func (s *SecondFactorService) PasskeyUsed(ctx context.Context, passkeyID int64, data []byte, ip string) error {
	var userID int64
	var email, name string
	if err := s.db.read.QueryRowContext(ctx, `SELECT p.user_id, u.email, p.name FROM passkeys p JOIN users u ON u.id = p.user_id WHERE p.id = ?`,
		passkeyID).Scan(&userID, &email, &name); err != nil {
		return notFound(err, "That passkey is not registered here.")
	}
	return s.attempt(ctx, userID, email, ip, func(tx *Tx) (bool, error) {
		if _, err := tx.ExecContext(ctx, `UPDATE passkeys SET data = ?, last_used_at = ? WHERE id = ?`, data, formatTime(tx.now), passkeyID); err != nil {
			return false, err
		}
		return true, tx.auditAs(ctx, userID, email, "user.2fa_used", 0, "user", userID,
			map[string]any{"factor": doorledger.FactorPasskey, "name": name})
	})
}

func (s *SecondFactorService) PasskeyFailed(ctx context.Context, userID int64, ip string) error {
	var email string
	if err := s.db.read.QueryRowContext(ctx, `SELECT email FROM users WHERE id = ?`, userID).Scan(&email); err != nil {
		return notFound(err, "User not found.")
	}
	return s.attempt(ctx, userID, email, ip, func(*Tx) (bool, error) { return false, nil })
}
