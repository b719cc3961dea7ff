package postgres

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// A user removes their own passkeys and authenticator app, as in package
// sqlite; the last second factor of a role that requires one stays
// (doorledger.KeepRequiredFactor).

// removeFactor removes one of the signed-in caller's second factors in one
// transaction holding the lock of their factors (two removals of their last
// two take turns) and the policy's: remove deletes it and says what to
// journal; with no second factor left the recovery codes go too, unless the
// caller's role requires one, which refuses the whole.
func (s *SecondFactorService) removeFactor(ctx context.Context, remove func(tx *Tx, userID int64) (map[string]any, error)) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	u := callerFrom(ctx).user
	if u == nil {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Please sign in.")
	}
	if err := tx.lockFactors(ctx, u.ID); err != nil {
		return err
	}
	if err := tx.lockKey(ctx, "second factor policy", 0); err != nil {
		return err
	}
	detail, err := remove(tx, u.ID)
	if err != nil {
		return err
	}
	left, err := secondFactors(ctx, tx, u.ID)
	if err != nil {
		return err
	}
	var required bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM second_factor_policy WHERE role = $1)`, string(u.Role)).Scan(&required); err != nil {
		return fmt.Errorf("second factor policy: %w", err)
	}
	if err := doorledger.KeepRequiredFactor(required, left.Any()); err != nil {
		return err
	}
	if !left.Any() {
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, u.ID); err != nil {
			return fmt.Errorf("remove recovery codes: %w", err)
		}
	}
	if err := tx.audit(ctx, "user.2fa_removed", 0, "user", u.ID, detail); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *SecondFactorService) RemoveTOTP(ctx context.Context) error {
	return s.removeFactor(ctx, func(tx *Tx, userID int64) (map[string]any, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL`, userID)
		if err != nil {
			return nil, fmt.Errorf("remove totp: %w", err)
		} else if tag.RowsAffected() == 0 {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "You have no authenticator app set up.")
		}
		return map[string]any{"factor": doorledger.FactorTOTP}, nil
	})
}

func (s *SecondFactorService) RemovePasskey(ctx context.Context, passkeyID int64) error {
	return s.removeFactor(ctx, func(tx *Tx, userID int64) (map[string]any, error) {
		var name string
		if err := tx.QueryRow(ctx, `DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name`, passkeyID, userID).Scan(&name); err != nil {
			return nil, notFound(err, "Passkey not found.")
		}
		return map[string]any{"factor": doorledger.FactorPasskey, "name": name}, nil
	})
}
