package doorledger

import (
	"context"
	"strings"
	"time"
)

// A second factor is asked for after the password (issue 16): a code from an
// authenticator app (TOTP), one of the one-time recovery codes made with
// it, or a passkey. Managers and admins may enrol one, since their password
// is the key to every door device of their buildings; an admin can require it
// of a role, and then a user of that role without one enrols at sign-in.
// Tries are throttled as passwords are, and every enrolment, use, failure
// and recovery is journaled (never the secret or the code).

// SecondFactorKind names what proved the second factor.
type SecondFactorKind string

const (
	FactorTOTP     SecondFactorKind = "totp"     // a code from an authenticator app
	FactorRecovery SecondFactorKind = "recovery" // a one-time recovery code
	FactorPasskey  SecondFactorKind = "passkey"  // a passkey (WebAuthn)
)

// Second factor settings.
const (
	// RecoveryCodeCount is how many recovery codes are made at once.
	RecoveryCodeCount = 10
	// StepUpAge is how long a second factor counts for the actions that
	// ask for it again (enabling a device, changing a roster, granting
	// access, creating a vendor integration, issuing a device secret).
	StepUpAge = 15 * time.Minute
	// SecondFactorIssuer names the portal in authenticator apps.
	SecondFactorIssuer = "Doorledger"
)

// SecondFactors is what second factors a user has.
type SecondFactors struct {
	TOTP         bool      // an authenticator app is confirmed
	TOTPAt       time.Time // when it was
	RecoveryLeft int       // recovery codes not used yet
	Passkeys     int       // passkeys registered
}

// Any reports whether the user has a second factor to be asked for.
func (f *SecondFactors) Any() bool { return f != nil && (f.TOTP || f.Passkeys > 0) }

// Passkey is a WebAuthn credential of a user: it signs in alone (a passkey
// is something the user has, unlocked by something they are or know) and
// stands for the second factor after a password.
type Passkey struct {
	ID           int64
	UserID       int64
	Name         string // the user's name for it ("work laptop")
	CredentialID []byte
	// Data is the credential as the WebAuthn library records it (public
	// key, signature counter, flags), opaque to the domain.
	Data       []byte
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used to sign in
}

// ValidatePasskeyName checks the name a user gives a passkey.
func ValidatePasskeyName(v Validation, field, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add(field, "Name the passkey, such as the device it is on.")
	case len(name) > 100:
		v.Add(field, "Keep the name under 100 characters.")
	}
	ValidateLine(v, field, name)
}

// TOTPSetup is a new authenticator-app secret, shown while it is enrolled:
// the QR code carries URL, the key is for typing by hand.
type TOTPSetup struct {
	Secret string // base32
	URL    string // otpauth://totp/…
}

// KeepRequiredFactor refuses (ECONFLICT) a removal that would leave a user
// whose role requires a second factor (the policy) with none; left says
// whether they would have one after it.
func KeepRequiredFactor(required, left bool) error {
	if left || !required {
		return nil
	}
	return Errorf(ECONFLICT, "Your role requires a second factor and this is your last one: add another (a passkey or an authenticator app) before you remove it.")
}

// MayHaveSecondFactor reports whether a role may enrol a second factor, and
// so whether an admin may require one of it.
func (r Role) MayHaveSecondFactor() bool { return r == RoleAdmin || r == RoleManager }

// NormalizeCode takes what a person typed as a code (spaces, dashes, any
// case) to the form it is checked in.
func NormalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, code)
}

// IsTOTPCode reports whether a normalized code has the shape of an
// authenticator app's (six digits); anything else is read as a recovery code.
func IsTOTPCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// SecondFactorService keeps users' second factors and the policy of which
// roles must have one.
type SecondFactorService interface {
	// SecondFactors returns what second factors the user has: the caller's
	// own, or anyone's for an admin or the system (ENOTFOUND otherwise).
	SecondFactors(ctx context.Context, userID int64) (*SecondFactors, error)
	// StartTOTP makes a new authenticator-app secret for the signed-in
	// caller, kept sealed and unconfirmed until ConfirmTOTP. EFORBIDDEN for
	// a role that may not have a second factor; ECONFLICT when the caller
	// has an app already.
	StartTOTP(ctx context.Context) (*TOTPSetup, error)
	// PendingTOTP returns the secret StartTOTP made and ConfirmTOTP has not
	// confirmed yet; ENOTFOUND when there is none.
	PendingTOTP(ctx context.Context) (*TOTPSetup, error)
	// ConfirmTOTP checks a code of the pending secret; when it is right the
	// secret becomes the caller's authenticator app, and new recovery codes
	// (RecoveryCodeCount, replacing any left) are returned, to be shown
	// once: only their hashes are kept. EINVALID (field "code") for a wrong
	// code, ETOOMANY when the caller has failed too often.
	ConfirmTOTP(ctx context.Context, code, ip string) ([]string, error)
	// NewRecoveryCodes replaces the caller's recovery codes; EINVALID when
	// the caller has no second factor.
	NewRecoveryCodes(ctx context.Context) ([]string, error)
	// VerifySecondFactor checks a code for the user at sign-in (after the
	// password) or when an action asks again: six digits from the
	// authenticator app (each time step once), or a recovery code, used up
	// by it. EUNAUTHORIZED for a wrong code, ETOOMANY (with the retry time in
	// the message) when the account or the IP has failed too often.
	VerifySecondFactor(ctx context.Context, userID int64, code, ip string) (SecondFactorKind, error)
	// ResetSecondFactor removes every second factor of the user, passkeys
	// and recovery codes included (admins and the system; ENOTFOUND otherwise): for
	// someone who lost their phone.
	ResetSecondFactor(ctx context.Context, userID int64) error

	// AddPasskey registers a passkey of the signed-in caller, whose browser
	// proved it (EFORBIDDEN for a role that may not have a second factor,
	// EINVALID for a bad name, ECONFLICT for a credential registered already).
	AddPasskey(ctx context.Context, name string, credentialID, data []byte) (*Passkey, error)
	// Passkeys lists the user's passkeys: the caller's own, or anyone's for
	// an admin or the system (ENOTFOUND otherwise).
	Passkeys(ctx context.Context, userID int64) ([]*Passkey, error)
	// FindPasskey returns the passkey with the credential id and its user
	// (at sign-in, before anyone is signed in); ENOTFOUND when there is none
	// or the user is disabled.
	FindPasskey(ctx context.Context, credentialID []byte) (*Passkey, *User, error)
	// PasskeyUsed records that the user's browser proved the passkey, with
	// its credential's new data (the signature counter moves), journaled
	// as a use; ETOOMANY when the account or the IP has failed too often.
	PasskeyUsed(ctx context.Context, passkeyID int64, data []byte, ip string) error
	// PasskeyFailed records a passkey the browser did not prove for the user
	// (journaled, and counted as a failed try); EUNAUTHORIZED, or ETOOMANY.
	PasskeyFailed(ctx context.Context, userID int64, ip string) error
	// RemovePasskey removes one of the caller's passkeys (ENOTFOUND for
	// another's), journaled. ECONFLICT when it is their last second factor
	// and their role requires one (KeepRequiredFactor). Recovery codes go
	// with the last second factor.
	RemovePasskey(ctx context.Context, passkeyID int64) error
	// RemoveTOTP removes the caller's authenticator app, journaled, as
	// RemovePasskey removes a passkey; ENOTFOUND when they have none.
	RemoveTOTP(ctx context.Context) error

	// SecondFactorPolicy returns the roles that must have a second factor.
	SecondFactorPolicy(ctx context.Context) ([]Role, error)
	// SetSecondFactorPolicy sets them (admins; EINVALID for a role that may
	// not have one).
	SetSecondFactorPolicy(ctx context.Context, roles []Role) error
}

// CheckEnroller says whether u, the signed-in caller (nil when nobody is),
// may enrol a second factor: EUNAUTHORIZED signed out, EFORBIDDEN for a role
// that has none.
func CheckEnroller(u *User) error {
	if u == nil {
		return Errorf(EUNAUTHORIZED, "Please sign in.")
	}
	if !u.Role.MayHaveSecondFactor() {
		return Errorf(EFORBIDDEN, "Only managers and admins enrol a second factor.")
	}
	return nil
}
