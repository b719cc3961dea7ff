package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// In the browser: a live page whose session ends (here by "log out
// everywhere" from another browser) stops its stream instead of reconnecting,
// and says so with a reload notice.
func TestBrowserLiveRegionEndsWithSession(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	ctx := browsertest.NewTab(t, browsertest.Options{})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, testAdminEmail, p.AdminPass); resp.Status != http.StatusOK {
		t.Fatalf("sign in: %d", resp.Status)
	}
	browsertest.Navigate(t, ctx, p.URL+"/devices?started=1")
	state := func() string {
		return browsertest.Eval[string](t, ctx, `(() => { const r = document.getElementById("progress"); return r ? (r.getAttribute("data-live") || "") : "no region"; })()`)
	}
	await := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second) // a failure bound: the stream ticks every second
		for state() != want {
			if time.Now().After(deadline) {
				t.Fatalf("live region: %q after 15 s, want %q\n%s", state(), want, browsertest.Describe(ctx))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	await("open")

	other := NewClient(t, p.URL)
	other.MustLogin(testAdminEmail, p.AdminPass)
	if status, _, body := other.Post("/buildings", "/logout/everywhere", nil); status != http.StatusSeeOther {
		t.Fatalf("log out everywhere: %d\n%s", status, body)
	}
	await("ended")
	notice := browsertest.Eval[string](t, ctx, `document.getElementById("live-ended").textContent`)
	if !strings.Contains(notice, "your session has ended") || !strings.Contains(notice, "Reload") {
		t.Errorf("notice %q, want the session-ended message and a Reload link", notice)
	}
	browsertest.CheckConsole(t, ctx)
}
