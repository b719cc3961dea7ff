// Package browsertest drives Doorledger's pages in a real headless Chromium
// through chromedp, for tests.
//
// A test package shares one browser process, started on first use, and each
// test gets its own tab in its own browser context (its own cookies), with a
// bounded deadline. Every tab records its console: a JavaScript exception, a
// Content-Security-Policy violation or a console.error call fails the test.
//
// Typical use:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		browsertest.Shutdown()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		ctx := browsertest.NewTab(t, browsertest.Options{})
//		resp := browsertest.Navigate(t, ctx, url+"/login")
//		browsertest.Do(t, ctx, browsertest.SendKeys("#email", "a@example.com"))
//		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click("button[type=submit]"))
//		browsertest.Do(t, ctx, browsertest.Click("#revoke")) // an hx-post: no navigation
//		browsertest.WaitFor[bool](t, ctx, "the Enable button", `document.getElementById("enable") !== null`)
//	}
//
// # How browser tests wait
//
// Doorledger's pages change under a test: htmx swaps in the answer of a
// request, live regions re-render from server-sent events whenever the
// server has something new (and once right after they connect), report
// pages poll. A test acts and reads only on stable conditions:
//
//   - A settled page. The document has loaded, htmx has no request in flight
//     (no element has the class htmx-request) and no swap or settle under way
//     (htmx-swapping, htmx-settling, htmx-added; htmx fires htmx:afterSettle
//     when they go), and every live region (sse-connect) has had its first
//     event. Navigate, AwaitNavigation, Eval, WaitFor and every action of this
//     package wait for it first (Settle on its own).
//   - Find and act in one step. Click, SendKeys, SetValue, Clear and
//     SetUploadFiles find their element inside the page and act in the same
//     JavaScript task, retrying in the page while it is missing, hidden,
//     disabled or covered. chromedp's node actions (chromedp.Click,
//     SendKeys, Value, Text, AttributeValue…) resolve a node id in one round
//     trip and use it in the next: a swap in between fails them with "Could
//     not find node with given id (-32000)". Read the page with Eval or
//     WaitFor (one expression, one consistent DOM), never node by node.
//   - Navigation awaited. A click that loads another page runs inside
//     AwaitNavigation (chromedp.RunResponse); reading right after such a
//     click fails with "Inspected target navigated or closed".
//   - Conditions, not time. Wait for what the page shows with WaitFor (or
//     Wait), which polls inside the page until a deadline and then says what
//     it waited for and what it saw; never sleep and hope. To show what the
//     page held instead, let the condition throw an Error naming it.
//
// Every helper fails with what it waited for ("gave up after 19.2s waiting
// for button#enable to be enabled", "… waiting for htmx to settle: form#x
// still has htmx-request"), then the page's address, title and text.
//
// Without Chromium the tests are skipped, or fail when DOORLEDGER_REQUIRE_TOOLS=1.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	// ChromiumEnv names a browser binary to use instead of searching. Set it
	// to a path that does not exist to hide the browser (the tests then skip).
	ChromiumEnv = "DOORLEDGER_CHROMIUM"

	// RequireEnv turns a missing browser from a skip into a failure when it
	// is "1". CI sets it.
	RequireEnv = "DOORLEDGER_REQUIRE_TOOLS"

	// DefaultTabTimeout bounds everything a test does in one tab.
	DefaultTabTimeout = 60 * time.Second

	// DefaultStepTimeout bounds one call of Do, Run, Navigate or
	// AwaitNavigation, so a selector that never matches fails in seconds
	// rather than at the tab's deadline.
	DefaultStepTimeout = 20 * time.Second

	// startTimeout bounds the start of the shared browser.
	startTimeout = 30 * time.Second
)

// SkipMessage is what Require skips with when no browser is found.
const SkipMessage = "no Chromium installed: browser tests skipped (apt-get install chromium; CI sets DOORLEDGER_REQUIRE_TOOLS=1 to make this a failure)"

// candidates are tried in order; bare names are looked up on PATH.
// /usr/lib/chromium/chromium is Debian's binary itself: its /usr/bin/chromium
// wrapper prints a harmless warning on every start.
var candidates = []string{
	"/usr/lib/chromium/chromium",
	"/usr/bin/chromium",
	"chromium",
	"chromium-browser",
	"google-chrome",
	"google-chrome-stable",
}

// Find returns the path of a Chromium or Chrome binary. When ChromiumEnv is
// set, only that path is considered.
func Find() (path string, ok bool) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		return lookPath(p)
	}
	for _, c := range candidates {
		if p, ok := lookPath(c); ok {
			return p, true
		}
	}
	return "", false
}

func lookPath(name string) (string, bool) {
	p, err := exec.LookPath(name) // for a path with a slash: is it an executable file
	if err != nil {
		return "", false
	}
	return p, true
}

// Require skips the test when no browser is installed, or fails it when
// RequireEnv is "1". It returns the browser's path.
func Require(tb testing.TB) string {
	tb.Helper()
	if p, ok := Find(); ok {
		return p
	}
	if os.Getenv(RequireEnv) == "1" {
		where := "searched " + strings.Join(candidates, ", ")
		if p := os.Getenv(ChromiumEnv); p != "" {
			where = ChromiumEnv + "=" + p + " is not an executable"
		}
		tb.Fatalf("no Chromium installed (%s), and %s=1 makes browser tests required: apt-get install chromium", where, RequireEnv)
	}
	tb.Skip(SkipMessage)
	return ""
}

// shared is the one browser of this test binary.
var shared struct {
	once sync.Once
	mu   sync.Mutex // guards the fields below against Shutdown

	closed      bool
	err         error
	ctx         context.Context // the browser's chromedp context
	cancelAlloc context.CancelFunc
	dataDir     string
	output      lockedBuffer // the browser's stdout and stderr
}

// browserContext returns the shared browser, starting it on first use.
func browserContext(tb testing.TB, path string) context.Context {
	tb.Helper()
	shared.once.Do(func() {
		t0 := time.Now()
		start(path)
		if shared.err == nil {
			tb.Logf("browsertest: started %s in %v", path, time.Since(t0).Round(time.Millisecond))
		}
	})
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.closed {
		tb.Fatal("browsertest: the shared browser was shut down")
	}
	if shared.err != nil {
		tb.Fatalf("browsertest: %v", shared.err)
	}
	return shared.ctx
}

func start(path string) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.closed {
		return
	}
	dir, err := os.MkdirTemp("", "doorledger-chromium-")
	if err != nil {
		shared.err = fmt.Errorf("user data directory: %w", err)
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(dir),
		chromedp.CombinedOutput(&shared.output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The browser lives as long as this context: it must have no deadline.
	ctx, _ := chromedp.NewContext(allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		err = fmt.Errorf("timed out after %v", startTimeout)
	}
	if err != nil {
		cancelAlloc()
		os.RemoveAll(dir)
		shared.err = fmt.Errorf("starting %s: %w\nbrowser output:\n%s", path, err, shared.output.String())
		return
	}
	shared.ctx, shared.cancelAlloc, shared.dataDir = ctx, cancelAlloc, dir
}

// Shutdown closes the shared browser, if one was started, and removes its
// user data directory. Call it from TestMain after m.Run. Later NewTab calls
// fail.
func Shutdown() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.closed {
		return
	}
	shared.closed = true
	if shared.ctx == nil {
		return
	}
	tctx, cancel := context.WithTimeout(shared.ctx, 10*time.Second)
	if err := chromedp.Cancel(tctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "browsertest: closing the browser: %v\n", err)
	}
	cancel()
	shared.cancelAlloc()
	// Chromium's helper processes can still write for a moment after the
	// main process exits.
	var err error
	for range 50 {
		if err = os.RemoveAll(shared.dataDir); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "browsertest: removing %s: %v\n", shared.dataDir, err)
	}
}

// Viewport is the size of a tab's window in CSS pixels.
type Viewport struct {
	Width, Height int64
	Scale         float64 // device pixel ratio; 0 means 1
	Mobile        bool    // mobile emulation: honours <meta name=viewport>, touch events
}

var (
	// Desktop is a laptop-sized window.
	Desktop = Viewport{Width: 1280, Height: 800, Scale: 1}
	// Phone is a current phone held upright (390x844 CSS pixels, 3x).
	Phone = Viewport{Width: 390, Height: 844, Scale: 3, Mobile: true}
)

// Options configure NewTab. The zero value is a desktop tab with the default
// timeouts.
type Options struct {
	Viewport    Viewport      // zero means Desktop
	Timeout     time.Duration // the tab's deadline; zero means DefaultTabTimeout
	StepTimeout time.Duration // one helper call's deadline; zero means DefaultStepTimeout
}

type tabKey struct{}

// tab is what NewTab keeps in the context it returns.
type tab struct {
	console     *collector
	stepTimeout time.Duration
}

func tabOf(ctx context.Context) *tab {
	t, _ := ctx.Value(tabKey{}).(*tab)
	return t
}

// NewTab opens a tab in the shared browser, in a fresh browser context (no
// cookies or storage shared with other tabs), sized to opts.Viewport. The
// returned context carries chromedp's tab and a deadline (opts.Timeout). At
// cleanup the tab's console is checked (see Problems) and the tab is closed.
// It skips the test when no browser is installed; see Require.
func NewTab(tb testing.TB, opts Options) context.Context {
	tb.Helper()
	path := Require(tb)
	bctx := browserContext(tb, path)
	if opts.Viewport == (Viewport{}) {
		opts.Viewport = Desktop
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTabTimeout
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = DefaultStepTimeout
	}
	col := &collector{}
	tabCtx, cancelTab := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(col.listen))
	ctx, cancelDeadline := context.WithTimeout(tabCtx, opts.Timeout)
	ctx = context.WithValue(ctx, tabKey{}, &tab{console: col, stepTimeout: opts.StepTimeout})
	tb.Cleanup(func() {
		checkConsole(tb, ctx, col)
		cancelDeadline()
		cancelTab()
	})

	vp := opts.Viewport
	if vp.Scale == 0 {
		vp.Scale = 1
	}
	emulate := []chromedp.EmulateViewportOption{chromedp.EmulateScale(vp.Scale)}
	if vp.Mobile {
		emulate = append(emulate, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	// The first action opens the tab; it is bound to ctx, so the tab ends at
	// the deadline at the latest.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.Width, vp.Height, emulate...), chromedp.Func(installTracker)); err != nil {
		tb.Fatalf("browsertest: opening a tab: %v", err)
	}
	return ctx
}

// WithStepTimeout returns ctx (a tab's, from NewTab) with d as the deadline
// of each helper call made with it, for a step that needs more, or less,
// than the tab's Options.StepTimeout.
func WithStepTimeout(ctx context.Context, d time.Duration) context.Context {
	t := tabOf(ctx)
	if t == nil {
		return ctx
	}
	c := *t
	c.stepTimeout = d
	return context.WithValue(ctx, tabKey{}, &c)
}

// lockedBuffer is a strings.Builder safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the last start's output bounded
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
