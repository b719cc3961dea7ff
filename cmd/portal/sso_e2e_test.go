package main

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
	"github.com/doorledger/doorledger/internal/oidctest"
	"github.com/doorledger/doorledger/sso"
)

const ssoTestSecret = "e2e-oidc-client-secret-do-not-print"

// ssoPortal starts a real OpenID provider and the portal configured for it
// as an operator would (flags and the secret in the environment or a file),
// on a port reserved first so that the redirect URL can be registered at
// the provider before the portal starts.
func ssoPortal(t *testing.T, secretFromFile bool) (*Portal, *oidctest.Provider) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	op := oidctest.Start(t, []oidctest.Client{{ID: "doorledger", Secret: ssoTestSecret, RedirectURIs: []string{"http://" + addr + sso.CallbackPath}}},
		[]oidctest.User{{Username: "operator", Password: "idp-password", Email: testAdminEmail, EmailVerified: true, First: "Op", Last: "Erator"}})
	args := []string{"-addr", addr, "-oidc-issuer", op.URL, "-oidc-client-id", "doorledger", "-oidc-name", "Example IdP"}
	env := map[string]string{}
	if secretFromFile {
		file := filepath.Join(t.TempDir(), "oidc-secret")
		if err := os.WriteFile(file, []byte(ssoTestSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env["DOORLEDGER_OIDC_CLIENT_SECRET_FILE"] = file
	} else {
		env["DOORLEDGER_OIDC_CLIENT_SECRET"] = ssoTestSecret
	}
	p := MustStartPortalEnv(t, "", env, args...)
	return p, op
}

func TestEndToEndSSO(t *testing.T) {
	for _, fromFile := range []bool{false, true} {
		p, op := ssoPortal(t, fromFile)
		if want := "Single sign-on through " + op.URL + " (redirect URL to register there: " + p.URL + sso.CallbackPath + ")"; !strings.Contains(p.Stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, p.Stdout.String())
		}
		c := NewClient(t, p.URL)
		if _, body := c.Get("/login"); !strings.Contains(body, "Sign in with Example IdP") {
			t.Fatalf("no SSO button:\n%.2000s", body)
		}
		status, loc, body := c.Post("/login", "/login/sso", url.Values{"next": {"/buildings"}})
		if status != http.StatusSeeOther || !strings.HasPrefix(loc, op.URL+"/auth?") {
			t.Fatalf("POST /login/sso: %d %q\n%.1000s", status, loc, body)
		}
		back := oidctest.SignIn(t, c.http, loc, "operator", "idp-password")
		resp, err := c.http.Get(back.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The first admin has a password alone here: it lands signed in
		// (a policy requiring admins' second factor would send it to enrol).
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/buildings" {
			t.Fatalf("callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if status, body := c.Get("/audit"); status != http.StatusOK || !strings.Contains(body, "signed in via "+op.URL) {
			t.Fatalf("the journal does not say so: %d\n%.3000s", status, body)
		}
		for name, out := range map[string]string{"stdout": p.Stdout.String(), "stderr": p.Stderr.String()} {
			if strings.Contains(out, ssoTestSecret) {
				t.Errorf("the client secret is printed on %s", name)
			}
		}
		p.Stop(t)
	}
}

func TestSSOConfigRefused(t *testing.T) {
	getenv := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-oidc-issuer", "https://idp.example.com"}, map[string]string{"DOORLEDGER_OIDC_CLIENT_SECRET": "s"}, "client id"},
		{[]string{"-oidc-issuer", "https://idp.example.com", "-oidc-client-id", "x"}, nil, "client secret"},
		{[]string{"-oidc-client-id", "x"}, nil, "go with -oidc-issuer"},
		{[]string{"-oidc-issuer", "idp.example.com", "-oidc-client-id", "x"}, map[string]string{"DOORLEDGER_OIDC_CLIENT_SECRET": "s"}, "http(s) URL"},
		{[]string{"-oidc-issuer", "https://idp.example.com", "-oidc-client-id", "x", "-oidc-client-secret-file", "/nonexistent/secret"}, nil, "-oidc-client-secret-file"},
		{[]string{"-oidc-issuer", "https://idp.example.com", "-oidc-client-id", "x", "-oidc-client-secret-file", "/dev/null"},
			map[string]string{"DOORLEDGER_OIDC_CLIENT_SECRET": "s"}, "given twice"},
	} {
		_, err := parseServe(tc.args, getenv(tc.env), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error saying %q", tc.args, tc.env, err, tc.want)
		}
	}
	cfg, err := parseServe([]string{"-oidc-issuer", "https://idp.example.com", "-oidc-client-id", "x"},
		getenv(map[string]string{"DOORLEDGER_OIDC_CLIENT_SECRET": "hunter2-secret"}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.SSO.String(); strings.Contains(s, "hunter2") {
		t.Errorf("the configuration prints the secret: %s", s)
	}
}

// A person clicks "Sign in with …", signs in on the provider's own login
// page, and lands in the portal signed in.
func TestBrowserSSOSignIn(t *testing.T) {
	browsertest.Require(t)
	p, op := ssoPortal(t, false)
	ctx := browsertest.NewTab(t, browsertest.Options{})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click(`#sso-button`))
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, op.URL+"/login/username") {
		t.Fatalf("after the SSO button: %d %s", resp.Status, resp.URL)
	}
	browsertest.Do(t, ctx,
		browsertest.SendKeys("#username", "operator"),
		browsertest.SendKeys("#password", "idp-password"),
	)
	resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`button[type="submit"]`))
	got := readPage(t, ctx)
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, p.URL) || got.Path != "/" || got.H1 != "What needs attention" {
		t.Fatalf("after the provider's login: %d %s, page %+v", resp.Status, resp.URL, got)
	}
}
