package postgres

import (
	"context"
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
	if err := row.Scan(&p.ID, &p.UserID, &p.Name, &p.CredentialID, &p.Data, at(&p.CreatedAt), at(&p.LastUsedAt)); err != nil {
		return nil, err
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
	// A credential registered already inserts nothing (no row): a unique
	// violation would abort the transaction.
	p, err := scanPasskey(tx.QueryRow(ctx, `
		INSERT INTO passkeys (user_id, name, credential_id, data, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (credential_id) DO NOTHING
		RETURNING `+passkeyColumns, u.ID, name, credentialID, data, tx.now))
	if doorledger.ErrorCode(notFound(err, "")) == doorledger.ENOTFOUND {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "That passkey is registered already.",
			Fields: map[string]string{"name": "That passkey is registered already."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert passkey: %w", err)
	}
	if err := tx.auditAs(ctx, u.ID, u.Email, "user.2fa_enrolled", 0, "user", u.ID,
		map[string]any{"factor": doorledger.FactorPasskey, "name": name}); err != nil {
		return nil, err
	}
	return p, tx.Commit(ctx)
}

func (s *SecondFactorService) Passkeys(ctx context.Context, userID int64) ([]*doorledger.Passkey, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if !c.allBuildings() && c.user.ID != userID {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	return queryAll(ctx, s.db.pool, scanPasskey, `SELECT `+passkeyColumns+` FROM passkeys WHERE user_id = $1 ORDER BY id`, userID)
}

func (s *SecondFactorService) FindPasskey(ctx context.Context, credentialID []byte) (*doorledger.Passkey, *doorledger.User, error) {
	p, err := scanPasskey(s.db.pool.QueryRow(ctx, `SELECT `+passkeyColumns+` FROM passkeys WHERE credential_id = $1`, credentialID))
	if err != nil {
		return nil, nil, notFound(err, "That passkey is not registered here.")
	}
	u, err := scanUser(s.db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 AND NOT disabled`, p.UserID))
	if err != nil {
		return nil, nil, notFound(err, "That passkey is not registered here.")
	}
	return p, u, nil
}

func (s *SecondFactorService) PasskeyUsed(ctx context.Context, passkeyID int64, data []byte, ip string) error {
	var userID int64
	var email, name string
	if err := s.db.pool.QueryRow(ctx, `SELECT p.user_id, u.email, p.name FROM passkeys p JOIN users u ON u.id = p.user_id WHERE p.id = $1`,
		passkeyID).Scan(&userID, &email, &name); err != nil {
		return notFound(err, "That passkey is not registered here.")
	}
	return s.attempt(ctx, userID, email, ip, func(tx *Tx) (bool, error) {
		if _, err := tx.Exec(ctx, `UPDATE passkeys SET data = $1, last_used_at = $2 WHERE id = $3`, data, tx.now, passkeyID); err != nil {
			return false, err
		}
		return true, tx.auditAs(ctx, userID, email, "user.2fa_used", 0, "user", userID,
			map[string]any{"factor": doorledger.FactorPasskey, "name": name})
	})
}

func (s *SecondFactorService) PasskeyFailed(ctx context.Context, userID int64, ip string) error {
	var email string
	if err := s.db.pool.QueryRow(ctx, `SELECT email FROM users WHERE id = $1`, userID).Scan(&email); err != nil {
		return notFound(err, "User not found.")
	}
	return s.attempt(ctx, userID, email, ip, func(*Tx) (bool, error) { return false, nil })
}
