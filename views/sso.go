package views

import "github.com/doorledger/doorledger"

// SSOButton is what the sign-in page shows of single sign-on.
type SSOButton struct {
	Name      string // the provider's name ("" : no SSO configured)
	Available bool   // the provider was discovered: the button works
	Error     string // why the last sign-in by SSO was refused, shown beside it
}

// SSODomainsView is the admins' page of single sign-on: the provider as
// configured, and the domains allowed to sign up.
type SSODomainsView struct {
	Issuer      string // "" : no provider configured
	RedirectURL string // what to register at the provider
	Available   bool
	Domains     []*doorledger.SSODomain
	Form        Form
}
