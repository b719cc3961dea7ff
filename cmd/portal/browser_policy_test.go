package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// The second signer of an ordered request, on their phone (390x844): the
// page says whom it waits for, with who signs and who has, and no sideways
// scroll; once the President signed it takes the signature.
func TestBrowserSecondSignerPhone(t *testing.T) {
	browsertest.Require(t)
	w := newBoardWorld(t)
	if status, body := w.setPolicy(t, url.Values{"required": {"2"}, "roles": {"President", "Treasurer"}, "ordered": {"1"}, "reminder_days": {"2, 5"}, "expiry_days": {"14"}}); status != http.StatusSeeOther {
		t.Fatalf("policy: %d\n%s", status, body)
	}
	_, consent, _ := w.ask(t, "SN-PHONE", "Paula Prez", "Tom Trent")
	tom := w.linkTo(t, "tom@example.com", "/sign/")

	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
	if resp := browsertest.Navigate(t, ctx, w.p.URL+tom); resp.Status != http.StatusOK {
		t.Fatalf("Tom's page: %d\n%s", resp.Status, browsertest.Describe(ctx))
	}
	type page struct {
		Waiting string `json:"waiting"`
		Signers string `json:"signers"`
		Form    bool   `json:"form"`
	}
	const read = `({waiting: (document.getElementById("waiting-turn") || {textContent: ""}).textContent.trim(),
		signers: (document.getElementById("request-signers") || {textContent: ""}).textContent.replace(/\s+/g, " "),
		form: !!document.getElementById("sign-form")})`
	got := browsertest.Eval[page](t, ctx, read)
	if !strings.Contains(got.Waiting, "Waiting for the President (Paula Prez)") || got.Form ||
		!strings.Contains(got.Signers, "Paula Prez, President") || !strings.Contains(got.Signers, "Tom Trent, Treasurer (you)") {
		t.Fatalf("Tom's page before Paula signed: %+v\n%s", got, browsertest.Describe(ctx))
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "second-signer-waiting.png"))

	if status, body := w.sign(t, w.linkTo(t, "paula@example.com", "/sign/"), "Paula Prez"); status != http.StatusOK {
		t.Fatalf("Paula: %d\n%s", status, body)
	}
	browsertest.Navigate(t, ctx, w.p.URL+tom)
	got = browsertest.Eval[page](t, ctx, read)
	if got.Waiting != "" || !got.Form || !strings.Contains(got.Signers, "Paula Prez, President — signed") {
		t.Fatalf("Tom's page after Paula signed: %+v\n%s", got, browsertest.Describe(ctx))
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	browsertest.Do(t, ctx,
		browsertest.Click(`#sign-form input[name="agree"]`),
		browsertest.SendKeys("#typed_name", "Tom Trent"),
	)
	drawSignature(t, ctx)
	browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "second-signer-turn.png"))
	resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click("#sign-submit"))
	if h1 := readPage(t, ctx).H1; resp.Status != http.StatusOK || h1 != "Thank you: consent signed" {
		t.Fatalf("Tom signs: %d %q\n%s", resp.Status, h1, browsertest.Describe(ctx))
	}
	if state := w.deviceState(t, consent); state != "enabled" {
		t.Fatalf("device %s after both signed", state)
	}
}
