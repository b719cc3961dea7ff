package doorledger

import (
	"context"
	"strings"
	"time"
)

// Single sign-on (issue 16): people sign in through the management company's
// OpenID provider instead of a password. The provider vouches for an email
// address; the portal matches it to an account, and creates one only for a
// domain an admin allowed, with the role the admin chose.

// SSOIdentity is who the OpenID provider says signed in, from a verified ID
// token (and the provider's userinfo where the token carries no email).
type SSOIdentity struct {
	Issuer        string // the provider's issuer URL, as configured
	Subject       string // the provider's id of the person
	Email         string
	EmailVerified bool // the provider's email_verified claim
	Name          string
}

// SSODomain is an email domain whose people may get an account at their
// first sign-in by SSO, with Role.
type SSODomain struct {
	Domain    string
	Role      Role
	CreatedAt time.Time
	CreatedBy string
}

// SSODomainRoles are the roles an allowed domain may give. Admin is not among
// them: an admin account is made by an admin, by hand.
var SSODomainRoles = []Role{RoleManager, RoleBoard, RoleInstaller}

// SSOStateLifetime is how long a sign-in started at the provider may take
// before its state is refused.
const SSOStateLifetime = 10 * time.Minute

// Validate checks an allowed domain and normalizes it (lower case, no "@").
func (d *SSODomain) Validate() error {
	v := Validation{}
	d.Domain = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d.Domain), "@"))
	switch {
	case d.Domain == "":
		v.Add("domain", "Enter a domain, like example.com.")
	case len(d.Domain) > 253 || !strings.Contains(d.Domain, ".") || strings.HasPrefix(d.Domain, ".") ||
		strings.HasSuffix(d.Domain, ".") || strings.Contains(d.Domain, ".."):
		v.Add("domain", "Enter a domain name, like example.com.")
	default:
		for _, r := range d.Domain {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				v.Add("domain", "Enter a domain name, like example.com: letters, digits, hyphens and dots.")
				break
			}
		}
	}
	ok := false
	for _, r := range SSODomainRoles {
		ok = ok || d.Role == r
	}
	if !ok {
		v.Add("role", "Choose a role: manager, board or installer (admins are made by hand).")
	}
	return v.Err()
}

// EmailDomain returns the domain of an address, lower case ("" without one).
func EmailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(email[i+1:])
}

// SSOService keeps the domains allowed to sign up by SSO and signs people in
// by the identity their provider vouched for. Every change and every sign-in
// (or refusal) is journaled.
type SSOService interface {
	// SSODomains lists the allowed domains (admins; EFORBIDDEN otherwise).
	SSODomains(ctx context.Context) ([]*SSODomain, error)
	// AllowSSODomain allows a domain with a role, or changes its role
	// (admins). EINVALID.
	AllowSSODomain(ctx context.Context, d SSODomain) (*SSODomain, error)
	// RemoveSSODomain stops a domain's sign-ups (admins); accounts already
	// made stay. ENOTFOUND.
	RemoveSSODomain(ctx context.Context, domain string) error

	// UseSSOState marks a sign-in's state as used, once: ECONFLICT when it
	// was used already (a replayed callback). States are kept until
	// SSOStateLifetime after their use, then forgotten.
	UseSSOState(ctx context.Context, state string) error
	// CheckSSOThrottle returns ETOOMANY when sign-ins from ip have failed
	// too often (LoginWindow), as the password sign-in counts them.
	CheckSSOThrottle(ctx context.Context, ip string) error
	// SSOFailed records a sign-in refused before an account was looked at
	// (a foreign or replayed state, a token that does not verify, an
	// unverified email): a failed attempt from ip, journaled with the reason.
	SSOFailed(ctx context.Context, issuer, email, ip, reason string) error
	// SSOSignIn signs in the account of id's verified email, recording the
	// attempt as a sign-in: EUNAUTHORIZED for an unverified email, an
	// unknown address whose domain is not allowed, or a disabled account;
	// ETOOMANY when the account or ip failed too often. An unknown address
	// of an allowed domain gets an account with the domain's role (and no
	// password). The journal says "signed in via <issuer>".
	SSOSignIn(ctx context.Context, id SSOIdentity, ip string) (*User, error)
}

// The refusals of SSOSignIn, the same words on every backend; reason is what
// the journal records (user.login_sso_failed).
var (
	// SSOReasonUnverified: the provider does not vouch for the address.
	SSOReasonUnverified = "email not verified by the provider"
	// SSOReasonUnknown: no account has the address and its domain is not allowed.
	SSOReasonUnknown = "no account with that email, and its domain is not allowed to sign up"
	// SSOReasonDisabled: the account is disabled.
	SSOReasonDisabled = "account disabled"
)

// SSORefusal is the error SSOSignIn returns for a reason above, in words for
// the person signing in (they proved the address at their provider, so the
// message may say whether it has an account here).
func SSORefusal(reason string, id SSOIdentity) error {
	switch reason {
	case SSOReasonUnverified:
		return Errorf(EUNAUTHORIZED, "Your email address %s is not verified at %s, so it cannot sign you in here. Verify it there, then sign in again.", id.Email, id.Issuer)
	case SSOReasonUnknown:
		return Errorf(EUNAUTHORIZED, "No account here has the address %s, and accounts for %s are not made by single sign-on. Ask an administrator of the portal to add you.", id.Email, EmailDomain(id.Email))
	case SSOReasonDisabled:
		return Errorf(EUNAUTHORIZED, "The account of %s is disabled. Ask an administrator of the portal.", id.Email)
	}
	return Errorf(EUNAUTHORIZED, "Single sign-on was refused: %s.", reason)
}

// SSOName is the name an account made by SSO starts with: the provider's
// name for the person, or the address's local part.
func SSOName(id SSOIdentity) string {
	if n := strings.TrimSpace(id.Name); n != "" && len(n) <= 200 && !strings.ContainsAny(n, "\r\n\t") {
		return n
	}
	name, _, _ := strings.Cut(id.Email, "@")
	return name
}
