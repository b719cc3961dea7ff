package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/doorledger/doorledger/internal/browsertest"
)

// Passkeys in the real browser, with Chrome's virtual authenticator (the
// DevTools WebAuthn domain): a manager registers one from their account
// page, signs in with it alone, and it stands for the second factor after
// the password and when an action asks again, its own removal included. The portal is reached at
// http://localhost: browsers refuse WebAuthn on an IP address.
func TestBrowserPasskeys(t *testing.T) {
	browsertest.Require(t)
	addr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	base := "http://localhost:" + port
	var offset atomic.Int64 // the portal's clock ahead of the machine's, moved by the test
	p := mustStartPortalHook(t, "", func(a *app) {
		a.sqliteDB().Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	}, nil, "-addr", addr, "-public-url", base)
	pass := regexp.MustCompile(`Password: (\S+)`).FindStringSubmatch(userCLI(t, p.DataDir, "add", "-email", "pk@example.com", "-name", "Pat Key", "-role", "manager"))[1]

	ctx := browsertest.NewTab(t, browsertest.Options{Timeout: 3 * time.Minute}) // many steps: on a loaded machine more than the default minute
	browsertest.Do(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
		return err
	}))
	browsertest.Navigate(t, ctx, base+"/login")
	browserSignIn(t, ctx, "pk@example.com", pass)

	// Register a passkey from the account page.
	browsertest.Navigate(t, ctx, base+"/account/second-factor")
	browsertest.Do(t, ctx, browsertest.SendKeys("#name", "virtual laptop"))
	browsertest.AwaitNavigation(t, ctx, browsertest.Click("#passkey-add"))
	if got := browsertest.WaitFor[string](t, ctx, "the passkey listed", `document.querySelector("#passkeys") && document.querySelector("#passkeys").innerText`); !strings.Contains(got, "virtual laptop") {
		t.Fatalf("passkeys listed: %q", got)
	}

	// Signed out, the passkey alone signs in.
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="/logout"] button`))
	browsertest.Navigate(t, ctx, base+"/login")
	browsertest.AwaitNavigation(t, ctx, browsertest.Click("#passkey-use"))
	if path := browsertest.WaitFor[string](t, ctx, "signed in", `location.pathname !== "/login" && location.pathname`); path != "/" {
		t.Fatalf("after the passkey: at %s\n%s", path, browsertest.Describe(ctx))
	}

	// After the password, the passkey stands for the second factor.
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="/logout"] button`))
	browsertest.Navigate(t, ctx, base+"/login")
	browserSignIn(t, ctx, "pk@example.com", pass)
	if path := browsertest.Eval[string](t, ctx, `location.pathname`); path != "/login/second-factor" {
		t.Fatalf("after the password: at %s, want the second factor asked", path)
	}
	browsertest.AwaitNavigation(t, ctx, browsertest.Click("#passkey-use"))
	if path := browsertest.WaitFor[string](t, ctx, "signed in", `location.pathname !== "/login/second-factor" && location.pathname`); path != "/" {
		t.Fatalf("after the passkey as second factor: at %s\n%s", path, browsertest.Describe(ctx))
	}

	// Sixteen minutes on, adding a signer asks again: the passkey answers,
	// and the signer typed before is added.
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, building, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Passkey Court"}, "address": {"1 Key St"}, "timezone": {"UTC"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create building: %d", status)
	}
	var uid string
	_, users := admin.Get("/users")
	if m := regexp.MustCompile(`href="/users/(\d+)">Pat Key<`).FindStringSubmatch(users); m != nil {
		uid = m[1]
	}
	if status, _, body := admin.Post(building, building+"/grants", url.Values{"user_id": {uid}}); status != http.StatusSeeOther {
		t.Fatalf("grant: %d\n%.400s", status, body)
	}
	offset.Store(int64(16 * time.Minute))
	browsertest.Navigate(t, ctx, base+building)
	browsertest.Do(t, ctx, browsertest.Click(`details:has(form[action="`+building+`/signers"]) > summary`), browsertest.SendKeys("#signer_name", "Ada Lovelace"), browsertest.SendKeys("#signer_title", "Owner"),
		browsertest.SendKeys("#signer_email", "ada@example.com"))
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="`+building+`/signers"] button[type="submit"]`))
	if h1 := browsertest.Eval[string](t, ctx, `document.querySelector("h1").innerText`); h1 != "Confirm it is you" {
		t.Fatalf("adding a signer 16 minutes on: %q, want the second factor asked\n%s", h1, browsertest.Describe(ctx))
	}
	browsertest.AwaitNavigation(t, ctx, browsertest.Click("#passkey-use"))
	browsertest.WaitFor[bool](t, ctx, "the building page", `location.pathname === "`+building+`"`)
	if _, page := admin.Get(building); !strings.Contains(page, "Ada Lovelace") {
		t.Fatalf("the signer was not added after the passkey")
	}

	// Half an hour on, removing the passkey asks again; the passkey answers
	// for its own removal, and the account page has none left.
	offset.Store(int64(45 * time.Minute))
	browsertest.Navigate(t, ctx, base+"/account/second-factor")
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`button[data-passkey-remove="virtual laptop"]`))
	if h1 := browsertest.Eval[string](t, ctx, `document.querySelector("h1").innerText`); h1 != "Confirm it is you" {
		t.Fatalf("removing the passkey half an hour on: %q, want the second factor asked\n%s", h1, browsertest.Describe(ctx))
	}
	browsertest.AwaitNavigation(t, ctx, browsertest.Click("#passkey-use"))
	browsertest.WaitFor[bool](t, ctx, "the account page", `location.pathname === "/account/second-factor"`)
	if got := browsertest.Eval[string](t, ctx, `document.body.innerText`); !strings.Contains(got, "Passkey removed.") ||
		browsertest.Eval[bool](t, ctx, `document.querySelector("#passkeys") !== null`) {
		t.Fatalf("after the removal:\n%s", got)
	}

	// The journal has the enrolment, the uses and the removal, by passkey.
	status, body := admin.Get("/audit")
	if status != http.StatusOK {
		t.Fatalf("audit: %d", status)
	}
	for _, want := range []string{`set up a second factor: passkey “virtual laptop”`, `proved their second factor: passkey “virtual laptop”`,
		`removed a second factor: passkey “virtual laptop”`} {
		if !strings.Contains(body, want) {
			t.Errorf("the journal lacks %q", want)
		}
	}
}
