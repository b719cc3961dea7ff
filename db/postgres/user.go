package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/passhash"
	"github.com/doorledger/doorledger/internal/token"
)

// UserService implements doorledger.UserService.
type UserService struct{ db *DB }

// NewUserService returns the PostgreSQL user service.
func NewUserService(db *DB) *UserService { return &UserService{db: db} }

var _ doorledger.UserService = (*UserService)(nil)

const userColumns = `id, email, name, role, company, disabled, created_at`

func scanUser(row interface{ Scan(...any) error }) (*doorledger.User, error) {
	var u doorledger.User
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Company, &u.Disabled, at(&u.CreatedAt)); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *UserService) FindUserByID(ctx context.Context, id int64) (*doorledger.User, error) {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return nil, err
	}
	if !c.allBuildings() && c.user.ID != id {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	u, err := scanUser(s.db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, notFound(err, "User not found.")
}

func (s *UserService) FindUserByEmail(ctx context.Context, email string) (*doorledger.User, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	u, err := scanUser(s.db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, strings.ToLower(strings.TrimSpace(email))))
	return u, notFound(err, "No account has that email address.")
}

func (s *UserService) FindUsers(ctx context.Context) ([]*doorledger.User, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	// COLLATE "C": byte order, as SQLite sorts text.
	return queryAll(ctx, s.db.pool, scanUser, `SELECT `+userColumns+` FROM users ORDER BY role COLLATE "C", name COLLATE "C", id`)
}

func (s *UserService) CountUsers(ctx context.Context) (n int, err error) {
	err = s.db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

func (s *UserService) CreateUser(ctx context.Context, n doorledger.NewUser) (*doorledger.User, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	hash, err := passhash.Hash(n.Password, s.db.PasswordCost)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	u, err := createUser(ctx, tx, n, hash)
	if err != nil {
		return nil, err
	}
	return u, tx.Commit(ctx)
}

func createUser(ctx context.Context, tx *Tx, n doorledger.NewUser, hash string) (*doorledger.User, error) {
	// ON CONFLICT: a taken address is an answer, not an aborted transaction
	// (an invitation accepted by an address that has an account goes on).
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO users (email, name, role, company, password_hash, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT ON CONSTRAINT users_email DO NOTHING RETURNING id`,
		n.Email, n.Name, n.Role, n.Company, hash, tx.now).Scan(&id)
	if err := notFound(err, ""); doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
		return nil, doorledger.ErrEmailTaken()
	} else if err != nil {
		return nil, fmt.Errorf("insert user: %w", err)
	}
	if err := tx.audit(ctx, "user.create", 0, "user", id, map[string]any{"email": n.Email, "role": n.Role}); err != nil {
		return nil, err
	}
	return &doorledger.User{ID: id, Email: n.Email, Name: n.Name, Role: n.Role, Company: n.Company, CreatedAt: tx.now}, nil
}

func (s *UserService) UpdateUser(ctx context.Context, id int64, upd doorledger.UserUpdate) (*doorledger.User, error) {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, notFound(err, "User not found.")
	}
	if err := upd.Apply(u, c.user != nil && c.user.ID == id); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE users SET name = $1, role = $2, company = $3, disabled = $4, updated_at = $5 WHERE id = $6`,
		u.Name, u.Role, u.Company, u.Disabled, tx.now, id); err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	if u.Disabled {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id); err != nil {
			return nil, err
		}
	}
	if err := tx.audit(ctx, "user.update", 0, "user", id, map[string]any{"role": u.Role, "disabled": u.Disabled}); err != nil {
		return nil, err
	}
	return u, tx.Commit(ctx)
}

func (s *UserService) SetPassword(ctx context.Context, id int64, current, next string) error {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return err
	}
	self := c.user != nil && c.user.ID == id
	if !self && !c.allBuildings() {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	v := doorledger.Validation{}
	doorledger.ValidatePassword(v, "password", next)
	if err := v.Err(); err != nil {
		return err
	}
	if self && c.system == "" {
		var hash string
		if err := s.db.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, id).Scan(&hash); err != nil {
			return notFound(err, "User not found.")
		}
		if !passhash.Matches(hash, current) {
			return doorledger.ErrWrongCurrentPassword()
		}
	}
	hash, err := passhash.Hash(next, s.db.PasswordCost)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3`, hash, tx.now, id)
	if err != nil {
		return err
	} else if tag.RowsAffected() == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	// A new password ends every session, this browser's too: it signs in again.
	if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id); err != nil {
		return err
	}
	if err := tx.audit(ctx, "user.password", 0, "user", id, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Authenticate records the attempt before it checks the password: the
// throttle check and the attempt's row (a failure until the password proves
// right) are one transaction that holds the account's and the IP's locks
// (beginAttempt), so N guesses sent at once, to any instance, are N attempts,
// and those past the limit are refused without running bcrypt.
func (s *UserService) Authenticate(ctx context.Context, email, password, ip string) (*doorledger.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var hash string
	var u *doorledger.User
	var x doorledger.User
	err := s.db.pool.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE email = $1`, email).
		Scan(&x.ID, &x.Email, &x.Name, &x.Role, &x.Company, &x.Disabled, at(&x.CreatedAt), &hash)
	if err == nil {
		u = &x
	} else if err := notFound(err, ""); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		return nil, err
	}
	var uid int64
	if u != nil {
		uid = u.ID
	}
	attempt, err := s.beginAttempt(ctx, email, ip, uid)
	if err != nil {
		return nil, err
	}
	if u == nil {
		hash = passhash.Dummy // a wrong address takes as long as a wrong password
	}
	if !passhash.Matches(hash, password) || u == nil || u.Disabled {
		if err := s.endAttempt(ctx, attempt, email, uid, false); err != nil {
			return nil, err
		}
		return nil, doorledger.Errorf(doorledger.EUNAUTHORIZED, "The email or password is not right.")
	}
	if err := s.endAttempt(ctx, attempt, email, uid, true); err != nil {
		return nil, err
	}
	return u, nil
}

// beginAttempt checks the throttle and, when the attempt may go on, records it
// as a failure, in one transaction; it returns the attempt's id. PostgreSQL
// runs transactions side by side, so the transaction first takes the
// account's lock, then the IP's (always in that order: no deadlock), held
// until it ends: attempts of one account or IP are counted one by one, as
// SQLite's one writer counts them. A refused attempt is journaled
// (user.login_throttled) but not counted, so it does not extend the lock-out.
func (s *UserService) beginAttempt(ctx context.Context, email, ip string, userID int64) (int64, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)`,
		lockKey("login email", email), lockKey("login ip", ip)); err != nil {
		return 0, err
	}
	if err := tx.checkThrottle(ctx, s.loginThrottle(), email, ip, tx.now); err != nil {
		if doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			return 0, err
		}
		if aerr := tx.auditAs(ctx, userID, email, "user.login_throttled", 0, "user", userID, nil); aerr != nil {
			return 0, aerr
		}
		if cerr := tx.Commit(ctx); cerr != nil {
			return 0, cerr
		}
		return 0, err
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO login_attempts (at, email, ip, user_id, ok) VALUES ($1, $2, $3, $4, false) RETURNING id`,
		tx.now, email, ip, userID).Scan(&id); err != nil {
		return 0, err
	}
	return id, tx.Commit(ctx)
}

// endAttempt journals the attempt's outcome; a success marks its row so, and
// the account's failures before it stop counting.
func (s *UserService) endAttempt(ctx context.Context, attemptID int64, email string, userID int64, ok bool) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	action := "user.login_failed"
	if ok {
		action = "user.login"
		if _, err := tx.Exec(ctx, `UPDATE login_attempts SET ok = true WHERE id = $1`, attemptID); err != nil {
			return err
		}
	}
	if err := tx.auditAs(ctx, userID, email, action, 0, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// throttle is a table of attempts counted against a limit per account and
// per IP: sign-ins (login_attempts) and second-factor tries
// (second_factor_attempts).
type throttle struct {
	table, account        string // table and account column: trusted names, never input
	accountLimit, ipLimit int
	message               string // with %s for the wait
}

// loginThrottle is how sign-ins are throttled.
func (s *UserService) loginThrottle() throttle {
	return throttle{table: "login_attempts", account: "email", accountLimit: s.db.LoginAccountLimit,
		ipLimit: s.db.LoginIPLimit, message: "Too many failed sign-ins. Try again in %s."}
}

// checkThrottle refuses (ETOOMANY) when the account or the IP has failed
// th's limit within the window, counting attempts still being checked as
// failures. Failures of an account before its last success do not count.
// The caller holds the account's and the IP's advisory locks.
func (tx *Tx) checkThrottle(ctx context.Context, th throttle, account any, ip string, now time.Time) error {
	since := now.Add(-doorledger.LoginWindow)
	check := func(limit int, query string, args ...any) error {
		var n int
		var oldest time.Time
		if err := tx.QueryRow(ctx, query, args...).Scan(&n, at(&oldest)); err != nil {
			return err
		}
		if n < limit {
			return nil
		}
		return doorledger.Errorf(doorledger.ETOOMANY, th.message, doorledger.LoginWait(oldest, now))
	}
	// The account's failures since its last success (by id: the account's
	// lock orders its attempts, and several may share a timestamp); the
	// oldest that still counts tells when the lock lifts.
	if err := check(th.accountLimit, `
		SELECT COUNT(*), MIN(at) FROM (
			SELECT at FROM `+th.table+`
			WHERE `+th.account+` = $1 AND NOT ok AND at >= $2
			  AND id > COALESCE((SELECT MAX(id) FROM `+th.table+` WHERE `+th.account+` = $1 AND ok), 0)
			ORDER BY at DESC LIMIT $3) recent`, account, since, th.accountLimit); err != nil {
		return err
	}
	return check(th.ipLimit, `
		SELECT COUNT(*), MIN(at) FROM (
			SELECT at FROM `+th.table+` WHERE ip = $1 AND NOT ok AND at >= $2
			ORDER BY at DESC LIMIT $3) recent`, ip, since, th.ipLimit)
}

// newToken returns a new random token and the hash to store.
func newToken() (tok, hash string) { return token.New() }

// HashToken is how session ids and one-time tokens are stored.
func HashToken(tok string) string { return token.Hash(tok) }

func (s *UserService) CreateSession(ctx context.Context, u *doorledger.User, replaces, ip, userAgent string) (*doorledger.Session, error) {
	if len(userAgent) > 500 {
		userAgent = userAgent[:500]
	}
	token, hash := newToken()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if replaces != "" {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, HashToken(replaces)); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, ip, user_agent) VALUES ($1, $2, $3, $3, $4, $5)`,
		hash, u.ID, tx.now, ip, userAgent); err != nil {
		return nil, err
	}
	// Expired sessions of anyone are swept here, where sessions are written anyway.
	if _, err := tx.purgeSessions(ctx); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return &doorledger.Session{ID: token, UserID: u.ID, CreatedAt: tx.now, LastSeenAt: tx.now, IP: ip, UserAgent: userAgent}, nil
}

// sessionTouchEvery bounds how often a session's last-seen time is written.
const sessionTouchEvery = time.Minute

func (s *UserService) SessionUser(ctx context.Context, sessionID string) (*doorledger.User, *doorledger.Session, error) {
	u, sess, err := s.liveSession(ctx, sessionID)
	if err != nil {
		return nil, nil, err
	}
	if now := s.db.now(); now.Sub(sess.LastSeenAt) > sessionTouchEvery {
		if _, err := s.db.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2`, now, HashToken(sessionID)); err != nil {
			return nil, nil, err
		}
		sess.LastSeenAt = now
	}
	return u, sess, nil
}

// CheckSession is SessionUser without marking the session seen: a live page
// asks every second, and an open tab is not a person using the portal.
func (s *UserService) CheckSession(ctx context.Context, sessionID string) error {
	_, _, err := s.liveSession(ctx, sessionID)
	return err
}

// liveSession reads a session and its user: EUNAUTHORIZED when there is no
// such session (ended, or never), it is past its lifetime or idle timeout, or
// the user is disabled.
func (s *UserService) liveSession(ctx context.Context, sessionID string) (*doorledger.User, *doorledger.Session, error) {
	unauth := doorledger.Errorf(doorledger.EUNAUTHORIZED, "Your session has ended. Please sign in again.")
	if sessionID == "" {
		return nil, nil, unauth
	}
	var sess doorledger.Session
	var u doorledger.User
	err := s.db.pool.QueryRow(ctx, `
		SELECT s.user_id, s.created_at, s.last_seen_at, s.ip, s.user_agent,
		       u.id, u.email, u.name, u.role, u.company, u.disabled, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1`, HashToken(sessionID)).
		Scan(&sess.UserID, at(&sess.CreatedAt), at(&sess.LastSeenAt), &sess.IP, &sess.UserAgent,
			&u.ID, &u.Email, &u.Name, &u.Role, &u.Company, &u.Disabled, at(&u.CreatedAt))
	if err != nil {
		if doorledger.ErrorCode(notFound(err, "")) == doorledger.ENOTFOUND {
			return nil, nil, unauth
		}
		return nil, nil, err
	}
	sess.ID = sessionID
	now := s.db.Now().UTC()
	if u.Disabled || sess.Ended(now) {
		return nil, nil, unauth
	}
	return &u, &sess, nil
}

func (s *UserService) EndSession(ctx context.Context, sessionID string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, HashToken(sessionID)); err != nil {
		return err
	}
	if err := tx.audit(ctx, "user.logout", 0, "user", callerFrom(ctx).id(), nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// PurgeSessions deletes the sessions past their lifetime or idle timeout.
func (s *UserService) PurgeSessions(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	n, err := tx.purgeSessions(ctx)
	if err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// purgeSessions deletes the sessions past their lifetime or idle timeout at
// the transaction's time.
func (tx *Tx) purgeSessions(ctx context.Context) (int, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE created_at < $1 OR last_seen_at < $2`,
		tx.now.Add(-doorledger.SessionMaxAge), tx.now.Add(-doorledger.SessionIdleTimeout))
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (s *UserService) EndAllSessions(ctx context.Context, userID int64) error {
	c := callerFrom(ctx)
	if err := c.requireSignedIn(); err != nil {
		return err
	}
	if !c.allBuildings() && c.user.ID != userID {
		return doorledger.Errorf(doorledger.ENOTFOUND, "User not found.")
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID); err != nil {
		return err
	}
	if err := tx.audit(ctx, "user.logout_everywhere", 0, "user", userID, nil); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
