// Package oidctest starts a real OpenID provider for tests: the `op` package
// of github.com/zitadel/oidc/v3 with its example storage and login page
// (example/server/exampleop), on a loopback listener, serving discovery,
// keys, the authorization endpoint with PKCE, the token and userinfo
// endpoints. Only tests import it.
package oidctest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// User is a person known to the provider.
type User struct {
	Username, Password string
	Email              string
	EmailVerified      bool
	First, Last        string
}

// Client is an application registered at the provider (a confidential web
// client: secret by HTTP Basic, code flow).
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Provider is a running provider.
type Provider struct {
	URL string // the issuer
	srv *http.Server
}

// Start starts a provider on a fresh loopback port.
func Start(tb testing.TB, clients []Client, users []User) *Provider {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return Serve(tb, ln, clients, users)
}

// Serve starts a provider on ln (an address a test reserved earlier, to
// start the provider after the portal); it stops at the test's end.
func Serve(tb testing.TB, ln net.Listener, clients []Client, users []User) *Provider {
	tb.Helper()
	issuer := "http://" + ln.Addr().String()
	cs := map[string]*storage.Client{}
	for _, c := range clients {
		cs[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	st := storage.NewStorageWithClients(newUserStore(users), cs)
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := &http.Server{Handler: router}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	tb.Cleanup(func() { srv.Close() })
	return &Provider{URL: issuer, srv: srv}
}

// userStore is the example storage's UserStore over users.
type userStore struct{ users map[string]*storage.User }

func newUserStore(users []User) userStore {
	s := userStore{users: map[string]*storage.User{}}
	for i, u := range users {
		id := fmt.Sprintf("user-%d", i+1)
		s.users[id] = &storage.User{ID: id, Username: u.Username, Password: u.Password, FirstName: u.First, LastName: u.Last,
			Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English}
	}
	return s
}

func (s userStore) GetUserByID(id string) *storage.User { return s.users[id] }

func (s userStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}

func (s userStore) ExampleClientID() string { return "service" }

var idField = regexp.MustCompile(`name="id" value="([^"]+)"`)

// SignIn answers the provider's login page that client's GET of authURL
// leads to, as a person typing username and password, and returns the
// redirect the provider then sends (the client's redirect URI with code and
// state, or an error), without following it.
func SignIn(tb testing.TB, client *http.Client, authURL, username, password string) *url.URL {
	tb.Helper()
	start, err := url.Parse(authURL)
	if err != nil {
		tb.Fatal(err)
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == start.Host {
			return nil // the provider's own pages
		}
		return http.ErrUseLastResponse
	}
	resp, err := c.Get(authURL)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := idField.FindSubmatch(body)
	if m == nil {
		tb.Fatalf("the provider's login page has no auth request id (%s): %s", resp.Status, body)
	}
	resp, err = c.PostForm(resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"}).String(),
		url.Values{"id": {string(m[1])}, "username": {username}, "password": {password}})
	if err != nil {
		tb.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		tb.Fatalf("the provider did not send the browser back (%s): %s", resp.Status, body)
	}
	return loc
}

// IDToken runs the code flow with PKCE for client as username and returns
// the raw ID token the provider issues (with nonce): a token for that client,
// to hand to another application's verifier.
func (p *Provider) IDToken(tb testing.TB, client Client, username, password, nonce string) string {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	cfg := oauth2.Config{ClientID: client.ID, ClientSecret: client.Secret, RedirectURL: client.RedirectURIs[0],
		Endpoint: oauth2.Endpoint{AuthURL: p.URL + "/auth", TokenURL: p.URL + "/oauth/token"}, Scopes: []string{"openid", "email"}}
	verifier := oauth2.GenerateVerifier()
	loc := SignIn(tb, hc, cfg.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)), username, password)
	code := loc.Query().Get("code")
	if code == "" {
		tb.Fatalf("no code: %s", loc)
	}
	tok, err := cfg.Exchange(context.WithValue(context.Background(), oauth2.HTTPClient, hc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		tb.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		tb.Fatal("no id_token")
	}
	return raw
}
