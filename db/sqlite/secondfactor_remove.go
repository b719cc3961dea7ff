package sqlite

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// A user removes their own passkeys and authenticator app; the last second
// factor of a role that requires one stays (doorledger.KeepRequiredFactor).

func (s *SecondFactorService) RemovePasskey(ctx context.Context, passkeyID int64) error {
	return s.removeFactor(ctx, func(tx *Tx, u *doorledger.User) (map[string]any, error) {
		var name string
		if err := tx.QueryRowContext(ctx, `DELETE FROM passkeys WHERE id = ? AND user_id = ? RETURNING name`, passkeyID, u.ID).Scan(&name); err != nil {
			return nil, notFound(err, "Passkey not found.")
		}
		return map[string]any{"factor": doorledger.FactorPasskey, "name": name}, nil
	})
}

func (s *SecondFactorService) RemoveTOTP(ctx context.Context) error {
	return s.removeFactor(ctx, func(tx *Tx, u *doorledger.User) (map[string]any, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM user_totp WHERE user_id = ? AND confirmed_at IS NOT NULL`, u.ID)
		if err != nil {
			return nil, fmt.Errorf("remove totp: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n == 0 {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "You have no authenticator app set up.")
		}
		return map[string]any{"factor": doorledger.FactorTOTP}, nil
	})
}

// removeFactor removes one of the signed-in caller's second factors in one
// transaction: remove deletes it and says what to journal, then
// afterFactorRemoved keeps the policy.
func (s *SecondFactorService) removeFactor(ctx context.Context, remove func(tx *Tx, u *doorledger.User) (map[string]any, error)) error {
	u := callerFrom(ctx).user
	if u == nil {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Please sign in.")
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	detail, err := remove(tx, u)
	if err == nil {
		err = tx.afterFactorRemoved(ctx, u)
	}
	if err == nil {
		err = tx.audit(ctx, "user.2fa_removed", 0, "user", u.ID, detail)
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

// afterFactorRemoved refuses the removal when u is left with no second
// factor and their role requires one; with none left otherwise, their
// recovery codes go too.
func (tx *Tx) afterFactorRemoved(ctx context.Context, u *doorledger.User) error {
	var required, left bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM second_factor_policy WHERE role = ?),
		EXISTS (SELECT 1 FROM user_totp WHERE user_id = ? AND confirmed_at IS NOT NULL) OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?)`,
		u.Role, u.ID, u.ID).Scan(&required, &left); err != nil {
		return fmt.Errorf("second factors left: %w", err)
	}
	if err := doorledger.KeepRequiredFactor(required, left); err != nil || left {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, u.ID); err != nil {
		return fmt.Errorf("remove recovery codes: %w", err)
	}
	return nil
}
