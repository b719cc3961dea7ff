package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/twofactor"
)

// An operator resets the second factor of a manager who lost their phone
// with `portal user reset-2fa EMAIL`: the next sign-in asks for no code.
func TestUserCommandResetSecondFactor(t *testing.T) {
	p := MustStartPortal(t, "")
	cli := func(args ...string) string { return userCLI(t, p.DataDir, args...) }
	m := regexp.MustCompile(`Password: (\S+)`).FindStringSubmatch(cli("add", "-email", "lost@example.com", "-name", "Lost", "-role", "manager"))
	if m == nil {
		t.Fatal("portal user add printed no password")
	}
	c := NewClient(t, p.URL)
	c.MustLogin("lost@example.com", m[1])
	_, _, body := c.Post("/account/second-factor", "/account/second-factor/totp", nil)
	key := regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`).FindStringSubmatch(body)
	if key == nil {
		t.Fatalf("no key on the setup page\n%.600s", body)
	}
	code, err := twofactor.CodeAt(strings.ReplaceAll(key[1], " ", ""), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := c.Post("/account/second-factor", "/account/second-factor/totp/confirm", url.Values{"code": {code}}); status != http.StatusOK || !strings.Contains(body, "Your recovery codes") {
		t.Fatalf("confirm: %d\n%.600s", status, body)
	}
	if status, loc, _ := NewClient(t, p.URL).Post("/login", "/login", url.Values{"email": {"lost@example.com"}, "password": {m[1]}}); status != http.StatusSeeOther || loc != "/login/second-factor" {
		t.Fatalf("with a second factor: %d %q, want the code asked", status, loc)
	}
	if out := cli("reset-2fa", "lost@example.com"); !strings.Contains(out, "Second factor of lost@example.com reset") {
		t.Fatalf("reset-2fa printed %q", out)
	}
	NewClient(t, p.URL).MustLogin("lost@example.com", m[1])
}

// userCLI runs `portal user ARGS -data DIR` as an operator would and returns
// what it printed.
func userCLI(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"user"}, append(args, "-data", dataDir)...), func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("portal user %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}
