package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// The public notice and the report form on a phone (390×844): no sideways
// scroll, no script, the devices listed; an empty report is answered with the
// message beside the field, a filled one is sent. The page is read and the
// forms are filled and submitted inside the page (one JavaScript task each):
// these pages have no htmx or live region, so a loaded page is settled.
func TestBrowserResidentNotice(t *testing.T) {
	w := seedResidentWorld(t)
	p, _, mgr := w.start(t)
	notice := w.noticePath(t, mgr)
	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
	shots := browsertest.ScreenshotDir(t)

	if resp := browsertest.Navigate(t, ctx, p.URL+notice); resp.Status != http.StatusOK {
		t.Fatalf("notice: %d", resp.Status)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	type noticeState struct {
		H1      string   `json:"h1"`
		Devices []string `json:"devices"`
		Scripts int      `json:"scripts"`
	}
	st := browsertest.Eval[noticeState](t, ctx, `({h1: document.querySelector("h1").textContent,
		devices: [...document.querySelectorAll("article.notice-device header strong")].map(e => e.textContent),
		scripts: document.scripts.length})`)
	if st.H1 != "Who can open this door?" || len(st.Devices) != 5 || st.Scripts != 0 {
		t.Fatalf("notice on a phone: %+v", st)
	}
	browsertest.Screenshot(t, ctx, filepath.Join(shots, "resident-notice-phone.png"))

	browsertest.AwaitNavigation(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#report a[role="button"]').click()`))
	if got := readPage(t, ctx); got.Path != notice+"/report" || got.H1 != "Report a device that is not listed" {
		t.Fatalf("report form: %+v", got)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)

	// Sent empty: the message is beside the field, on a page that still fits.
	resp := browsertest.AwaitNavigation(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("report-form").requestSubmit()`))
	if resp.Status != http.StatusUnprocessableEntity {
		t.Fatalf("empty report: %d", resp.Status)
	}
	if msg := browsertest.Eval[string](t, ctx, `document.getElementById("location-error")?.textContent ?? ""`); !strings.Contains(msg, "Say where you saw the device") {
		t.Errorf("message beside the location: %q", msg)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)

	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("location").value = "a black box with a blue light, inside the intercom panel by the main door";
		document.getElementById("contact").value = "resident.2a@example.net"`))
	browsertest.Screenshot(t, ctx, filepath.Join(shots, "resident-report-phone.png"))
	resp = browsertest.AwaitNavigation(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("report-form").requestSubmit()`))
	if got := readPage(t, ctx); resp.Status != http.StatusOK || got.H1 != "Thank you: your report was sent" {
		t.Fatalf("report: %d %+v", resp.Status, got)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	if _, page := mgr.Get(w.building); !strings.Contains(page, "a black box with a blue light") {
		t.Error("the report is not on the building page")
	}
}
