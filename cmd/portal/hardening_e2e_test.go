package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Behind a reverse proxy that ends TLS the portal itself serves
// plain HTTP, but its public URL is https: cookies are then Secure with the
// __Host- prefix. Without either, plain-HTTP localhost keeps plain cookies.
func TestPublicHTTPSURLMakesCookiesSecure(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		secure bool
	}{
		{[]string{"-public-url", "https://doors.example.test"}, true},
		{nil, false},
	} {
		p := MustStartPortal(t, "", tc.args...)
		resp, err := http.Get(p.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		var found bool
		for _, ck := range resp.Cookies() {
			if strings.HasSuffix(ck.Name, "dl_csrf") {
				found = true
				if strings.HasPrefix(ck.Name, "__Host-") != tc.secure || ck.Secure != tc.secure {
					t.Errorf("%v: cookie %s Secure %v, want __Host- and Secure: %v", tc.args, ck.Name, ck.Secure, tc.secure)
				}
			}
		}
		if !found {
			t.Errorf("%v: no CSRF cookie on /login: %v", tc.args, resp.Header.Values("Set-Cookie"))
		}
		p.Stop(t)
	}
}

func TestConfigSecure(t *testing.T) {
	for _, tc := range []struct {
		cfg  config
		want bool
	}{
		{config{}, false},
		{config{PublicURL: "http://127.0.0.1:8080"}, false},
		{config{PublicURL: "https://doors.example.test"}, true},
		{config{PublicURL: "HTTPS://doors.example.test/portal"}, true},
		{config{TLSCert: "cert.pem", TLSKey: "key.pem"}, true},
	} {
		if got := tc.cfg.secure(); got != tc.want {
			t.Errorf("%+v: secure() = %v, want %v", tc.cfg, got, tc.want)
		}
	}
}

// The first admin's password from the environment may be longer
// than bcrypt's 72 bytes (the portal did not start with one before), and the
// passwords `portal user` prints sign in.
func TestLongAdminPasswordFromEnvironment(t *testing.T) {
	pass := strings.Repeat("a long operator passphrase ", 4) // 108 bytes
	p := MustStartPortalEnv(t, "", map[string]string{"DOORLEDGER_ADMIN_PASSWORD": pass})
	NewClient(t, p.URL).MustLogin(testAdminEmail, pass)
}

// The passwords `portal user add` and `reset-password` print (generated, so
// never long) are hashed as every other path does and sign in.
func TestUserCommandPasswordsSignIn(t *testing.T) {
	p := MustStartPortal(t, "")
	cli := func(args ...string) string { return userCLI(t, p.DataDir, args...) }
	m := regexp.MustCompile(`Password: (\S+)`).FindStringSubmatch(cli("add", "-email", "op@example.com", "-name", "Op", "-role", "manager"))
	if m == nil {
		t.Fatal("portal user add printed no password")
	}
	NewClient(t, p.URL).MustLogin("op@example.com", m[1])
	m2 := regexp.MustCompile(`New password for op@example.com: (\S+)`).FindStringSubmatch(cli("reset-password", "-email", "op@example.com"))
	if m2 == nil {
		t.Fatal("portal user reset-password printed no password")
	}
	NewClient(t, p.URL).MustLogin("op@example.com", m2[1])
	if status, _, _ := NewClient(t, p.URL).Post("/login", "/login", url.Values{"email": {"op@example.com"}, "password": {m[1]}}); status != http.StatusUnauthorized {
		t.Fatalf("the password before the reset: %d, want 401", status)
	}
}
