package views

import (
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
)

// TOTPSetupView is an authenticator app being set up: the QR code to scan,
// the key to type instead, and where the confirming code is posted.
type TOTPSetupView struct {
	Action string // the form's action
	QR     string // a data: URL of the QR code's PNG
	Secret string
	SignIn bool // set up at sign-in, because the user's role requires it
}

// SecretGroups writes a key in groups of four, as it is typed.
func SecretGroups(secret string) string {
	var b strings.Builder
	for i, r := range secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RecoveryCodesView shows new recovery codes, once.
type RecoveryCodesView struct {
	Codes    []string
	Continue string // where to go next
}

// AccountSecondFactorView is a user's own second-factor page.
type AccountSecondFactorView struct {
	Factors  *doorledger.SecondFactors
	Keys     []*doorledger.Passkey
	Required bool   // their role must have one
	Passkeys bool   // the portal offers passkeys
	Form     Form   // the passkey form, re-rendered
	Refused  string // why the removal of a second factor was refused
}

// StepUpView asks for the second factor again before an action goes on:
// the action's form is posted again with its fields and the code.
type StepUpView struct {
	Action string       // the path the form was posted to
	Fields []FormHidden // the form's fields, kept
	What   string       // what the action does, in words
}

// FormHidden is a field carried through a page unchanged.
type FormHidden struct{ Name, Value string }

// SecondFactorPolicyView is the admin's page of roles required to have a second factor.
type SecondFactorPolicyView struct {
	Required map[doorledger.Role]bool
}

// SecondFactorRoles are the roles that may have a second factor, in the order the policy form lists them.
var SecondFactorRoles = []doorledger.Role{doorledger.RoleAdmin, doorledger.RoleManager}

// factorSummary says in words what second factors a user has.
func factorSummary(f *doorledger.SecondFactors) string {
	if f == nil || !f.Any() {
		return "None."
	}
	var parts []string
	if f.TOTP {
		parts = append(parts, "Authenticator app, set up "+UTC(f.TOTPAt))
	}
	if f.Passkeys > 0 {
		parts = append(parts, plural(f.Passkeys, "1 passkey", strconv.Itoa(f.Passkeys)+" passkeys"))
	}
	parts = append(parts, plural(f.RecoveryLeft, "1 recovery code", strconv.Itoa(f.RecoveryLeft)+" recovery codes")+" left")
	return strings.Join(parts, "; ") + "."
}
