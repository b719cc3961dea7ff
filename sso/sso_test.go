package sso_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/oidctest"
	"github.com/doorledger/doorledger/sso"
)

const redirect = "http://portal.test" + sso.CallbackPath

var (
	portal = oidctest.Client{ID: "doorledger", Secret: "portal-secret", RedirectURIs: []string{redirect}}
	other  = oidctest.Client{ID: "other-app", Secret: "other-secret", RedirectURIs: []string{"http://other.test/cb"}}
	users  = []oidctest.User{
		{Username: "alice", Password: "alice-password", Email: "alice@example.com", EmailVerified: true, First: "Alice", Last: "Doe"},
		{Username: "mallory", Password: "mallory-password", Email: "mallory@example.com", EmailVerified: false},
	}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newProvider is the portal's side, discovered, with clock now.
func newProvider(t *testing.T, issuer string, now func() time.Time) *sso.Provider {
	t.Helper()
	p, err := sso.New(sso.Config{Issuer: issuer, ClientID: portal.ID, ClientSecret: portal.Secret, RedirectURL: redirect, Now: now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// signIn runs the browser's part: to the provider, signed in as username,
// back with a code for f's state.
func signIn(t *testing.T, p *sso.Provider, f sso.Flow, username, password string) string {
	t.Helper()
	u, err := p.AuthCodeURL(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "code_challenge_method=S256") || !strings.Contains(u, "nonce=") {
		t.Fatalf("auth URL without PKCE or nonce: %s", u)
	}
	jar, _ := cookiejar.New(nil)
	back := oidctest.SignIn(t, &http.Client{Jar: jar}, u, username, password)
	if got := back.String(); !strings.HasPrefix(got, redirect+"?") {
		t.Fatalf("sent back to %s", got)
	}
	if got := back.Query().Get("state"); got != f.State {
		t.Fatalf("state %q, want %q", got, f.State)
	}
	return back.Query().Get("code")
}

func refusal(t *testing.T, err error, want string) {
	t.Helper()
	var r *sso.RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Reason, want) {
		t.Fatalf("err = %v, want a refusal saying %q", err, want)
	}
}

func TestExchangeVerifiedIdentity(t *testing.T) {
	op := oidctest.Start(t, []oidctest.Client{portal, other}, users)
	p := newProvider(t, op.URL, nil)
	f := sso.NewFlow()
	id, err := p.Exchange(context.Background(), signIn(t, p, f, "alice", "alice-password"), f)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "alice@example.com" || !id.EmailVerified || id.Issuer != op.URL || id.Subject == "" || id.Name != "Alice Doe" {
		t.Fatalf("identity %+v", id)
	}
	// The provider vouches for mallory's address but not as verified.
	f = sso.NewFlow()
	id, err = p.Exchange(context.Background(), signIn(t, p, f, "mallory", "mallory-password"), f)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "mallory@example.com" || id.EmailVerified {
		t.Fatalf("identity %+v, want an unverified address", id)
	}
}

// The code is bound to the flow's PKCE verifier and the token to its nonce.
func TestExchangeRefusesAnotherFlow(t *testing.T) {
	op := oidctest.Start(t, []oidctest.Client{portal}, users)
	p := newProvider(t, op.URL, nil)
	f := sso.NewFlow()
	code := signIn(t, p, f, "alice", "alice-password")
	wrongVerifier := f
	wrongVerifier.Verifier = sso.NewFlow().Verifier
	_, err := p.Exchange(context.Background(), code, wrongVerifier)
	refusal(t, err, "did not accept the sign-in's code")

	f = sso.NewFlow()
	code = signIn(t, p, f, "alice", "alice-password")
	wrongNonce := f
	wrongNonce.Nonce = "another-nonce"
	_, err = p.Exchange(context.Background(), code, wrongNonce)
	refusal(t, err, "not for this sign-in")

	// A code is good once.
	f = sso.NewFlow()
	code = signIn(t, p, f, "alice", "alice-password")
	if _, err := p.Exchange(context.Background(), code, f); err != nil {
		t.Fatal(err)
	}
	_, err = p.Exchange(context.Background(), code, f)
	refusal(t, err, "did not accept")
}

// A token the provider issued to another application is refused by its
// audience. The provider hands the portal only tokens for the portal (the
// code is exchanged with the portal's credentials), so the other client's
// token is obtained through its own flow and given to the portal's verifier.
func TestVerifyRefusesAnotherAudience(t *testing.T) {
	op := oidctest.Start(t, []oidctest.Client{portal, other}, users)
	p := newProvider(t, op.URL, nil)
	raw := op.IDToken(t, other, "alice", "alice-password", "n-1")
	_, err := p.Verify(context.Background(), raw, "n-1")
	refusal(t, err, "for another application")
	// The same flow for the portal's client verifies.
	raw = op.IDToken(t, oidctest.Client{ID: portal.ID, Secret: portal.Secret, RedirectURIs: portal.RedirectURIs}, "alice", "alice-password", "n-2")
	if _, err := p.Verify(context.Background(), raw, "n-2"); err != nil {
		t.Fatal(err)
	}
}

// The provider's tokens live an hour: a verifier whose clock is two hours on
// refuses them.
func TestExchangeRefusesExpiredToken(t *testing.T) {
	op := oidctest.Start(t, []oidctest.Client{portal}, users)
	p := newProvider(t, op.URL, func() time.Time { return time.Now().Add(2 * time.Hour) })
	f := sso.NewFlow()
	_, err := p.Exchange(context.Background(), signIn(t, p, f, "alice", "alice-password"), f)
	refusal(t, err, "expired")
}

// A provider down at start is not discovered; Run keeps trying and finds it
// once it answers.
func TestDiscoveryRetriesUntilTheProviderAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := sso.New(sso.Config{Issuer: "http://" + addr, ClientID: portal.ID, ClientSecret: portal.Secret, RedirectURL: redirect,
		Retry: 20 * time.Millisecond, MaxRetry: 50 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Discover(context.Background()); err == nil || p.Available() {
		t.Fatalf("discovered a provider that is down: %v", err)
	}
	if _, err := p.AuthCodeURL(sso.NewFlow()); !errors.Is(err, sso.ErrUnavailable) {
		t.Fatalf("auth URL while down: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	oidctest.Serve(t, ln, []oidctest.Client{portal}, users)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not discover the provider within 30 s")
	}
	if !p.Available() {
		t.Fatal("not available after Run returned")
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for _, c := range []sso.Config{
		{Issuer: "idp.example.com", ClientID: "a", ClientSecret: "b"},
		{Issuer: "https://idp.example.com", ClientSecret: "b"},
		{Issuer: "https://idp.example.com", ClientID: "a"},
	} {
		if _, err := sso.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	c := sso.Config{Issuer: "https://idp.example.com", ClientID: "a", ClientSecret: "hunter2-secret"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %s", c, c, c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the configuration prints its secret: %s", s)
		}
	}
}
