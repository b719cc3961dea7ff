package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"github.com/doorledger/doorledger/internal/twofactor"
)

// SecondFactorService implements doorledger.SecondFactorService.
// Authenticator-app secrets are sealed (seal.go) under the DB's seal key, the
// data directory's vendor.key, bound to their user; recovery codes are kept
// as hashes. Tries are throttled as passwords are (checkThrottle), in their
// own table, so a right password does not reset the count of wrong codes.
type SecondFactorService struct{ db *DB }

// NewSecondFactorService returns the SQLite second-factor service.
func NewSecondFactorService(db *DB) *SecondFactorService { return &SecondFactorService{db: db} }

var _ doorledger.SecondFactorService = (*SecondFactorService)(nil)

// secondFactorThrottle is how second-factor tries are throttled.
func (s *SecondFactorService) throttle() throttle {
	return throttle{table: "second_factor_attempts", account: "user_id", accountLimit: s.db.LoginAccountLimit,
		ipLimit: s.db.LoginIPLimit, message: "Too many wrong codes. Try again in %s."}
}

func (s *SecondFactorService) SecondFactors(ctx context.Context, userID int64) (*doorledger.SecondFactors, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if !c.allBuildings() && c.user.ID != userID {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	return secondFactors(ctx, s.db.read, userID)
}

// secondFactors reads what second factors the user has.
func secondFactors(ctx context.Context, q querier, userID int64) (*doorledger.SecondFactors, error) {
	var f doorledger.SecondFactors
	var at sql.NullString
	err := q.QueryRowContext(ctx, `SELECT confirmed_at FROM user_totp WHERE user_id = ?`, userID).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read totp: %w", err)
	}
	if at.Valid {
		f.TOTP, f.TOTPAt = true, parseTime(at.String)
	}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&f.RecoveryLeft); err != nil {
		return nil, fmt.Errorf("count recovery codes: %w", err)
	}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM passkeys WHERE user_id = ?`, userID).Scan(&f.Passkeys); err != nil {
		return nil, fmt.Errorf("count passkeys: %w", err)
	}
	return &f, nil
}

// enroller is the signed-in caller when their role may have a second factor.
func enroller(ctx context.Context) (*doorledger.User, error) {
	u := callerFrom(ctx).user
	if err := doorledger.CheckEnroller(u); err != nil {
		return nil, err
	}
	return u, nil
}

func (s *SecondFactorService) StartTOTP(ctx context.Context) (*doorledger.TOTPSetup, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	setup := twofactor.NewTOTP(u.Email)
	sealed, err := s.db.sealer.Seal([]byte(setup.Secret), seal.TOTPSecret(u.ID))
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// A pending secret is replaced; a confirmed one is not touched.
	res, err := tx.ExecContext(ctx, `
		INSERT INTO user_totp (user_id, secret_sealed, created_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at
		WHERE user_totp.confirmed_at IS NULL`, u.ID, sealed, formatTime(tx.now))
	if err != nil {
		return nil, fmt.Errorf("start totp: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "You have an authenticator app already.")
	}
	return setup, tx.Commit()
}

func (s *SecondFactorService) PendingTOTP(ctx context.Context) (*doorledger.TOTPSetup, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	err = s.db.read.QueryRowContext(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = ? AND confirmed_at IS NULL`, u.ID).Scan(&sealed)
	if err != nil {
		return nil, notFound(err, "There is no authenticator app being set up.")
	}
	secret, err := s.db.sealer.Open(sealed, seal.TOTPSecret(u.ID))
	if err != nil {
		return nil, fmt.Errorf("open totp secret: %w", err)
	}
	return twofactor.SetupOf(u.Email, string(secret)), nil
}

func (s *SecondFactorService) ConfirmTOTP(ctx context.Context, code, ip string) ([]string, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	code = doorledger.NormalizeCode(code)
	var codes []string
	err = s.attempt(ctx, u.ID, u.Email, ip, func(tx *Tx) (bool, error) {
		var sealed []byte
		if err := tx.QueryRowContext(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = ? AND confirmed_at IS NULL`, u.ID).Scan(&sealed); err != nil {
			return false, notFound(err, "There is no authenticator app being set up. Start again.")
		}
		secret, err := s.db.sealer.Open(sealed, seal.TOTPSecret(u.ID))
		if err != nil {
			return false, fmt.Errorf("open totp secret: %w", err)
		}
		step, ok := twofactor.CheckTOTP(string(secret), code, tx.now, 0)
		if !ok {
			return false, nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_totp SET confirmed_at = ?, last_step = ? WHERE user_id = ?`, formatTime(tx.now), step, u.ID); err != nil {
			return false, err
		}
		if codes, err = tx.newRecoveryCodes(ctx, u.ID); err != nil {
			return false, err
		}
		return true, tx.auditAs(ctx, u.ID, u.Email, "user.2fa_enrolled", 0, "user", u.ID, map[string]any{"factor": doorledger.FactorTOTP})
	})
	if doorledger.ErrorCode(err) == doorledger.EUNAUTHORIZED {
		return nil, &doorledger.Error{Code: doorledger.EINVALID, Message: "That code is not right.",
			Fields: map[string]string{"code": "That code is not right: enter the six digits the app shows now."}}
	}
	return codes, err
}

// newRecoveryCodes replaces the user's recovery codes and returns the new ones.
func (tx *Tx) newRecoveryCodes(ctx context.Context, userID int64) ([]string, error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return nil, err
	}
	codes, hashes := twofactor.NewRecoveryCodes(doorledger.RecoveryCodeCount)
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)`,
			userID, h, formatTime(tx.now)); err != nil {
			return nil, fmt.Errorf("insert recovery code: %w", err)
		}
	}
	return codes, nil
}

func (s *SecondFactorService) NewRecoveryCodes(ctx context.Context) ([]string, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	f, err := secondFactors(ctx, tx, u.ID)
	if err != nil {
		return nil, err
	}
	if !f.Any() {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Set up a second factor first: recovery codes stand in for it.")
	}
	codes, err := tx.newRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "user.2fa_recovery_codes", 0, "user", u.ID, map[string]any{"count": len(codes)}); err != nil {
		return nil, err
	}
	return codes, tx.Commit()
}

func (s *SecondFactorService) VerifySecondFactor(ctx context.Context, userID int64, code, ip string) (doorledger.SecondFactorKind, error) {
	var email string
	if err := s.db.read.QueryRowContext(ctx, `SELECT email FROM users WHERE id = ? AND disabled = 0`, userID).Scan(&email); err != nil {
		if err := notFound(err, ""); doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			return "", doorledger.Errorf(doorledger.EUNAUTHORIZED, "That code is not right.")
		}
		return "", err
	}
	code = doorledger.NormalizeCode(code)
	var kind doorledger.SecondFactorKind
	err := s.attempt(ctx, userID, email, ip, func(tx *Tx) (bool, error) {
		if doorledger.IsTOTPCode(code) {
			var sealed []byte
			var last int64
			err := tx.QueryRowContext(ctx, `SELECT secret_sealed, last_step FROM user_totp WHERE user_id = ? AND confirmed_at IS NOT NULL`, userID).Scan(&sealed, &last)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			} else if err != nil {
				return false, err
			}
			secret, err := s.db.sealer.Open(sealed, seal.TOTPSecret(userID))
			if err != nil {
				return false, fmt.Errorf("open totp secret: %w", err)
			}
			step, ok := twofactor.CheckTOTP(string(secret), code, tx.now, last)
			if !ok {
				return false, nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE user_totp SET last_step = ? WHERE user_id = ?`, step, userID); err != nil {
				return false, err
			}
			kind = doorledger.FactorTOTP
			return true, tx.auditAs(ctx, userID, email, "user.2fa_used", 0, "user", userID, map[string]any{"factor": kind})
		}
		res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`,
			formatTime(tx.now), userID, twofactor.HashRecoveryCode(code))
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return false, nil
		}
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&left); err != nil {
			return false, err
		}
		kind = doorledger.FactorRecovery
		return true, tx.auditAs(ctx, userID, email, "user.2fa_recovery", 0, "user", userID, map[string]any{"left": left})
	})
	return kind, err
}

// attempt runs check, a try of a second factor by the user, in one write
// transaction with the throttle: refused (ETOOMANY, journaled
// user.2fa_throttled, not counted) when the account or the IP has failed
// too often; otherwise recorded as an attempt, a success when check says
// so (check journals it) and a failure (journaled user.2fa_failed,
// EUNAUTHORIZED) when not. The database has one writer, so tries sent at
// once are counted one after the other.
func (s *SecondFactorService) attempt(ctx context.Context, userID int64, email, ip string, check func(tx *Tx) (bool, error)) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.checkThrottle(ctx, s.throttle(), userID, ip, tx.now.UTC()); err != nil {
		if doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			return err
		}
		if aerr := tx.auditAs(ctx, userID, email, "user.2fa_throttled", 0, "user", userID, nil); aerr != nil {
			return aerr
		}
		if cerr := tx.Commit(); cerr != nil {
			return cerr
		}
		return err
	}
	ok, err := check(tx)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO second_factor_attempts (at, user_id, ip, ok) VALUES (?, ?, ?, ?)`,
		formatTime(tx.now), userID, ip, ok); err != nil {
		return err
	}
	if !ok {
		if err := tx.auditAs(ctx, userID, email, "user.2fa_failed", 0, "user", userID, nil); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if !ok {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "That code is not right.")
	}
	return nil
}

func (s *SecondFactorService) ResetSecondFactor(ctx context.Context, userID int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, userID).Scan(&n); err != nil {
		return err
	} else if n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	for _, q := range []string{`DELETE FROM user_totp WHERE user_id = ?`, `DELETE FROM recovery_codes WHERE user_id = ?`, `DELETE FROM passkeys WHERE user_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return fmt.Errorf("reset second factor: %w", err)
		}
	}
	if err := tx.audit(ctx, "user.2fa_reset", 0, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SecondFactorService) SecondFactorPolicy(ctx context.Context) ([]doorledger.Role, error) {
	return queryAll(ctx, s.db.read, func(row interface{ Scan(...any) error }) (r doorledger.Role, err error) {
		return r, row.Scan(&r)
	}, `SELECT role FROM second_factor_policy ORDER BY role`)
}

func (s *SecondFactorService) SetSecondFactorPolicy(ctx context.Context, roles []doorledger.Role) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	var names []string
	for _, r := range roles {
		if !r.MayHaveSecondFactor() {
			return &doorledger.Error{Code: doorledger.EINVALID, Message: "Only managers and admins have a second factor.",
				Fields: map[string]string{"roles": "Only managers and admins have a second factor."}}
		}
		names = append(names, string(r))
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM second_factor_policy`); err != nil {
		return err
	}
	for _, r := range names {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO second_factor_policy (role) VALUES (?)`, r); err != nil {
			return fmt.Errorf("second factor policy: %w", err)
		}
	}
	if err := tx.audit(ctx, "user.2fa_policy", 0, "", 0, map[string]any{"roles": strings.Join(names, ",")}); err != nil {
		return err
	}
	return tx.Commit()
}
