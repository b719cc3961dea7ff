package doorledger

import (
	"context"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what a user account may do. Signers have no account.
type Role string

const (
	RoleAdmin     Role = "admin"     // the management company's operator: everything
	RoleManager   Role = "manager"   // the buildings granted to them: devices, consents, revoke, reports
	RoleBoard     Role = "board"     // read-only view of their buildings; audit reports
	RoleInstaller Role = "installer" // submits consent requests for buildings they were invited to
)

// Roles lists every role, in the order forms show them.
var Roles = []Role{RoleAdmin, RoleManager, RoleBoard, RoleInstaller}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// User is a person with an account.
type User struct {
	ID        int64
	Email     string
	Name      string
	Role      Role
	Company   string // installers: the vendor or contractor they work for
	Disabled  bool
	CreatedAt time.Time
}

// IsAdmin reports whether u may do everything.
func (u *User) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// NewUser is the input for creating an account.
type NewUser struct {
	Email    string
	Name     string
	Role     Role
	Company  string
	Password string
}

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 12

// Validate checks the fields of a new account.
func (n *NewUser) Validate() error {
	v := Validation{}
	n.Email = strings.TrimSpace(strings.ToLower(n.Email))
	n.Name = strings.TrimSpace(n.Name)
	n.Company = strings.TrimSpace(n.Company)
	ValidateEmail(v, "email", n.Email)
	if n.Name == "" {
		v.Add("name", "Enter the person's name.")
	} else if len(n.Name) > 200 {
		v.Add("name", "Keep the name under 200 characters.")
	}
	ValidateLine(v, "name", n.Name)
	if len(n.Company) > 200 {
		v.Add("company", "Keep the company under 200 characters.")
	}
	ValidateLine(v, "company", n.Company)
	if !n.Role.Valid() {
		v.Add("role", "Choose a role.")
	}
	ValidatePassword(v, "password", n.Password)
	return v.Err()
}

// ValidateEmail adds a message to v when s is not a single plain address.
func ValidateEmail(v Validation, field, s string) {
	if s == "" {
		v.Add(field, "Enter an email address.")
		return
	}
	ValidateLine(v, field, s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		v.Add(field, "Enter a plain email address, like name@example.com.")
	}
}

// MaxPasswordLen is the longest password accepted, in characters. Passwords
// longer than bcrypt's 72 bytes are accepted whole (the storage pre-hashes them).
const MaxPasswordLen = 256

// ValidatePassword adds a message to v when p is too weak or too long to
// accept. Lengths count characters, not bytes, as the person typing them does.
func ValidatePassword(v Validation, field, p string) {
	switch n := utf8.RuneCountInString(p); {
	case n < MinPasswordLen:
		v.Add(field, "Use at least 12 characters.")
	case n > MaxPasswordLen:
		v.Add(field, "Use at most 256 characters.")
	}
}

// UserUpdate changes an account; nil fields are left alone.
type UserUpdate struct {
	Name     *string
	Role     *Role
	Company  *string
	Disabled *bool
}

// Apply validates upd and applies it to u, the account as stored. self says
// the caller is that account: nobody disables their own.
func (upd UserUpdate) Apply(u *User, self bool) error {
	v := Validation{}
	if upd.Name != nil {
		if u.Name = strings.TrimSpace(*upd.Name); u.Name == "" {
			v.Add("name", "Enter the person's name.")
		} else if len(u.Name) > 200 {
			v.Add("name", "Keep the name under 200 characters.")
		}
		ValidateLine(v, "name", u.Name)
	}
	if upd.Role != nil {
		if !upd.Role.Valid() {
			v.Add("role", "Choose a role.")
		}
		u.Role = *upd.Role
	}
	if upd.Company != nil {
		if u.Company = strings.TrimSpace(*upd.Company); len(u.Company) > 200 {
			v.Add("company", "Keep the company under 200 characters.")
		}
		ValidateLine(v, "company", u.Company)
	}
	if upd.Disabled != nil {
		if *upd.Disabled && self {
			v.Add("disabled", "You cannot disable your own account.")
		}
		u.Disabled = *upd.Disabled
	}
	return v.Err()
}

// Session is a signed-in browser. Its ID travels in an encrypted cookie; the row
// is the server's word that it is still valid, so deleting it signs the browser out.
type Session struct {
	ID         string
	UserID     int64
	CreatedAt  time.Time
	LastSeenAt time.Time
	IP         string
	UserAgent  string
}

// Ended reports whether s is past its lifetime (SessionMaxAge) or its idle
// timeout (SessionIdleTimeout) at now.
func (s *Session) Ended(now time.Time) bool {
	return now.Sub(s.CreatedAt) > SessionMaxAge || now.Sub(s.LastSeenAt) > SessionIdleTimeout
}

// ErrEmailTaken is CreateUser's answer for an address another account has.
func ErrEmailTaken() error {
	return &Error{Code: ECONFLICT, Message: "An account with that email already exists.",
		Fields: map[string]string{"email": "An account with that email already exists."}}
}

// ErrWrongCurrentPassword is SetPassword's answer when the current password
// a user gives for their own account is not right.
func ErrWrongCurrentPassword() error {
	return &Error{Code: EINVALID, Message: "Your current password is not right.",
		Fields: map[string]string{"current": "This is not your current password."}}
}

// LoginWait is how long an account or IP throttled since its oldest counted
// failure waits: until that failure leaves LoginWindow, at least a second.
func LoginWait(oldest, now time.Time) time.Duration {
	wait := oldest.Add(LoginWindow).Sub(now).Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	return wait
}

// UserService manages accounts, passwords and sessions.
type UserService interface {
	// FindUserByID returns ENOTFOUND when there is no such user or the caller is
	// not an admin looking at someone else.
	FindUserByID(ctx context.Context, id int64) (*User, error)
	// FindUsers lists accounts (admins only; EFORBIDDEN otherwise).
	FindUsers(ctx context.Context) ([]*User, error)
	// CreateUser adds an account (admins, or the system). EINVALID, ECONFLICT for a taken email.
	CreateUser(ctx context.Context, n NewUser) (*User, error)
	// UpdateUser changes an account (admins). Disabling it ends its sessions.
	UpdateUser(ctx context.Context, id int64, upd UserUpdate) (*User, error)
	// SetPassword replaces the password and ends every session of the user.
	// Admins may set anyone's; others only their own, proving the current one.
	SetPassword(ctx context.Context, id int64, current, next string) error

	// Authenticate checks email and password and records the attempt. It returns
	// ETOOMANY (with the retry time in the message) when the account or the IP has
	// failed too often, and EUNAUTHORIZED for a wrong email or password.
	Authenticate(ctx context.Context, email, password, ip string) (*User, error)
	// The signed-in browsers' sessions.
	SessionService
	// CountUsers returns how many accounts exist (to know a first start).
	CountUsers(ctx context.Context) (int, error)
	// FindUserByEmail is for operators' CLI use (admins or the system).
	FindUserByEmail(ctx context.Context, email string) (*User, error)
}

// SessionService keeps the signed-in browsers in the database, so that any
// instance of the portal serves any request: a browser signed in through one
// instance is signed in on every other, and a session ended through one is
// ended on all. The cookie carries the session's random id (signed and
// encrypted); the database keeps only a hash of it, so a copy of the database
// yields no live session. A session ends SessionMaxAge after sign-in, or
// SessionIdleTimeout after it was last seen, whichever comes first; disabling
// a user or setting their password (UserService) ends all of theirs.
type SessionService interface {
	// CreateSession starts a new session for u, ending the session replaced
	// (if any): a new id at every sign-in.
	CreateSession(ctx context.Context, u *User, replaces, ip, userAgent string) (*Session, error)
	// SessionUser returns the user of a live session and marks it seen;
	// EUNAUTHORIZED when it expired, was ended, or the user was disabled.
	SessionUser(ctx context.Context, sessionID string) (*User, *Session, error)
	// CheckSession returns EUNAUTHORIZED when SessionUser would, without
	// marking the session seen (live pages re-check it on every tick).
	CheckSession(ctx context.Context, sessionID string) error
	// EndSession signs one browser out.
	EndSession(ctx context.Context, sessionID string) error
	// EndAllSessions signs every browser of the user out (logout everywhere).
	EndAllSessions(ctx context.Context, userID int64) error
	// PurgeSessions deletes the sessions past their lifetime or idle timeout
	// and returns how many (a background job; SessionUser refuses them anyway).
	PurgeSessions(ctx context.Context) (int, error)
}

// Session lifetime limits.
const (
	SessionMaxAge      = 12 * time.Hour   // absolute lifetime from sign-in
	SessionIdleTimeout = 2 * time.Hour    // ended after this long unused
	LoginFailureLimit  = 10               // failures per account or IP in LoginWindow
	LoginWindow        = 15 * time.Minute // window in which failures count
)
