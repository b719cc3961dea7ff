package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// sessionOnly returns a fresh client that carries only the given session cookie.
func (f *fixture) sessionOnly(value string) *client {
	c := f.client()
	c.http.Jar.SetCookies(c.base, []*http.Cookie{{Name: "dl_session", Value: value, Path: "/"}})
	return c
}

func signedIn(c *client) bool {
	c.tb.Helper()
	resp, _ := c.get("/buildings")
	return resp.StatusCode == http.StatusOK
}

func TestSessionRenewedAtLogin(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.managerA.Email)
	first := c.cookie("dl_session")
	c.login(f.managerA.Email) // signing in again in the same browser
	second := c.cookie("dl_session")
	if first == "" || first == second {
		t.Fatalf("session cookie not renewed at login: %q then %q", first, second)
	}
	if !signedIn(f.sessionOnly(second)) {
		t.Fatal("new session cookie refused")
	}
	if signedIn(f.sessionOnly(first)) {
		t.Fatal("the session replaced at login still works")
	}
}

func TestSavedCookieRefusedAfterLogoutEverywhere(t *testing.T) {
	f := newFixture(t)
	laptop, phone := f.client(), f.client()
	laptop.login(f.boardA.Email)
	phone.login(f.boardA.Email)
	saved := phone.cookie("dl_session")
	if resp, _ := laptop.post("/logout/everywhere", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout everywhere: %d", resp.StatusCode)
	}
	if signedIn(f.sessionOnly(saved)) || signedIn(phone) || signedIn(laptop) {
		t.Fatal("a saved cookie still works after logout everywhere")
	}
}

func TestSavedCookieRefusedAfterLogoutPasswordAndDisable(t *testing.T) {
	f := newFixture(t)
	// Logout ends this browser's session on the server, not only its cookie.
	c := f.client()
	c.login(f.managerA.Email)
	saved := c.cookie("dl_session")
	c.post("/logout", nil, "")
	if signedIn(f.sessionOnly(saved)) {
		t.Fatal("cookie saved before logout still works")
	}
	// Password change ends every session.
	other := f.client()
	other.login(f.managerA.Email)
	c.login(f.managerA.Email)
	resp, body := c.post("/account/password", url.Values{"current": {testPassword}, "password": {"a brand new passphrase"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change password: %d\n%s", resp.StatusCode, body)
	}
	if signedIn(other) || signedIn(c) {
		t.Fatal("sessions survive a password change")
	}
	// Disabling an account ends its sessions.
	board := f.client()
	board.login(f.boardA.Email)
	admin := f.client()
	admin.login(f.admin.Email)
	resp, body = admin.post(fmt.Sprintf("/users/%d", f.boardA.ID), url.Values{"name": {"Board A"}, "role": {"board"}, "disabled": {"1"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d\n%s", resp.StatusCode, body)
	}
	if signedIn(board) {
		t.Fatal("a disabled account is still signed in")
	}
}

func countBuildings(t *testing.T, f *fixture) int {
	list, err := f.buildings.FindBuildings(sys())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func TestCSRF(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.admin.Email)
	before := countBuildings(t, f)
	form := func() url.Values {
		return url.Values{"name": {"Forged"}, "address": {"1 Forged St"}, "timezone": {"UTC"}}
	}
	for name, token := range map[string]string{"missing": "-", "invalid": "not-the-token"} {
		resp, body := c.post("/buildings", form(), token)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not come from Doorledger") {
			t.Errorf("%s token: %d, want 403 with a clear page\n%.300s", name, resp.StatusCode, body)
		}
	}
	// A browser that says the request is cross-site is refused whatever it carries.
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+"/buildings", strings.NewReader(form().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := c.do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", resp.StatusCode)
	}
	if got := countBuildings(t, f); got != before {
		t.Fatalf("buildings: %d, want %d: a forged request wrote", got, before)
	}
	// With the token it works.
	if resp, _ := c.post("/buildings", form(), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("with token: %d", resp.StatusCode)
	}
}

func TestLoginThrottlingPerAccount(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for i := 0; i < 10; i++ {
		resp, body := c.post("/login", url.Values{"email": {f.boardA.Email}, "password": {"wrong password " + fmt.Sprint(i)}}, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "The email or password is not right.") {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
		if !strings.Contains(body, `value="`+f.boardA.Email+`"`) {
			t.Fatalf("failure %d: the typed email was not kept", i+1)
		}
	}
	// The 11th try is refused even with the right password, with a retry time.
	resp, body := c.post("/login", url.Values{"email": {f.boardA.Email}, "password": {testPassword}}, "")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Try again in") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 failures: %d %q\n%.400s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Another account from the same address is not locked by this one's failures.
	f.client().login(f.managerA.Email)

	// Every attempt is in the journal.
	entries, err := (f.audit()).FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range entries {
		counts[e.Action]++
	}
	if counts["user.login_failed"] != 10 || counts["user.login_throttled"] != 1 || counts["user.login"] < 1 {
		t.Fatalf("journal of sign-in attempts: %v", counts)
	}
}

func TestLoginThrottlingPerIP(t *testing.T) {
	f := newFixture(t)
	f.db.LoginIPLimit = 5
	c := f.client()
	for i := 0; i < 5; i++ {
		c.post("/login", url.Values{"email": {fmt.Sprintf("nobody%d@example.com", i)}, "password": {"guess"}}, "")
	}
	resp, _ := c.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}}, "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d failures from one IP across accounts: %d, want 429", 5, resp.StatusCode)
	}
}

func TestSecurityHeadersAndLimits(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for _, path := range []string{"/login", "/no/such/page", "/static/app.css", "/healthz"} {
		resp, _ := c.get(path)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline script", path)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: missing nosniff or Referrer-Policy", path)
		}
	}
	// An oversized body is refused before it is read.
	c.login(f.admin.Email)
	big := url.Values{"name": {strings.Repeat("x", 2<<20)}, "address": {"a"}, "timezone": {"UTC"}}
	resp, body := c.post("/buildings", big, "")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") {
		t.Fatalf("oversized body: %d\n%.300s", resp.StatusCode, body)
	}
}

func TestExpiredSessionGetsClearPage(t *testing.T) {
	f := newFixture(t)
	c := f.sessionOnly("forged-or-expired-cookie")
	resp, _ := c.get("/buildings")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
		t.Fatalf("bad cookie: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A form posted after the session ended goes to sign-in, writing nothing.
	before := countBuildings(t, f)
	resp, _ = c.post("/buildings", url.Values{"name": {"Late"}, "address": {"x"}, "timezone": {"UTC"}}, "")
	if resp.StatusCode != http.StatusSeeOther || countBuildings(t, f) != before {
		t.Fatalf("post with expired session: %d", resp.StatusCode)
	}
}

// A fragment htmx polls or posts after the session ended (a report's status,
// a revoke button) is not answered with the login page, which htmx would
// swap into the fragment's place: 401 and HX-Redirect send the whole page to
// sign in, and back to the page the user was on.
func TestExpiredSessionHTMXRedirectsPage(t *testing.T) {
	f := newFixture(t)
	c := f.sessionOnly("forged-or-expired-cookie")
	for _, tc := range []struct{ current, want string }{
		{c.base.String() + "/buildings/1/reports/3?x=1", "/login?next=" + url.QueryEscape("/buildings/1/reports/3?x=1")},
		{"https://evil.example//elsewhere", "/login?next=" + url.QueryEscape("/")},
		{"", "/login?next=" + url.QueryEscape("/")},
	} {
		req, _ := http.NewRequest(http.MethodGet, c.base.String()+"/reports/3/status", nil)
		req.Header.Set("HX-Request", "true")
		if tc.current != "" {
			req.Header.Set("HX-Current-URL", tc.current)
		}
		resp, body := c.do(req)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != tc.want || strings.Contains(body, "<form") {
			t.Errorf("from %q: %d HX-Redirect %q body %.80q; want 401 to %q", tc.current, resp.StatusCode, resp.Header.Get("HX-Redirect"), body, tc.want)
		}
	}
}
