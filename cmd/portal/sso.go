package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/doorledger/doorledger/sso"
)

// ssoConfig is single sign-on's part of the configuration: the OpenID
// provider and the portal's client at it (docs/operations.md, "Single sign-on").
type ssoConfig struct {
	Issuer   string
	ClientID string
	Secret   string // from DOORLEDGER_OIDC_CLIENT_SECRET or a file: never a flag (flags show in ps), never logged
	Name     string // the button's "Sign in with <Name>"
}

// String keeps the secret out of any print of the configuration.
func (c ssoConfig) String() string {
	return fmt.Sprintf("{Issuer:%s ClientID:%s Secret:(%d bytes) Name:%s}", c.Issuer, c.ClientID, len(c.Secret), c.Name)
}

// addSSOFlags declares the flags of single sign-on on fs, each defaulting to
// its environment variable, and returns the check to run after fs.Parse,
// which reads the secret.
func addSSOFlags(fs *flag.FlagSet, getenv func(string) string, c *ssoConfig) func() error {
	fs.StringVar(&c.Issuer, "oidc-issuer", getenv("DOORLEDGER_OIDC_ISSUER"), "sign in through this OpenID Connect provider, by its issuer URL, e.g. https://login.example.com; with -oidc-client-id and the client secret (env DOORLEDGER_OIDC_ISSUER)")
	fs.StringVar(&c.ClientID, "oidc-client-id", getenv("DOORLEDGER_OIDC_CLIENT_ID"), "the portal's client id at the OpenID provider (env DOORLEDGER_OIDC_CLIENT_ID)")
	secretFile := fs.String("oidc-client-secret-file", getenv("DOORLEDGER_OIDC_CLIENT_SECRET_FILE"), "a file holding the portal's client secret at the OpenID provider, instead of DOORLEDGER_OIDC_CLIENT_SECRET (env DOORLEDGER_OIDC_CLIENT_SECRET_FILE)")
	fs.StringVar(&c.Name, "oidc-name", getenv("DOORLEDGER_OIDC_NAME"), "the provider's name on the sign-in button, \"Sign in with NAME\" (default: the issuer's host) (env DOORLEDGER_OIDC_NAME)")
	return func() error {
		c.Secret = getenv("DOORLEDGER_OIDC_CLIENT_SECRET")
		if *secretFile != "" {
			if c.Secret != "" {
				return fmt.Errorf("the OIDC client secret is given twice: DOORLEDGER_OIDC_CLIENT_SECRET and -oidc-client-secret-file")
			}
			b, err := os.ReadFile(*secretFile)
			if err != nil {
				return fmt.Errorf("-oidc-client-secret-file: %w", err)
			}
			c.Secret = strings.TrimSpace(string(b))
		}
		if c.Issuer == "" {
			if c.ClientID != "" || c.Secret != "" {
				return fmt.Errorf("-oidc-client-id and the client secret go with -oidc-issuer")
			}
			return nil
		}
		// Checked now, so that a mistake stops the start rather than the first sign-in.
		_, err := sso.New(sso.Config{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.Secret})
		return err
	}
}

// startSSO makes the provider of cfg (nil without one) and discovers it in
// the background: a provider that does not answer does not hold the
// portal's start; its button says so until it answers. It returns the stop
// of the discovery, which waits for it to end.
func startSSO(ctx context.Context, cfg *config, now func() time.Time, log *slog.Logger) (*sso.Provider, func(), error) {
	c := cfg.SSO
	if c.Issuer == "" {
		return nil, func() {}, nil
	}
	redirect := ""
	if cfg.PublicURL != "" {
		redirect = strings.TrimRight(cfg.PublicURL, "/") + sso.CallbackPath
	}
	p, err := sso.New(sso.Config{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.Secret, Name: c.Name,
		RedirectURL: redirect, Now: now, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	return p, func() { cancel(); <-done }, nil
}
