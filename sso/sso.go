// Package sso signs people in through an OpenID Connect provider: the
// authorization code flow with PKCE (S256), state and nonce, the ID token
// verified by github.com/coreos/go-oidc/v3 (signature against the provider's
// published keys, which it fetches again when they rotate; issuer, audience,
// expiry) and the code exchanged by golang.org/x/oauth2. It knows nothing of
// accounts: it returns the doorledger.SSOIdentity the provider vouched for,
// and the web package matches it to an account through doorledger.SSOService.
//
// The provider is discovered in the background (Run): a provider that is down
// when the portal starts does not stop the portal, and sign-in by SSO is
// offered again once discovery succeeds.
package sso

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/doorledger/doorledger"
	"golang.org/x/oauth2"
)

// CallbackPath is where the provider sends the browser back: the redirect
// URL to register at the provider is the portal's public URL and this path.
const CallbackPath = "/login/sso/callback"

// ErrUnavailable: the provider has not been discovered (it did not answer).
var ErrUnavailable = errors.New("sso: the identity provider is unavailable")

// Config says which provider, and who the portal is to it.
type Config struct {
	Issuer       string // the provider's issuer URL (discovery at Issuer/.well-known/openid-configuration)
	ClientID     string
	ClientSecret string // never logged, never shown
	RedirectURL  string // the portal's public URL + CallbackPath
	// Name is what the button says: "Sign in with <Name>" (default: the
	// issuer's host).
	Name string
	// HTTPClient talks to the provider (nil: one with a 10-second timeout).
	HTTPClient *http.Client
	// Now is the clock ID tokens' expiry is checked by (nil: time.Now).
	Now func() time.Time
	// Retry is the first wait between failed discoveries, doubling up to
	// MaxRetry (defaults 5 s and 5 min).
	Retry, MaxRetry time.Duration
	Logger          *slog.Logger
}

// String keeps the client secret out of any print of the configuration.
func (c Config) String() string {
	return fmt.Sprintf("sso.Config{Issuer:%s ClientID:%s ClientSecret:(%d bytes) RedirectURL:%s Name:%s}",
		c.Issuer, c.ClientID, len(c.ClientSecret), c.RedirectURL, c.Name)
}

// Provider is one OpenID provider, discovered or not yet.
type Provider struct {
	cfg Config

	mu       sync.Mutex
	redirect string
	op       *oidc.Provider // nil until discovered
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
	lastErr  error
	lastTry  time.Time
}

// New checks cfg and returns the provider, not yet discovered: no network.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("sso: issuer %q: want an http(s) URL", cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("sso: a client id is needed with the issuer")
	}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("sso: a client secret is needed with the issuer")
	}
	if cfg.Name == "" {
		cfg.Name = u.Host
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.MaxRetry < cfg.Retry {
		cfg.MaxRetry = max(5*time.Minute, cfg.Retry)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Provider{cfg: cfg, redirect: cfg.RedirectURL}, nil
}

// Issuer is the configured issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Name is the provider's name on the button.
func (p *Provider) Name() string { return p.cfg.Name }

// SetRedirectURL sets the redirect URL once the portal's address is known
// (a portal started on port 0 without -public-url).
func (p *Provider) SetRedirectURL(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.redirect = u
	p.oauth.RedirectURL = u
}

// RedirectURL is the redirect URL to register at the provider.
func (p *Provider) RedirectURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.redirect
}

// AuthOrigin is the origin (scheme://host) of the provider's authorization
// endpoint, where the browser is sent; "" until discovered.
func (p *Provider) AuthOrigin() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op == nil {
		return ""
	}
	u, err := url.Parse(p.oauth.Endpoint.AuthURL)
	if err != nil || u.Host == "" || strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Available reports whether the provider was discovered.
func (p *Provider) Available() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.op != nil
}

// Discover fetches the provider's configuration once; nil once discovered.
func (p *Provider) Discover(ctx context.Context) error {
	if p.Available() {
		return nil
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.cfg.HTTPClient), p.cfg.Issuer)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastTry = time.Now()
	if err != nil {
		p.lastErr = err
		return fmt.Errorf("sso: discover %s: %w", p.cfg.Issuer, err)
	}
	p.op, p.lastErr = op, nil
	// The key set is fetched with the provider's client, in the
	// background of any request (its context outlives this one).
	p.verifier = op.VerifierContext(oidc.ClientContext(context.Background(), p.cfg.HTTPClient),
		&oidc.Config{ClientID: p.cfg.ClientID, Now: p.cfg.Now})
	p.oauth = oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		Endpoint:     op.Endpoint(),
		RedirectURL:  p.redirect,
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}
	return nil
}

// TryDiscover discovers the provider now unless a try was made within the
// first retry interval (a sign-in while the provider was down asks again,
// without hammering it).
func (p *Provider) TryDiscover(ctx context.Context) bool {
	p.mu.Lock()
	recent := time.Since(p.lastTry) < p.cfg.Retry
	p.mu.Unlock()
	if !recent {
		if err := p.Discover(ctx); err != nil {
			p.cfg.Logger.Warn("single sign-on unavailable", "issuer", p.cfg.Issuer, "err", err)
		}
	}
	return p.Available()
}

// Run discovers the provider, trying again with a growing wait until it
// answers or ctx ends. The portal starts it in the background.
func (p *Provider) Run(ctx context.Context) {
	wait := p.cfg.Retry
	for {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.Discover(tctx)
		cancel()
		if err == nil {
			p.cfg.Logger.Info("single sign-on ready", "issuer", p.cfg.Issuer)
			return
		}
		p.cfg.Logger.Warn("single sign-on unavailable, trying again", "issuer", p.cfg.Issuer, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, p.cfg.MaxRetry)
	}
}

// Flow is one sign-in started in a browser: what the callback must find.
type Flow struct {
	State, Nonce, Verifier string
}

// NewFlow makes a fresh state and nonce (256 random bits each) and a PKCE
// verifier.
func NewFlow() Flow {
	return Flow{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthCodeURL is where the browser goes to sign in at the provider:
// the code flow with f's state, nonce and S256 challenge.
func (p *Provider) AuthCodeURL(f Flow) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op == nil {
		return "", ErrUnavailable
	}
	return p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), nil
}

// Exchange trades the code the provider sent back for tokens, with f's
// verifier, and returns who signed in: the ID token verified (signature,
// issuer, audience, expiry, and f's nonce); the email from the token, or from
// the provider's userinfo for the same subject when the token has none.
// A refusal is a *RefusedError saying what went wrong in words.
func (p *Provider) Exchange(ctx context.Context, code string, f Flow) (*doorledger.SSOIdentity, error) {
	p.mu.Lock()
	op, oauth := p.op, p.oauth
	p.mu.Unlock()
	if op == nil {
		return nil, ErrUnavailable
	}
	ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, refused("the provider did not accept the sign-in's code", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refused("the provider sent no ID token", nil)
	}
	id, err := p.Verify(ctx, raw, f.Nonce)
	if err != nil {
		return nil, err
	}
	if id.Email == "" {
		info, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, refused("the provider's userinfo did not answer", err)
		}
		if info.Subject != id.Subject {
			return nil, refused("the provider's userinfo is about someone else", nil)
		}
		var c claims
		if err := info.Claims(&c); err != nil {
			return nil, refused("the provider's userinfo could not be read", err)
		}
		id.Email, id.EmailVerified = c.Email, bool(c.EmailVerified)
		if id.Name == "" {
			id.Name = c.Name
		}
	}
	return id, nil
}

// claims are the ID token's and userinfo's claims the portal reads.
type claims struct {
	Email         string     `json:"email"`
	EmailVerified stringBool `json:"email_verified"`
	Name          string     `json:"name"`
}

// stringBool reads a boolean claim sent as a JSON boolean or, as some
// providers do, as the string "true" or "false".
type stringBool bool

func (b *stringBool) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseBool(strings.Trim(string(data), `"`))
	if err != nil {
		return fmt.Errorf("email_verified: %s is not a boolean", data)
	}
	*b = stringBool(v)
	return nil
}

// Verify checks a raw ID token as Exchange does (signature, issuer,
// audience = the client id, expiry by Config.Now, and nonce) and returns its
// identity.
func (p *Provider) Verify(ctx context.Context, raw, nonce string) (*doorledger.SSOIdentity, error) {
	p.mu.Lock()
	v := p.verifier
	p.mu.Unlock()
	if v == nil {
		return nil, ErrUnavailable
	}
	t, err := v.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case errors.As(err, &expired):
			return nil, refused("the provider's ID token has expired (check the clocks of the portal and the provider)", err)
		case strings.Contains(err.Error(), "audience"):
			return nil, refused("the provider's ID token is for another application", err)
		case strings.Contains(err.Error(), "issuer"):
			return nil, refused("the provider's ID token is from another issuer", err)
		}
		return nil, refused("the provider's ID token does not verify", err)
	}
	if t.Nonce != nonce || nonce == "" {
		return nil, refused("the provider's ID token is not for this sign-in (nonce)", nil)
	}
	var c claims
	if err := t.Claims(&c); err != nil {
		return nil, refused("the provider's ID token could not be read", err)
	}
	return &doorledger.SSOIdentity{Issuer: p.cfg.Issuer, Subject: t.Subject, Email: c.Email,
		EmailVerified: bool(c.EmailVerified), Name: c.Name}, nil
}

// RefusedError is a sign-in the provider's answer did not carry: what the
// person is told, and the cause for the log.
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Err == nil {
		return "sso: " + e.Reason
	}
	return "sso: " + e.Reason + ": " + e.Err.Error()
}

func (e *RefusedError) Unwrap() error { return e.Err }

func refused(reason string, err error) error { return &RefusedError{Reason: reason, Err: err} }
