package browsertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// step derives the deadline of one helper call from the tab's context.
func step(ctx context.Context) (context.Context, context.CancelFunc) {
	d := DefaultStepTimeout
	if t := tabOf(ctx); t != nil {
		d = t.stepTimeout
	}
	return context.WithTimeout(ctx, d)
}

// Do runs actions in the tab and fails the test, describing the page, on the
// first error. It does not wait for a navigation a click causes: use
// AwaitNavigation for that.
//
// Act with this package's Click, SendKeys, SetValue, Clear and
// SetUploadFiles, not chromedp's node actions (chromedp.Click, SendKeys,
// SetValue, Value, Text, AttributeValue…): those find a node id in one round
// trip and act on it in the next, and an htmx swap in between fails them with
// "Could not find node with given id" (see the package doc).
func Do(tb testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		tb.Fatalf("browser: %v\n%s", err, Describe(ctx))
	}
}

// Run runs one action that returns a value, and fails the test on error.
func Run[T any](tb testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		tb.Fatalf("browser: %v\n%s", err, Describe(ctx))
	}
	return v
}

// Navigate loads url, waits for its load event and for the page to settle
// (see Settle). It returns the response of the document (after any
// redirects).
func Navigate(tb testing.TB, ctx context.Context, url string) *network.Response {
	tb.Helper()
	return AwaitNavigation(tb, ctx, chromedp.Navigate(url))
}

// AwaitNavigation runs steps that make the page navigate (a click on a link
// or a submit button) and waits until the new page has loaded and settled
// (see Settle). It returns the final response, after redirects: a POST
// answered with 303 gives the page the redirect led to. Polling the page
// right after such a click instead fails with "Inspected target navigated or
// closed".
func AwaitNavigation(tb testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, steps...)
	if err != nil {
		tb.Fatalf("browser navigation: %v\n%s", err, Describe(ctx))
	}
	if resp == nil {
		tb.Fatalf("browser navigation: no document response\n%s", Describe(ctx))
	}
	if _, err := chromedp.Run(sctx, settle()); err != nil {
		tb.Fatalf("browser navigation to %s: the page loaded but did not settle: %v\n%s", resp.URL, err, Describe(ctx))
	}
	return resp
}

// Eval waits for the page to settle (see Settle), then evaluates the
// JavaScript expression expr in it, in the same task, and decodes its value.
// expr is one expression (write statements as (() => { …; return v; })());
// it may give a promise, which Eval awaits. To wait until the page shows
// something, use WaitFor.
func Eval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	v, err := chromedp.Run(sctx, read[T](expr))
	if err != nil {
		tb.Fatalf("browser: evaluating %s: %v\n%s", abbrev(expr), err, Describe(ctx))
	}
	return v
}

// abbrev shortens a JavaScript expression for a failure message.
func abbrev(expr string) string {
	r := []rune(strings.Join(strings.Fields(expr), " "))
	if len(r) > 120 {
		return string(r[:117]) + "..."
	}
	return string(r)
}

// Describe summarizes the page for a failure message: its address, title and
// the start of its visible text. It never fails.
func Describe(ctx context.Context) string {
	if ctx.Err() != nil {
		return "(the tab's deadline has passed)"
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	type page struct {
		URL   string `json:"url"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}
	p, err := chromedp.Run(dctx, chromedp.Evaluate[page](
		`({url: location.href, title: document.title, text: document.body ? document.body.innerText.slice(0, 1500) : ""})`))
	if err != nil {
		return fmt.Sprintf("(could not describe the page: %v)", err)
	}
	return fmt.Sprintf("page %s, title %q:\n\t%s", p.URL, p.Title, strings.ReplaceAll(p.Text, "\n", "\n\t"))
}

// ScreenshotDirEnv names a directory that keeps screenshots after the test
// ends; ScreenshotDir uses it.
const ScreenshotDirEnv = "DOORLEDGER_SCREENSHOT_DIR"

// ScreenshotDir is where a test puts its screenshots: the directory
// ScreenshotDirEnv names (created if needed), or else tb.TempDir(), which
// is removed after the test.
func ScreenshotDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv(ScreenshotDirEnv); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatalf("screenshot directory: %v", err)
		}
		return d
	}
	return tb.TempDir()
}

// Screenshot writes a PNG of the whole page (beyond the viewport) to path,
// for debugging. A failure is reported but does not stop the test.
func Screenshot(tb testing.TB, ctx context.Context, path string) {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.Errorf("screenshot: %v", err)
		return
	}
	tb.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// ScreenshotElement writes a PNG of the element sel selects (as Click
// finds it) to path, for debugging: the element is found and measured in the
// page once it is settled, and the page captured clipped to it. A failure is
// reported but does not stop the test.
func ScreenshotElement(tb testing.TB, ctx context.Context, sel, path string) {
	tb.Helper()
	type box struct{ X, Y, W, H float64 }
	b, err := Wait[box](ctx, `(() => {
		const el = `+findJS(sel)+`;
		if (!el) return null;
		el.scrollIntoView({block: "center", behavior: "instant"});
		const r = el.getBoundingClientRect();
		return r.width > 0 && r.height > 0 ? {X: r.left + window.scrollX, Y: r.top + window.scrollY, W: r.width, H: r.height} : null;
	})()`)
	if err != nil {
		tb.Errorf("screenshot of %s: waiting for it to be visible: %v", sel, err)
		return
	}
	sctx, cancel := step(ctx)
	defer cancel()
	res, err := chromedp.Call(sctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{X: b.X, Y: b.Y, Width: b.W, Height: b.H, Scale: 1},
		CaptureBeyondViewport: new(true),
	})
	if err != nil {
		tb.Errorf("screenshot of %s: %v", sel, err)
		return
	}
	if err := os.WriteFile(path, res.Data, 0o644); err != nil {
		tb.Errorf("screenshot of %s: %v", sel, err)
		return
	}
	tb.Logf("screenshot: %s (%d bytes)", path, len(res.Data))
}

// Overflow is what CheckNoHorizontalOverflow measures.
type Overflow struct {
	ScrollWidth int      `json:"scrollWidth"` // document.documentElement.scrollWidth
	InnerWidth  int      `json:"innerWidth"`  // window.innerWidth
	ClientWidth int      `json:"clientWidth"` // document.documentElement.clientWidth
	Widest      []string `json:"widest"`      // up to 5 elements reaching past the right edge, also inside a scroll container
}

// overflowJS measures the page and names up to five elements whose right edge
// lies beyond the layout viewport.
const overflowJS = `(() => {
	const de = document.documentElement, vw = de.clientWidth;
	const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
		(typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
	const widest = [];
	for (const el of document.body ? document.body.querySelectorAll("*") : []) {
		const r = el.getBoundingClientRect();
		if (r.width > 0 && r.right > vw + 0.5) {
			widest.push(name(el) + " right=" + Math.round(r.right));
			if (widest.length === 5) break;
		}
	}
	return {scrollWidth: de.scrollWidth, innerWidth: window.innerWidth, clientWidth: vw, widest};
})()`

// MeasureOverflow measures the page's horizontal overflow.
func MeasureOverflow(tb testing.TB, ctx context.Context) Overflow {
	tb.Helper()
	return Eval[Overflow](tb, ctx, overflowJS)
}

// CheckNoHorizontalOverflow fails the test when the page is wider than the
// window: document.documentElement.scrollWidth greater than window.innerWidth
// or than documentElement.clientWidth, or window.innerWidth greater than
// wantWidth CSS pixels (pass 0 to skip that check).
//
// scrollWidth <= innerWidth alone is not enough under mobile emulation: a
// phone widens its window to fit a page that overflows (a 900px-wide element
// at 390px gives scrollWidth 908 and innerWidth 908), while clientWidth stays
// at the device width.
func CheckNoHorizontalOverflow(tb testing.TB, ctx context.Context, wantWidth int64) {
	tb.Helper()
	o := MeasureOverflow(tb, ctx)
	if o.ScrollWidth > o.InnerWidth || o.ScrollWidth > o.ClientWidth || (wantWidth > 0 && int64(o.InnerWidth) > wantWidth) {
		tb.Errorf("horizontal overflow: scrollWidth %d, innerWidth %d, clientWidth %d, want ≤ %d; elements past the edge: %v\n%s",
			o.ScrollWidth, o.InnerWidth, o.ClientWidth, wantWidth, o.Widest, Describe(ctx))
	}
}
