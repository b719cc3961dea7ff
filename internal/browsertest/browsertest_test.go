package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// fakeTB records how Require ends a test. Skip and Fatal stop the goroutine,
// as the real ones do.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
	errors  string
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.errors += fmt.Sprintf(format, args...) + "\n"
	f.mu.Unlock()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func runRequire(f *fakeTB) string {
	done := make(chan string)
	go func() {
		var path string
		defer func() { done <- path }()
		path = Require(f)
	}()
	return <-done
}

func TestFindHonoursEnv(t *testing.T) {
	t.Setenv(ChromiumEnv, filepath.Join(t.TempDir(), "no-such-chromium"))
	if p, ok := Find(); ok {
		t.Fatalf("Find() = %q, true with %s pointing nowhere", p, ChromiumEnv)
	}

	t.Setenv(RequireEnv, "")
	f := &fakeTB{}
	if p := runRequire(f); p != "" || f.skipped != SkipMessage || f.fatal != "" {
		t.Errorf("without a browser: path %q, skipped %q, fatal %q; want a skip with %q", p, f.skipped, f.fatal, SkipMessage)
	}

	t.Setenv(RequireEnv, "1")
	f = &fakeTB{}
	if p := runRequire(f); p != "" || f.skipped != "" || !strings.Contains(f.fatal, RequireEnv+"=1") {
		t.Errorf("without a browser and %s=1: path %q, skipped %q, fatal %q; want a failure", RequireEnv, p, f.skipped, f.fatal)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(ChromiumEnv, exe)
	if p, ok := Find(); !ok || p != exe {
		t.Errorf("Find() = %q, %v; want %q from %s", p, ok, exe, ChromiumEnv)
	}
}

// csp is Doorledger's policy in short: no inline script or style.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'"

func testSite(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title></head><body>%s</body></html>`, body)
		}
	}
	js := func(src string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, src)
		}
	}
	mux.HandleFunc("GET /ok", page(`<p id="p">fine</p><script src="/ok.js"></script>`))
	mux.HandleFunc("GET /ok.js", js(`console.log("hello from ok.js");`))
	mux.HandleFunc("GET /inline", page(`<p>inline</p><script>document.title = "ran";</script>`))
	mux.HandleFunc("GET /throw", page(`<script src="/throw.js"></script>`))
	mux.HandleFunc("GET /throw.js", js(`throw new Error("boom from throw.js");`))
	mux.HandleFunc("GET /wide", page(`<div id="wide" class="too wide"><p>wide</p></div><link rel="stylesheet" href="/wide.css">`))
	mux.HandleFunc("GET /wide.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `#wide { width: 900px; }`)
	})
	mux.HandleFunc("GET /form", page(`<form method="post" action="/submit"><input id="name" name="name"><button type="submit">Go</button></form>`))
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/done?name="+r.FormValue("name"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		page(`<h1 id="h">Done</h1>`)(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestConsoleCollector(t *testing.T) {
	srv := testSite(t)
	ctx := NewTab(t, Options{})

	Navigate(t, ctx, srv.URL+"/ok")
	if p := Problems(t, ctx); len(p) != 0 {
		t.Errorf("a clean page reported problems: %q", p)
	}

	Navigate(t, ctx, srv.URL+"/inline")
	p := Problems(t, ctx)
	t.Logf("inline script: %q", p)
	if len(p) != 1 || !strings.Contains(p[0], "Content-Security-Policy violation") || !strings.Contains(p[0], "inline script") {
		t.Errorf("inline script under CSP: problems %q, want one CSP violation", p)
	}
	if title := Run(t, ctx, chromedp.Title()); title != "t" {
		t.Errorf("inline script ran despite CSP: title %q", title)
	}

	Navigate(t, ctx, srv.URL+"/throw")
	p = Problems(t, ctx)
	t.Logf("exception: %q", p)
	if len(p) != 1 || !strings.Contains(p[0], "JavaScript exception") || !strings.Contains(p[0], "boom from throw.js") {
		t.Errorf("uncaught exception: problems %q, want one exception", p)
	}

	Do(t, ctx, chromedp.Evaluate[chromedp.Void](`console.error("bad", 42)`))
	p = Problems(t, ctx)
	if len(p) != 1 || !strings.Contains(p[0], "console.error: bad 42") {
		t.Errorf("console.error: problems %q", p)
	}
}

func TestAwaitNavigationFollowsPostRedirect(t *testing.T) {
	srv := testSite(t)
	ctx := NewTab(t, Options{})
	Navigate(t, ctx, srv.URL+"/form")
	Do(t, ctx, SendKeys("#name", "Zürich — Łódź"))
	resp := AwaitNavigation(t, ctx, Click("button[type=submit]"))
	if resp.Status != http.StatusOK || !strings.Contains(resp.URL, "/done?name=") {
		t.Fatalf("after submit: status %d url %s", resp.Status, resp.URL)
	}
	if got := Eval[string](t, ctx, `new URL(location.href).searchParams.get("name")`); got != "Zürich — Łódź" {
		t.Errorf("typed text arrived as %q", got)
	}
	if h := Eval[string](t, ctx, `document.getElementById("h").textContent`); h != "Done" {
		t.Errorf("heading %q", h)
	}
}

func TestPhoneViewportAndOverflow(t *testing.T) {
	srv := testSite(t)
	ctx := NewTab(t, Options{Viewport: Phone})
	Navigate(t, ctx, srv.URL+"/ok")
	o := MeasureOverflow(t, ctx)
	if o.InnerWidth != 390 || o.ScrollWidth > o.InnerWidth {
		t.Errorf("narrow page at phone size: %+v, want innerWidth 390 and no overflow", o)
	}
	if dpr := Eval[float64](t, ctx, `window.devicePixelRatio`); dpr != Phone.Scale {
		t.Errorf("devicePixelRatio %v, want %v", dpr, Phone.Scale)
	}
	if touch := Eval[bool](t, ctx, `navigator.maxTouchPoints > 0`); !touch {
		t.Errorf("phone tab has no touch points")
	}

	Navigate(t, ctx, srv.URL+"/wide")
	o = MeasureOverflow(t, ctx)
	t.Logf("wide page: %+v", o)
	// A phone widens its window to fit the page: scrollWidth <= innerWidth
	// holds, and only clientWidth and innerWidth > 390 show the overflow.
	if o.ScrollWidth <= o.ClientWidth || o.InnerWidth <= 390 || len(o.Widest) == 0 || !strings.Contains(o.Widest[0], "div#wide.too.wide") {
		t.Errorf("a 900px page at phone size was not seen as overflowing: %+v", o)
	}
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); CheckNoHorizontalOverflow(ft, ctx, 0) }()
	<-done
	if !strings.Contains(ft.errors, "horizontal overflow") {
		t.Errorf("CheckNoHorizontalOverflow passed a page with overflow %+v", o)
	}

	Screenshot(t, ctx, filepath.Join(t.TempDir(), "wide.png"))
}

func TestTabsDoNotShareCookies(t *testing.T) {
	srv := testSite(t)
	a := NewTab(t, Options{})
	b := NewTab(t, Options{})
	Navigate(t, a, srv.URL+"/ok")
	Navigate(t, b, srv.URL+"/ok")
	Do(t, a, chromedp.Evaluate[chromedp.Void](`document.cookie = "who=a; path=/"`))
	if c := Eval[string](t, b, `document.cookie`); c != "" {
		t.Errorf("tab b sees tab a's cookie: %q", c)
	}
}
