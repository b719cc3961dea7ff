package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/chromedp/cdproto/network"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// TestMain shares one Chromium across the package's browser tests and closes
// it at the end. Without Chromium those tests skip (see browsertest.Require).
// It stops the PostgreSQL cluster too, if a test started it; the cluster is
// durable (fsync on) when benchmarks run, as db/postgres's (issue 15).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		pgCluster.Durable = true
	}
	code := pgCluster.Main(m)
	browsertest.Shutdown()
	os.Exit(code)
}

const loginSubmit = `form[action="/login"] button[type="submit"]`

// browserSignIn types the credentials into the sign-in form on the current
// page, clicks "Sign in", and returns the response of the page it lands on.
func browserSignIn(t *testing.T, ctx context.Context, email, password string) *network.Response {
	t.Helper()
	browsertest.Do(t, ctx,
		browsertest.Clear("#email"),
		browsertest.SendKeys("#email", email),
		browsertest.SendKeys("#password", password),
	)
	return browsertest.AwaitNavigation(t, ctx, browsertest.Click(loginSubmit))
}

// pageState is what the tests read from a page in one round trip.
type pageState struct {
	Path      string `json:"path"`
	Title     string `json:"title"`
	H1        string `json:"h1"`
	Lead      string `json:"lead"`      // the line under the h1
	FormError string `json:"formError"` // the form's alert, if any
}

const pageStateJS = `(() => {
	const text = (sel) => { const el = document.querySelector(sel); return el ? el.textContent.trim() : ""; };
	return {path: location.pathname, title: document.title, h1: text("main h1"),
		lead: text("main hgroup p"), formError: text("main .form-error")};
})()`

func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	return browsertest.Eval[pageState](t, ctx, pageStateJS)
}

func TestBrowserSignInCreateBuilding(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	if p.AdminPass == "" {
		t.Fatalf("first start printed no admin password:\n%s", p.Stdout.String())
	}
	const (
		name     = "Zürich Tower — Łódź"
		address  = "Bahnhofstrasse 1, 8001 Zürich"
		timezone = "Europe/Zurich"
	)
	var buildingPath string // set by the desktop flow, used at phone size

	t.Run("wrong password", func(t *testing.T) {
		ctx := browsertest.NewTab(t, browsertest.Options{})
		if resp := browsertest.Navigate(t, ctx, p.URL+"/login"); resp.Status != http.StatusOK {
			t.Fatalf("GET /login: %d", resp.Status)
		}
		resp := browserSignIn(t, ctx, testAdminEmail, p.AdminPass+"-wrong")
		if resp.Status != http.StatusUnauthorized {
			t.Errorf("wrong password: status %d, want %d", resp.Status, http.StatusUnauthorized)
		}
		got := readPage(t, ctx)
		if got.Path != "/login" || got.H1 != "Sign in" || got.FormError != "The email or password is not right." {
			t.Errorf("wrong password: page %+v, want the sign-in form with \"The email or password is not right.\"", got)
		}
		if v := browsertest.Eval[string](t, ctx, `document.getElementById("email").value`); v != testAdminEmail {
			t.Errorf("email field after a wrong password: %q, want the typed %q", v, testAdminEmail)
		}
		if v := browsertest.Eval[string](t, ctx, `document.getElementById("password").value`); v != "" {
			t.Errorf("password field after a wrong password: %q, want it empty", v)
		}

		// The kept email is used as it is: typing only the password signs in.
		browsertest.Do(t, ctx, browsertest.SendKeys("#password", p.AdminPass))
		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(loginSubmit))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != "/" {
			t.Errorf("second try: status %d, page %+v, want the first screen /", resp.Status, got)
		}
	})

	t.Run("desktop", func(t *testing.T) {
		ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Desktop})
		browsertest.Navigate(t, ctx, p.URL+"/login")
		resp := browserSignIn(t, ctx, testAdminEmail, p.AdminPass)
		got := readPage(t, ctx)
		if resp.Status != http.StatusOK || got.Path != "/" || got.H1 != "What needs attention" {
			t.Fatalf("after sign-in: status %d, page %+v, want the attention list", resp.Status, got)
		}
		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`//header//a[normalize-space(.)="Buildings"]`))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != "/buildings" || got.H1 != "Buildings" {
			t.Fatalf("Buildings: status %d, page %+v, want the buildings list", resp.Status, got)
		}

		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`//main//a[normalize-space(.)="New building"]`))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != "/buildings/new" || got.H1 != "New building" {
			t.Fatalf("New building: status %d, page %+v", resp.Status, got)
		}
		browsertest.Do(t, ctx,
			browsertest.SendKeys("#name", name),
			browsertest.SendKeys("#address", address),
			browsertest.SendKeys("#timezone", timezone),
		)
		// Click Save rather than press Enter: the time zone field has a
		// datalist, whose suggestion list can take the Enter key.
		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="/buildings"] button[type="submit"]`))
		got = readPage(t, ctx)
		if resp.Status != http.StatusOK || !regexp.MustCompile(`^/buildings/\d+$`).MatchString(got.Path) {
			t.Fatalf("after Save: status %d, page %+v, want a building page", resp.Status, got)
		}
		buildingPath = got.Path
		if got.H1 != name || got.Title != name+" · Doorledger" {
			t.Errorf("building page: h1 %q, title %q; want %q", got.H1, got.Title, name)
		}
		if got.Lead != address+" · "+timezone {
			t.Errorf("building page lead %q, want %q", got.Lead, address+" · "+timezone)
		}

		// Back to the list through the navigation bar.
		browsertest.AwaitNavigation(t, ctx, browsertest.Click(`header nav a[href="/buildings"]`))
		if got := readPage(t, ctx); got.Path != "/buildings" {
			t.Fatalf("nav Buildings: page %+v", got)
		}
		rows := browsertest.Eval[[][]string](t, ctx, `[...document.querySelectorAll("main table tbody tr")].map(tr =>
			[...tr.cells].map(td => td.textContent.trim()).concat(tr.querySelector("a") ? [tr.querySelector("a").getAttribute("href")] : []))`)
		if !slices.ContainsFunc(rows, func(r []string) bool {
			return slices.Equal(r, []string{name, address, timezone, "—", buildingPath}) // "—": nothing needs attention
		}) {
			t.Errorf("buildings list %q does not list %q at %s", rows, name, buildingPath)
		}
	})

	t.Run("phone", func(t *testing.T) {
		ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
		browsertest.Navigate(t, ctx, p.URL+"/login")
		o := browsertest.MeasureOverflow(t, ctx)
		t.Logf("login page at phone size: scrollWidth %d, innerWidth %d, clientWidth %d", o.ScrollWidth, o.InnerWidth, o.ClientWidth)
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)

		resp := browserSignIn(t, ctx, testAdminEmail, p.AdminPass)
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != "/" {
			t.Fatalf("sign-in at phone size: status %d, page %+v", resp.Status, got)
		}
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
		browsertest.Navigate(t, ctx, p.URL+"/buildings")
		if buildingPath == "" {
			t.Skip("the desktop flow created no building to look at")
		}
		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`main table a[href="`+buildingPath+`"]`))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.H1 != name {
			t.Fatalf("building page at phone size: status %d, page %+v", resp.Status, got)
		}
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
		browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "building-phone.png"))
	})
}
