package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// The attention list in the browser: the manager's first screen says "Nothing needs
// you"; a device found without consent, recorded by another client, appears
// on it without a reload (its stream), and its link leads to the device's
// page, where it is resolved.
func TestBrowserAttentionGoesLive(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, building, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Cedar Court"}, "address": {"1 Cedar St"}, "timezone": {"America/New_York"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create building: %d", status)
	}
	if status, _, body := admin.Post("/users/new", "/users", url.Values{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}}); status != http.StatusSeeOther {
		t.Fatalf("create manager: %d\n%s", status, body)
	}
	_, body := admin.Get("/users")
	m := regexp.MustCompile(`href="/users/(\d+)">Mia Manager`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("manager not listed")
	}
	if status, _, _ := admin.Post(building, building+"/grants", url.Values{"user_id": {m[1]}}); status != http.StatusSeeOther {
		t.Fatalf("grant: %d", status)
	}

	ctx := browsertest.NewTab(t, browsertest.Options{})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, "mia@example.com", "correct horse battery"); resp.Status != http.StatusOK {
		t.Fatalf("sign in: %d", resp.Status)
	}
	if got := readPage(t, ctx); got.Path != "/" || got.H1 != "What needs attention" {
		t.Fatalf("first screen after sign-in: %+v, want the attention list", got)
	}
	if text := browsertest.Eval[string](t, ctx, `document.getElementById("attention").textContent`); !strings.Contains(text, "Nothing needs you.") ||
		!strings.Contains(text, "Last checked") {
		t.Fatalf("empty attention list reads %q", text)
	}

	// Another client (the manager on a phone) records a device found in the panel.
	other := NewClient(t, p.URL)
	other.MustLogin("mia@example.com", "correct horse battery")
	status, device, body := other.Post(building, building+"/devices/found", url.Values{"vendor": {"Ghost"}, "model": {"G1"}, "serial": {"GH-7"}, "location": {"intercom panel"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(device, "/devices/") {
		t.Fatalf("record found device: %d %q\n%s", status, device, body)
	}
	link := `#attention li[data-kind="unconsented"] a[href="` + device + `"]`
	browsertest.WaitFor[bool](t, ctx, "the found device on the live attention list",
		`!!document.querySelector('`+link+`') && document.querySelector('#attention li[data-kind="unconsented"]').textContent.includes("1 device found without consent")`)
	if path := browsertest.Eval[string](t, ctx, `location.pathname`); path != "/" {
		t.Fatalf("the list changed by navigating to %s, not live", path)
	}

	resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click(link))
	if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != device {
		t.Fatalf("the item's link: status %d, page %+v, want the device's page %s", resp.Status, got, device)
	}
	if text := browsertest.Eval[string](t, ctx, `document.querySelector("main").textContent`); !strings.Contains(text, "GH-7") {
		t.Errorf("device page does not show the device found")
	}
	browsertest.CheckConsole(t, ctx)
}
