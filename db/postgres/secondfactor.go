package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"github.com/doorledger/doorledger/internal/twofactor"
	"github.com/jackc/pgx/v5"
)

// SecondFactorService implements doorledger.SecondFactorService, ported
// from package sqlite. Authenticator-app secrets are sealed (seal.go) under
// the DB's seal key, the data directory's vendor.key, bound to their user;
// recovery codes are kept as hashes. Tries are throttled as passwords are
// (checkThrottle), in their own table. Several instances check codes at
// once: a try holds its account's and IP's advisory locks while it counts,
// and a code is spent by a conditional UPDATE (a TOTP step above last_step,
// a recovery code whose used_at is NULL), so two tries of one code cannot
// both succeed.
type SecondFactorService struct{ db *DB }

// NewSecondFactorService returns the PostgreSQL second-factor service.
func NewSecondFactorService(db *DB) *SecondFactorService { return &SecondFactorService{db: db} }

var _ doorledger.SecondFactorService = (*SecondFactorService)(nil)

// throttle is how second-factor tries are throttled.
func (s *SecondFactorService) throttle() throttle {
	return throttle{table: "second_factor_attempts", account: "user_id", accountLimit: s.db.LoginAccountLimit,
		ipLimit: s.db.LoginIPLimit, message: "Too many wrong codes. Try again in %s."}
}

// lockFactors takes, until tx ends, the lock of the user's second factors:
// tries of them and replacements of their recovery codes take turns.
func (tx *Tx) lockFactors(ctx context.Context, userID int64) error {
	return tx.lockKey(ctx, "second factor", userID)
}

func (s *SecondFactorService) SecondFactors(ctx context.Context, userID int64) (*doorledger.SecondFactors, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if !c.allBuildings() && c.user.ID != userID {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	return secondFactors(ctx, s.db.pool, userID)
}

// secondFactors reads what second factors the user has.
func secondFactors(ctx context.Context, q querier, userID int64) (*doorledger.SecondFactors, error) {
	var f doorledger.SecondFactors
	err := q.QueryRow(ctx, `SELECT confirmed_at FROM user_totp WHERE user_id = $1`, userID).Scan(at(&f.TOTPAt))
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read totp: %w", err)
	}
	f.TOTP = !f.TOTPAt.IsZero()
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&f.RecoveryLeft); err != nil {
		return nil, fmt.Errorf("count recovery codes: %w", err)
	}
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM passkeys WHERE user_id = $1`, userID).Scan(&f.Passkeys); err != nil {
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
	tag, err := tx.Exec(ctx, `
		INSERT INTO user_totp (user_id, secret_sealed, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at
		WHERE user_totp.confirmed_at IS NULL`, u.ID, sealed, tx.now)
	if err != nil {
		return nil, fmt.Errorf("start totp: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "You have an authenticator app already.")
	}
	return setup, tx.Commit(ctx)
}

func (s *SecondFactorService) PendingTOTP(ctx context.Context) (*doorledger.TOTPSetup, error) {
	u, err := enroller(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	err = s.db.pool.QueryRow(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = $1 AND confirmed_at IS NULL`, u.ID).Scan(&sealed)
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
		if err := tx.QueryRow(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = $1 AND confirmed_at IS NULL`, u.ID).Scan(&sealed); err != nil {
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
		// The secret read is the one confirmed: StartTOTP replaces only a
		// pending one, and this transaction holds the user's lock.
		tag, err := tx.Exec(ctx, `UPDATE user_totp SET confirmed_at = $1, last_step = $2 WHERE user_id = $3 AND confirmed_at IS NULL AND secret_sealed = $4`,
			tx.now, step, u.ID, sealed)
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, doorledger.Errorf(doorledger.ENOTFOUND, "There is no authenticator app being set up. Start again.")
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

// newRecoveryCodes replaces the user's recovery codes and returns the new
// ones; it takes the user's lock, so replacements take turns.
func (tx *Tx) newRecoveryCodes(ctx context.Context, userID int64) ([]string, error) {
	if err := tx.lockFactors(ctx, userID); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return nil, err
	}
	codes, hashes := twofactor.NewRecoveryCodes(doorledger.RecoveryCodeCount)
	if _, err := tx.Exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash, created_at) SELECT $1, h, $2 FROM unnest($3::text[]) h`,
		userID, tx.now, hashes); err != nil {
		return nil, fmt.Errorf("insert recovery code: %w", err)
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
	if err := tx.lockFactors(ctx, u.ID); err != nil {
		return nil, err
	}
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
	return codes, tx.Commit(ctx)
}

func (s *SecondFactorService) VerifySecondFactor(ctx context.Context, userID int64, code, ip string) (doorledger.SecondFactorKind, error) {
	var email string
	if err := s.db.pool.QueryRow(ctx, `SELECT email FROM users WHERE id = $1 AND NOT disabled`, userID).Scan(&email); err != nil {
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
			err := tx.QueryRow(ctx, `SELECT secret_sealed, last_step FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL`, userID).Scan(&sealed, &last)
			if errors.Is(err, pgx.ErrNoRows) {
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
			// The step is spent only if no other try spent it (or a later
			// one) since it was read: one of two tries at once wins.
			tag, err := tx.Exec(ctx, `UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1`, step, userID)
			if err != nil {
				return false, err
			}
			if tag.RowsAffected() == 0 {
				return false, nil
			}
			kind = doorledger.FactorTOTP
			return true, tx.auditAs(ctx, userID, email, "user.2fa_used", 0, "user", userID, map[string]any{"factor": kind})
		}
		tag, err := tx.Exec(ctx, `UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL`,
			tx.now, userID, twofactor.HashRecoveryCode(code))
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, nil
		}
		var left int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&left); err != nil {
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
// EUNAUTHORIZED) when not. PostgreSQL runs transactions side by side, so
// the transaction first takes the user's lock, then the IP's (always in
// that order: no deadlock), held until it ends: tries sent at once, to any
// instance, are counted one after the other, as SQLite's one writer counts
// them.
func (s *SecondFactorService) attempt(ctx context.Context, userID int64, email, ip string, check func(tx *Tx) (bool, error)) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.lockFactors(ctx, userID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("second factor ip", ip)); err != nil {
		return err
	}
	if err := tx.checkThrottle(ctx, s.throttle(), userID, ip, tx.now); err != nil {
		if doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			return err
		}
		if aerr := tx.auditAs(ctx, userID, email, "user.2fa_throttled", 0, "user", userID, nil); aerr != nil {
			return aerr
		}
		if cerr := tx.Commit(ctx); cerr != nil {
			return cerr
		}
		return err
	}
	ok, err := check(tx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO second_factor_attempts (at, user_id, ip, ok) VALUES ($1, $2, $3, $4)`,
		tx.now, userID, ip, ok); err != nil {
		return err
	}
	if !ok {
		if err := tx.auditAs(ctx, userID, email, "user.2fa_failed", 0, "user", userID, nil); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
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
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&ok); err != nil {
		return err
	} else if !ok {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	if err := tx.lockFactors(ctx, userID); err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM user_totp WHERE user_id = $1`, `DELETE FROM recovery_codes WHERE user_id = $1`, `DELETE FROM passkeys WHERE user_id = $1`} {
		if _, err := tx.Exec(ctx, q, userID); err != nil {
			return fmt.Errorf("reset second factor: %w", err)
		}
	}
	if err := tx.audit(ctx, "user.2fa_reset", 0, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *SecondFactorService) SecondFactorPolicy(ctx context.Context) ([]doorledger.Role, error) {
	return queryAll(ctx, s.db.pool, func(row interface{ Scan(...any) error }) (r doorledger.Role, err error) {
		return r, row.Scan(&r)
	}, `SELECT role FROM second_factor_policy ORDER BY role COLLATE "C"`)
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
	if err := tx.lockKey(ctx, "second factor policy", 0); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM second_factor_policy`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO second_factor_policy (role) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, names); err != nil {
		return fmt.Errorf("second factor policy: %w", err)
	}
	if err := tx.audit(ctx, "user.2fa_policy", 0, "", 0, map[string]any{"roles": strings.Join(names, ",")}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
