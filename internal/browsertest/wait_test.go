package browsertest

import (
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger/static"
)

// liveSite is a page that changes under the test as the portal's live pages
// do, with the portal's htmx and SSE extension under the same CSP: a live
// region that the server re-renders every so often (the first render only
// after 300 ms), holding a button that is a new node each time and an
// hx-preserve'd form; and slow htmx posts (300 ms) whose answers land in
// #out.
type liveSite struct {
	*httptest.Server
	mu     sync.Mutex
	counts int
}

func newLiveSite(t *testing.T, every time.Duration) *liveSite {
	s := &liveSite{}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static.FS)))
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp+"; connect-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html><head><title>live</title>
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>
<script src="/static/vendor/htmx.min.js"></script><script src="/static/vendor/htmx-ext-sse.min.js"></script></head>
<body><main>
<div id="rows" hx-ext="sse" sse-connect="/live/events" sse-swap="rows"><span id="n">first paint</span></div>
<p id="out">nothing yet</p>
<button id="off" disabled>Off</button>
<select id="pick" aria-label="pick"><option value="a">A</option></select>
<div id="under"><button id="hidden-by-cover">Covered</button><div id="cover"></div></div>
</main><link rel="stylesheet" href="/live.css"></body></html>`)
	})
	mux.HandleFunc("GET /live.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `#under { position: relative; } #cover { position: absolute; inset: 0; background: #fff; }`)
	})
	mux.HandleFunc("GET /live/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		ctx := r.Context()
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for k := 1; ; k++ {
			fmt.Fprintf(w, "event: rows\ndata: <span id=\"n\">render %d</span> "+
				`<button id="count" hx-post="/live/count" hx-target="#out">Count</button> `+
				`<form id="ack" hx-post="/live/ack" hx-target="#out" hx-preserve="true"><input id="note" name="note" aria-label="note"><button id="send">Send</button></form>`+
				"\n\n", k)
			w.(http.Flusher).Flush()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	slow := func(answer func(r *http.Request) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
			fmt.Fprint(w, answer(r))
		}
	}
	mux.HandleFunc("POST /live/count", slow(func(r *http.Request) string {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.counts++
		return fmt.Sprintf("counted %d", s.counts)
	}))
	mux.HandleFunc("POST /live/stuck", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("POST /live/ack", slow(func(r *http.Request) string {
		return "note: " + html.EscapeString(r.FormValue("note"))
	}))
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// TestSettleWaitsForTheStreamAndRequests: a page is read only once it is
// settled, so what a test reads right after navigating is the stream's first
// render, not the first paint, and what it reads right after a click on an
// hx-post is the answer, not what was there before.
func TestSettleWaitsForTheStreamAndRequests(t *testing.T) {
	s := newLiveSite(t, 40*time.Millisecond)
	ctx := NewTab(t, Options{})
	Navigate(t, ctx, s.URL+"/live")
	if n := Eval[string](t, ctx, `document.getElementById("n").textContent`); !strings.HasPrefix(n, "render ") {
		t.Errorf("right after navigating the live region shows %q, want the stream's render", n)
	}
	Do(t, ctx, Click("#count"))
	if out := Eval[string](t, ctx, `document.getElementById("out").textContent`); out != "counted 1" {
		t.Errorf("right after clicking an hx-post button #out shows %q, want its answer \"counted 1\"", out)
	}
}

// TestActionsSurviveSwaps clicks and types on elements that the live region
// replaces every 40 ms. chromedp.Click and chromedp.SendKeys fail here with
// "Could not find node with given id" whenever a render lands between their
// round trips; this package's actions find and act in one step.
func TestActionsSurviveSwaps(t *testing.T) {
	s := newLiveSite(t, 40*time.Millisecond)
	ctx := NewTab(t, Options{})
	Navigate(t, ctx, s.URL+"/live")
	const clicks = 15
	for i := 1; i <= clicks; i++ {
		Do(t, ctx, Click("#count"))
		want := fmt.Sprintf("counted %d", i)
		WaitFor[bool](t, ctx, "#out to say "+want, `document.getElementById("out").textContent === `+jsQuote(want))
	}
	// The form is hx-preserve'd: typing goes on across renders.
	const note = "Zoë typed this — across swaps"
	Do(t, ctx, SendKeys("#note", note))
	if v := Eval[string](t, ctx, `document.getElementById("note").value`); v != note {
		t.Errorf("the note holds %q, want %q", v, note)
	}
	Do(t, ctx, Click("#send"))
	WaitFor[bool](t, ctx, "the posted note in #out", `document.getElementById("out").textContent === `+jsQuote("note: "+note))
	Do(t, ctx, Clear("#note"), SendKeys("#note", "second"))
	if v := Eval[string](t, ctx, `document.getElementById("note").value`); v != "second" {
		t.Errorf("after Clear and SendKeys the note holds %q", v)
	}
}

// failure runs f with a testing.TB whose Fatalf stops f, and returns the
// message f failed with ("" if none).
func failure(t *testing.T, f func(tb testing.TB)) string {
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ft)
	}()
	<-done
	return ft.fatal
}

// TestWaitMessagesSayWhatWasAwaited: a helper that gives up says what it
// waited for and what was in the way, then describes the page.
func TestWaitMessagesSayWhatWasAwaited(t *testing.T) {
	// Each case gives up after its step's budget: keep those steps short
	// (not the navigation's: a busy machine can take seconds to load), and
	// the re-renders rare enough that a busy machine still sees the page
	// settled between them.
	s := newLiveSite(t, 250*time.Millisecond)
	tab := NewTab(t, Options{})
	Navigate(t, tab, s.URL+"/live")
	ctx := WithStepTimeout(tab, 5*time.Second)
	for _, c := range []struct {
		name string
		f    func(tb testing.TB)
		want []string
	}{
		{"WaitFor", func(tb testing.TB) {
			WaitFor[bool](tb, ctx, "the door to open", `document.getElementById("door") !== null`)
		}, []string{"waiting for the door to open", "gave up after", "the condition (it gave false)", "page " + s.URL + "/live"}},
		{"WaitFor throwing", func(tb testing.TB) {
			WaitFor[string](tb, ctx, "the door's label", `document.getElementById("door").textContent`)
		}, []string{"waiting for the door's label", "it threw TypeError"}},
		{"missing", func(tb testing.TB) { Do(tb, ctx, Click("#door")) }, []string{"click #door", "waiting for an element matching #door"}},
		{"disabled", func(tb testing.TB) { Do(tb, ctx, Click("#off")) }, []string{"click #off", "button#off to be enabled"}},
		{"covered", func(tb testing.TB) { Do(tb, ctx, Click("#hidden-by-cover")) }, []string{"button#hidden-by-cover not to be covered (div#cover is on top of it)"}},
		{"xpath", func(tb testing.TB) { Do(tb, ctx, Click(`//main//a[normalize-space(.)="Nowhere"]`)) }, []string{`an element matching //main//a[normalize-space(.)="Nowhere"]`}},
		{"select", func(tb testing.TB) { Do(tb, ctx, SetValue("#pick", "b")) }, []string{`set #pick to "b"`, `select#pick to accept the value "b"`}},
		{"Eval", func(tb testing.TB) { Eval[string](tb, ctx, `document.getElementById("door").id`) }, []string{"evaluating document.getElementById", "the page threw", "TypeError"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := failure(t, c.f)
			t.Logf("%s", msg)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("failure message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
	// A request that outlives the step: the message names it.
	msg := failure(t, func(tb testing.TB) {
		Do(tb, ctx, chromedp.Evaluate[chromedp.Void](`htmx.ajax("POST", "/live/stuck", "#out")`))
		Eval[string](tb, ctx, `document.getElementById("out").textContent`)
	})
	t.Logf("%s", msg)
	if !strings.Contains(msg, "waiting for htmx to settle: 1 request(s) in flight") {
		t.Errorf("a read behind a request that never ends: failure message %q does not name the request", msg)
	}
}

// TestNoNodeActionsInBrowserTests keeps chromedp's node actions out of the
// module's tests: they resolve a node id and act on it in separate round
// trips, which an htmx swap in between fails (see the package doc). Use this
// package's Click, SendKeys, SetValue, Clear, SetUploadFiles, Eval and
// WaitFor.
func TestNoNodeActionsInBrowserTests(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	banned := regexp.MustCompile(`\bchromedp\.(Click|DoubleClick|SendKeys|SetValue|Clear|Submit|Reset|Focus|Blur|SetUploadFiles|Value|Text|TextContent|InnerHTML|OuterHTML|AttributeValue|Attributes|AttributesAll|SetAttributeValue|JavascriptAttribute|SetJavascriptAttribute|Nodes|NodeIDs|QueryNodeIDs|Query|WaitVisible|WaitReady|WaitNotVisible|WaitEnabled|WaitSelected|WaitNotPresent|ScrollIntoView|Dimensions|MouseClickNode|KeyEventNode|Poll|PollFunction|Screenshot|ScreenshotScale)\(`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := banned.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: %s… races htmx swaps: use browsertest's Click, SendKeys, SetValue, Clear, SetUploadFiles to act, Eval or WaitFor to read and wait", rel, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
