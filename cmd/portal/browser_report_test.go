package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// TestBrowserReport requests a report in headless Chromium at phone size:
// the range warning appears as the date changes (htmx, under the CSP),
// and the report's page follows the generator by polling its status
// fragment, without a reload, until the download is offered.
func TestBrowserReport(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, _, _ := consentedDevice(t, p)
	reports := buildingOf(t, mgr, device) + "/reports"

	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone, Timeout: 45 * time.Second})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, "mia@example.com", "correct horse battery"); resp.Status != 200 {
		t.Fatalf("manager sign-in: status %d", resp.Status)
	}
	// Count the status fragment's requests from each page's first script on.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.__polls = 0;
		document.addEventListener("htmx:afterRequest", (e) => { if (/\/status$/.test(e.detail.pathInfo.requestPath)) window.__polls++; });`}); err != nil {
		t.Fatal(err)
	}
	browsertest.Navigate(t, ctx, p.URL+reports)
	if got := readPage(t, ctx); got.H1 != "Audit reports" || !strings.Contains(got.Lead, "dates in America/Chicago") {
		t.Fatalf("reports page: %+v", got)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	shots := browsertest.ScreenshotDir(t)

	// A start date two years back: the warning appears beside the form, the
	// page is not reloaded.
	browsertest.Do(t, ctx,
		chromedp.Evaluate[chromedp.Void](`window.__mark = "no reload"`),
		browsertest.SetValue("#from", "2024-01-01"))
	warning := browsertest.WaitFor[string](t, ctx, "the warning for a range over a year", `(() => { const w = document.getElementById("range-warning"); return w ? w.textContent : null; })()`)
	if !strings.Contains(warning, "more than a year") || browsertest.Eval[string](t, ctx, `window.__mark || ""`) != "no reload" {
		t.Errorf("warning %q, or the page reloaded", warning)
	}

	browsertest.Screenshot(t, ctx, filepath.Join(shots, "reports-phone.png"))

	// Request the evidence bundle (the slowest format) of those dates.
	browsertest.Do(t, ctx, browsertest.Click(`input[name="format"][value="bundle"]`))
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="`+reports+`"] button[type="submit"]`))
	path := readPage(t, ctx).Path
	if !reportPathRE.MatchString(path) {
		t.Fatalf("after the request: %s\n%s", path, browsertest.Describe(ctx))
	}
	first := browsertest.Eval[string](t, ctx, `(window.__mark = "no reload", document.getElementById("report-status").dataset.status)`)
	if _, err := browsertest.Wait[bool](ctx, `document.querySelector('#report-status[data-status="done"] #download') !== null`); err != nil {
		t.Fatalf("the report's page never offered the download (first %s): %v\n%s\nportal log:\n%s", first, err, browsertest.Describe(ctx), p.Stderr.String())
	}
	polls := browsertest.Eval[int](t, ctx, `window.__polls`)
	t.Logf("report status at first paint: %s; status requests until done: %d", first, polls)
	if browsertest.Eval[string](t, ctx, `window.__mark || ""`) != "no reload" {
		t.Errorf("the report's page reloaded instead of polling its fragment")
	}
	if first != "done" && polls == 0 {
		t.Errorf("the page showed %s and then done without asking for its status", first)
	}
	// A finished report's fragment asks no more: nothing on the page polls
	// (htmx polls only for an "every" trigger).
	if pollers := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("[hx-trigger*=every], [data-hx-trigger*=every]")].map(el => el.outerHTML.slice(0, 120))`); len(pollers) != 0 {
		t.Errorf("the finished report's page still polls: %q", pollers)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	browsertest.Screenshot(t, ctx, filepath.Join(shots, "report-phone.png"))
	if n := browsertest.Eval[int](t, ctx, `window.__polls`); n != polls {
		t.Errorf("%d more status requests after the report was done", n-polls)
	}
}
