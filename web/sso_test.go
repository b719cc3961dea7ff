package web_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/oidctest"
	"github.com/doorledger/doorledger/sso"
	"github.com/doorledger/doorledger/web"
	"golang.org/x/oauth2"
)

// The portal signs people in through a real OpenID provider (zitadel's op,
// internal/oidctest) on loopback: the browser's part is played by a client
// with a cookie jar that fills in the provider's login page.

// ssoUsers are the provider's people: the fixture's manager A and admin
// with verified addresses, board A's address unverified, and someone of a
// domain without accounts.
var ssoUsers = []oidctest.User{
	{Username: "manager", Password: "idp-password", Email: "manager.a@example.com", EmailVerified: true, First: "Manager", Last: "A"},
	{Username: "admin", Password: "idp-password", Email: "admin@example.com", EmailVerified: true, First: "Admin", Last: "One"},
	{Username: "board", Password: "idp-password", Email: "board.a@example.com", EmailVerified: false},
	{Username: "newcomer", Password: "idp-password", Email: "pat@newco.example", EmailVerified: true, First: "Pat", Last: "Newcomer"},
}

const ssoSecret = "portal-client-secret"

// ssoFixture is the portal's fixture with single sign-on through op, the
// verifier's clock set by now (nil: the real time).
type ssoFixture struct {
	*fixture
	op       *oidctest.Provider
	provider *sso.Provider
}

func newSSOFixture(t *testing.T, now func() time.Time) *ssoFixture {
	t.Helper()
	sf := &ssoFixture{}
	sf.fixture = newFixture(t, func(f *fixture, cfg *web.Config) {
		sf.op, sf.provider = startSSO(t, f, now)
		cfg.SSO = sf.provider
	})
	return sf
}

// withSSO is the fixture option of a portal with single sign-on through a
// provider of its own (the access tests: every route served as configured).
func withSSO(t *testing.T) func(f *fixture, cfg *web.Config) {
	return func(f *fixture, cfg *web.Config) { _, cfg.SSO = startSSO(t, f, nil) }
}

// startSSO starts a provider that knows f's portal and the portal's
// side of it, discovered.
func startSSO(t *testing.T, f *fixture, now func() time.Time) (*oidctest.Provider, *sso.Provider) {
	t.Helper()
	callback := f.http.URL + sso.CallbackPath
	op := oidctest.Start(t, []oidctest.Client{
		{ID: "doorledger", Secret: ssoSecret, RedirectURIs: []string{callback}},
		// Another application at the same provider, which (wrongly) lists the portal's callback too.
		{ID: "other-app", Secret: "other-secret", RedirectURIs: []string{callback}},
	}, ssoUsers)
	p := newSSOProvider(t, op.URL, callback, now)
	if err := p.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return op, p
}

func newSSOProvider(t *testing.T, issuer, callback string, now func() time.Time) *sso.Provider {
	t.Helper()
	p, err := sso.New(sso.Config{Issuer: issuer, ClientID: "doorledger", ClientSecret: ssoSecret, RedirectURL: callback,
		Name: "Example IdP", Now: now, Retry: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pressSSO presses "Sign in with …" and returns where the portal sends the browser.
func pressSSO(t *testing.T, c *client, next string) string {
	t.Helper()
	resp, body := c.post("/login/sso", url.Values{"next": {next}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login/sso: %d\n%.600s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// provide signs in at the provider and returns the callback the provider
// sends the browser to (not followed).
func provide(t *testing.T, c *client, authURL, username string) *url.URL {
	t.Helper()
	back := oidctest.SignIn(t, c.http, authURL, username, "idp-password")
	if !strings.HasPrefix(back.String(), c.base.String()+sso.CallbackPath+"?") {
		t.Fatalf("the provider sent the browser to %s", back)
	}
	return back
}

// callback follows the provider's redirect into the portal.
func callback(t *testing.T, c *client, back *url.URL) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, back.String(), nil)
	return c.do(req)
}

// ssoSignIn is the whole sign-in of username through the provider.
func (sf *ssoFixture) ssoSignIn(t *testing.T, c *client, username, next string) (*http.Response, string) {
	t.Helper()
	return callback(t, c, provide(t, c, pressSSO(t, c, next), username))
}

// lastEntries returns the journal's newest n entries, newest first.
func (f *fixture) lastEntries(t *testing.T, n int) []*doorledger.AuditEntry {
	t.Helper()
	return must(f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{Limit: n}))(t)
}

func wantRefused(t *testing.T, resp *http.Response, body string, status int, words string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, `id="sso-error"`) || !strings.Contains(body, words) {
		t.Fatalf("got %d, want %d and the sign-in page saying %q:\n%.3000s", resp.StatusCode, status, words, body)
	}
}

func TestSSOSignIn(t *testing.T) {
	sf := newSSOFixture(t, nil)
	c := sf.client()
	// A session this browser had before (board A's) ends at the SSO sign-in.
	c.login(sf.boardA.Email)
	old := c.cookie("dl_session")
	_, body := sf.client().get("/login")
	if !strings.Contains(body, "Sign in with Example IdP") || strings.Contains(body, "(unavailable)") {
		t.Fatalf("sign-in page without the SSO button:\n%.2000s", body)
	}
	auth := pressSSO(t, c, "/buildings")
	u, _ := url.Parse(auth)
	q := u.Query()
	if !strings.HasPrefix(auth, sf.op.URL+"/auth?") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != "doorledger" || q.Get("redirect_uri") != c.base.String()+sso.CallbackPath {
		t.Fatalf("auth URL %s", auth)
	}
	resp, body := callback(t, c, provide(t, c, auth, "manager"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/buildings" {
		t.Fatalf("callback: %d %q\n%.2000s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = c.get("/buildings")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Building A") || !strings.Contains(body, sf.managerA.Name) {
		t.Fatalf("after SSO: %d\n%.2000s", resp.StatusCode, body)
	}
	if c.cookie("dl_sso") != "" {
		t.Error("the flow's cookie outlived its callback")
	}
	e := sf.lastEntries(t, 1)[0]
	if e.Action != "user.login_sso" || e.ActorID != sf.managerA.ID || doorledger.AuditSentence(e) != "signed in via "+sf.op.URL {
		t.Errorf("journal: %s by %d: %q", e.Action, e.ActorID, doorledger.AuditSentence(e))
	}
	// The old session was replaced: its cookie signs no one in.
	stale := &client{tb: t, base: c.base, http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	stale.http.Jar, _ = cookiejar.New(nil)
	stale.http.Jar.SetCookies(c.base, []*http.Cookie{{Name: "dl_session", Value: old}})
	if resp, _ := stale.get("/buildings"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("the session before SSO still works: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// A callback is finished once: replayed by the same browser (its flow is
// gone), or with a copy of the flow's cookie (its state is used), it is
// refused, and so is a callback of a flow another browser started.
func TestSSOReplayedAndForeignState(t *testing.T) {
	sf := newSSOFixture(t, nil)
	c := sf.client()
	back := provide(t, c, pressSSO(t, c, "/"), "manager")
	flow := c.cookie("dl_sso")
	if flow == "" {
		t.Fatal("no flow cookie")
	}
	if resp, body := callback(t, c, back); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first callback: %d\n%.2000s", resp.StatusCode, body)
	}
	resp, body := callback(t, c, back)
	wantRefused(t, resp, body, http.StatusBadRequest, "not started in this browser")

	thief := sf.client()
	thief.http.Jar.SetCookies(c.base, []*http.Cookie{{Name: "dl_sso", Value: flow}})
	resp, body = callback(t, thief, back)
	wantRefused(t, resp, body, http.StatusBadRequest, "used already")
	if resp, _ := thief.get("/buildings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the replay signed in: %d", resp.StatusCode)
	}
	// Login CSRF: a victim's browser that started its own flow is handed
	// the attacker's callback.
	attacker, victim := sf.client(), sf.client()
	theirs := provide(t, attacker, pressSSO(t, attacker, "/"), "admin")
	pressSSO(t, victim, "/")
	resp, body = callback(t, victim, theirs)
	wantRefused(t, resp, body, http.StatusBadRequest, "not started in this browser")
	if resp, _ := victim.get("/buildings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the victim was signed in as the attacker: %d", resp.StatusCode)
	}
	found := false
	for _, e := range sf.lastEntries(t, 5) {
		found = found || e.Action == "user.login_sso_failed" && strings.Contains(doorledger.AuditSentence(e), "used already")
	}
	if !found {
		t.Error("the replay is not in the journal")
	}
}

// A code the provider issued to another application, sent to the portal's
// callback with the portal's state, is refused: the provider will not hand
// the portal tokens for another client. (The provider never gives the portal
// an ID token with another audience; the sso package's
// TestVerifyRefusesAnotherAudience gives such a token to the verifier.)
func TestSSOCodeForAnotherApplication(t *testing.T) {
	sf := newSSOFixture(t, nil)
	c := sf.client()
	auth, _ := url.Parse(pressSSO(t, c, "/"))
	other := oauth2.Config{ClientID: "other-app", RedirectURL: c.base.String() + sso.CallbackPath,
		Endpoint: oauth2.Endpoint{AuthURL: sf.op.URL + "/auth"}, Scopes: []string{"openid", "email"}}
	back := provide(t, c, other.AuthCodeURL(auth.Query().Get("state"), oauth2.SetAuthURLParam("nonce", auth.Query().Get("nonce"))), "manager")
	resp, body := callback(t, c, back)
	wantRefused(t, resp, body, http.StatusUnauthorized, "did not accept the sign-in")
	if resp, _ := c.get("/buildings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed in with another application's code: %d", resp.StatusCode)
	}
}

// The provider's ID tokens live an hour; the portal's clock two hours on
// refuses them.
func TestSSOExpiredToken(t *testing.T) {
	sf := newSSOFixture(t, func() time.Time { return time.Now().Add(2 * time.Hour) })
	c := sf.client()
	resp, body := sf.ssoSignIn(t, c, "manager", "/")
	wantRefused(t, resp, body, http.StatusUnauthorized, "expired")
	if resp, _ := c.get("/buildings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed in with an expired token: %d", resp.StatusCode)
	}
}

func TestSSOUnverifiedEmail(t *testing.T) {
	sf := newSSOFixture(t, nil)
	c := sf.client()
	resp, body := sf.ssoSignIn(t, c, "board", "/")
	wantRefused(t, resp, body, http.StatusUnauthorized, "is not verified at "+sf.op.URL)
	if resp, _ := c.get("/buildings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed in with an unverified address: %d", resp.StatusCode)
	}
	if e := sf.lastEntries(t, 1)[0]; e.Action != "user.login_sso_failed" || e.ActorID != sf.boardA.ID {
		t.Errorf("journal: %s by %d", e.Action, e.ActorID)
	}
}

// An address without an account is refused until an admin allows its
// domain; then it gets an account with the domain's role.
func TestSSOSignUpByAllowedDomain(t *testing.T) {
	sf := newSSOFixture(t, nil)
	c := sf.client()
	resp, body := sf.ssoSignIn(t, c, "newcomer", "/")
	wantRefused(t, resp, body, http.StatusUnauthorized, "No account here has the address pat@newco.example")
	if _, err := sf.users.FindUserByEmail(sys(), "pat@newco.example"); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("an account was made: %v", err)
	}

	admin := sf.client()
	admin.login(sf.admin.Email)
	resp, body = admin.post("/sso/domains", url.Values{"domain": {"newco.example"}, "role": {"admin"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "admins are made by hand") || !strings.Contains(body, `value="newco.example"`) {
		t.Fatalf("admin role for a domain: %d\n%.2000s", resp.StatusCode, body)
	}
	if resp, body := admin.post("/sso/domains", url.Values{"domain": {"newco.example"}, "role": {"installer"}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("allow: %d\n%.2000s", resp.StatusCode, body)
	}
	if _, body := admin.get("/sso"); !strings.Contains(body, "newco.example") || !strings.Contains(body, c.base.String()+sso.CallbackPath) {
		t.Fatalf("the page lacks the domain or the redirect URL:\n%.3000s", body)
	}

	resp, body = sf.ssoSignIn(t, c, "newcomer", "/")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up: %d\n%.2000s", resp.StatusCode, body)
	}
	u, err := sf.users.FindUserByEmail(sys(), "pat@newco.example")
	if err != nil || u.Role != doorledger.RoleInstaller || u.Name != "Pat Newcomer" {
		t.Fatalf("account: %+v %v", u, err)
	}
	if resp, body := c.get("/submissions"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the new installer's page: %d\n%.1000s", resp.StatusCode, body)
	}
	entries := sf.lastEntries(t, 2)
	if entries[1].Action != "user.create_sso" || entries[0].Action != "user.login_sso" {
		t.Errorf("journal: %s, %s", entries[1].Action, entries[0].Action)
	}
	// Removing the domain leaves the account.
	if resp, _ := admin.post("/sso/domains/newco.example/remove", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	if _, body := admin.get("/sso"); strings.Contains(body, `id="domain-newco.example"`) {
		t.Fatal("the domain is still listed")
	}
}

// SSO stands for the password, not the second factor: a role that requires
// one still goes through it.
func TestSSOSecondFactorStillRequired(t *testing.T) {
	sf := newSSOFixture(t, nil)
	if err := sf.factors.SetSecondFactorPolicy(sys(), []doorledger.Role{doorledger.RoleManager}); err != nil {
		t.Fatal(err)
	}
	c := sf.client()
	resp, body := sf.ssoSignIn(t, c, "manager", "/buildings")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/enrol" {
		t.Fatalf("callback: %d %q\n%.1000s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, _ := c.get("/buildings"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("signed in before the second factor: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := c.get("/login/enrol"); resp.StatusCode != http.StatusOK {
		t.Fatalf("enrol page: %d\n%.1000s", resp.StatusCode, body)
	}
}

// A disabled account is refused.
func TestSSODisabledAccount(t *testing.T) {
	sf := newSSOFixture(t, nil)
	yes := true
	if _, err := sf.users.UpdateUser(sys(), sf.managerA.ID, doorledger.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	c := sf.client()
	resp, body := sf.ssoSignIn(t, c, "manager", "/")
	wantRefused(t, resp, body, http.StatusUnauthorized, "is disabled")
}

// A provider down when the portal starts: the portal serves, the button
// says SSO is unavailable, and once the provider answers it works.
func TestSSOProviderDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var p *sso.Provider
	f := newFixture(t, func(f *fixture, cfg *web.Config) {
		p = newSSOProvider(t, "http://"+addr, f.http.URL+sso.CallbackPath, nil)
		cfg.SSO = p
	})
	c := f.client()
	_, body := c.get("/login")
	if !strings.Contains(body, "Sign in with Example IdP (unavailable)") {
		t.Fatalf("sign-in page:\n%.2000s", body)
	}
	resp, body := c.post("/login/sso", url.Values{"next": {"/"}}, "")
	wantRefused(t, resp, body, http.StatusServiceUnavailable, "does not answer right now")
	c.login(f.managerA.Email) // the password still signs in

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	oidctest.Serve(t, ln, []oidctest.Client{{ID: "doorledger", Secret: ssoSecret, RedirectURIs: []string{f.http.URL + sso.CallbackPath}}}, ssoUsers)
	// The button asks the provider again (not more often than Retry).
	deadline := time.Now().Add(20 * time.Second)
	for {
		c2 := f.client()
		resp, _ := c2.post("/login/sso", url.Values{"next": {"/"}}, "")
		if resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "http://"+addr+"/auth?") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SSO still unavailable after the provider started: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !p.Available() {
		t.Fatal("provider not available")
	}
}
