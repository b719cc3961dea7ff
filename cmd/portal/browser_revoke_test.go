package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/browsertest"
)

// TestBrowserRevoke is the revoke story in headless Chromium: the manager
// revokes a simulated device and watches it turn confirmed, live, without
// reloading the page; then enables it while the device is offline, sees the
// command stay pending, and watches it confirm when the device comes back.
// The harness fails the test on any JavaScript exception, console.error or
// CSP violation, so htmx and its SSE extension must work under the portal's
// Content-Security-Policy.
func TestBrowserRevoke(t *testing.T) {
	browsertest.Require(t)
	t0 := time.Now()
	lap := func(what string) {
		t.Logf("%-34s done at %v", what, time.Since(t0).Round(time.Millisecond))
	}

	// Set-up over HTTP: a consented device with a credential, and a simulated
	// device that applies "enabled" version 1 and reports it.
	p := MustStartPortal(t, "")
	lastPortal = p // for awaitApplied's failure log
	_, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	lap("set-up over HTTP, device enabled")

	// The manager signs in through the form: the HTTP client's cookies are
	// not the browser's.
	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Desktop, Timeout: 45 * time.Second})
	dialogs := acceptDialogs(ctx)
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, "mia@example.com", "correct horse battery"); resp.Status != 200 || readPage(t, ctx).Path != "/" {
		t.Fatalf("manager sign-in: status %d, page %+v", resp.Status, readPage(t, ctx))
	}
	browsertest.Navigate(t, ctx, p.URL+device)
	// The report of version 1 may still be on its way when the page renders:
	// the stream brings it.
	st := awaitDeviceState(t, ctx, "the device confirmed enabled", `s.status === "confirmed" && s.told === "enabled · confirmed" && s.says === "enabled version 1" && s.button === "revoke"`)
	t.Logf("device page: %s", st)
	lap("manager signed in, device page")

	// From here on the page must not reload: a marker on window proves it, and
	// a recorder logs each state #device-state shows, each SSE message and
	// each htmx request.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](recorderJS))

	// Revoke: one click, no dialog.
	clickAt := time.Now()
	browsertest.Do(t, ctx, browsertest.Click("#revoke"))
	clicked := time.Since(clickAt)
	// The Enable button comes with htmx's swap of the controls, whose state
	// was rendered when the POST was answered and may be older than what the
	// stream already showed: wait for the confirmation after the swap.
	st = awaitDeviceState(t, ctx, "the device confirmed disabled", `s.status === "confirmed" && s.told === "disabled · confirmed" && s.says === "disabled version 2" && s.button === "enable"`)
	confirmedIn := time.Since(clickAt)
	t.Logf("after Revoke: %s", st)
	if got := dialogs.take(); len(got) != 0 {
		t.Errorf("dialogs on Revoke: %q, want none (revoke is one click)", got)
	}
	// The whole page is live: the outcome in words and the command table,
	// without a reload.
	live := browsertest.WaitFor[[]string](t, ctx, "the revoke's outcome and its row in the command table",
		`(() => { const o = document.getElementById("device-outcome");
			const row = document.querySelector("#commands tbody tr");
			const cells = row ? [...row.cells].map(td => td.textContent.replace(/\s+/g, " ").trim()) : [];
			return o && /^Revoked — confirmed by the device in \d+ ms$/.test(o.textContent.trim()) && cells[0] === "2" && cells[6] === "confirmed"
				? [o.textContent.trim(), cells.join(" | ")] : null; })()`)
	t.Logf("after Revoke: %q; newest command row %q", live[0], live[1])
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	if a := sim.Applied(); a.Version != 2 || a.State != doorledger.StateDisabled {
		t.Errorf("simulated device applied %+v, want version 2 disabled", a)
	}
	rec := readRecorder(t, ctx)
	rec.check(t, "revoke", "POST", device+"/revoke")
	rec.requireSSE(t, "revoke", "confirmed", "disabled · confirmed")
	t.Logf("revoke: click took %v; confirmed on the page %v after the click", clicked.Round(time.Millisecond), confirmedIn.Round(time.Millisecond))
	t.Logf("revoke: #device-state showed %s", rec.story())
	if rec.sawStatus("pending") {
		t.Logf("revoke: the pending state flashed")
	} else {
		t.Logf("revoke: the pending state was too short to be seen")
	}
	browsertest.CheckConsole(t, ctx)
	browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "device-revoked.png"))
	lap("revoked, confirmed live")

	// Offline: enable while the device is away. The command stays pending,
	// and the page says so, until the device is back.
	bg := context.Background()
	if err := sim.Offline(bg); err != nil {
		t.Fatal(err)
	}
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__dl.reset()`))
	clickAt = time.Now()
	// Enable is a second step: open it, then confirm.
	if vis := browsertest.Eval[bool](t, ctx, `document.getElementById("enable").checkVisibility()`); vis {
		t.Errorf("the Enable confirmation is visible before Enable is opened: enabling must ask first")
	}
	browsertest.Do(t, ctx, browsertest.Click("#enable-open"), browsertest.Click("#enable"))
	st = awaitDeviceState(t, ctx, "the enable command pending", `s.status === "pending" && s.told === "enabled · pending" && s.says === "disabled version 2" && s.button === "revoke"`)
	t.Logf("after Enable, device offline: %s (%v after the click)", st, time.Since(clickAt).Round(time.Millisecond))
	if got := dialogs.take(); len(got) != 0 {
		t.Logf("dialogs on Enable (accepted): %q", got)
	}
	// The stream re-renders the waiting time on its one-second tick: the
	// command must still be pending after two such messages.
	browsertest.WaitFor[bool](t, ctx, "two re-renders of the pending command by the stream's tick", `window.__dl.sse.filter(m => m.status === "pending").length >= 2`)
	st = readDeviceState(t, ctx)
	if st.Status != "pending" || st.Told != "enabled · pending" || st.Button != "revoke" {
		t.Errorf("after two re-renders while offline (%v after the click): %s, want still pending", time.Since(clickAt).Round(time.Millisecond), st)
	}
	if a := sim.Applied(); a.Version != 2 {
		t.Errorf("the offline device applied %+v, want still version 2", a)
	}
	rec = readRecorder(t, ctx)
	rec.check(t, "enable", "POST", device+"/enable")
	// Before the swap the page may still re-render the confirmed "disabled"
	// (the disconnect updates "Last seen"); from the first pending on, only
	// pending.
	pending := false
	for _, s := range rec.States {
		switch {
		case s.Status == "pending":
			pending = true
		case pending || s.Status != "confirmed" || !strings.HasPrefix(s.Text, "disabled · confirmed"):
			t.Errorf("while the device was offline #device-state showed %q (%s), want pending from the click on", s.Status, s.Text)
		}
	}
	pendingSSE := rec.sseWith("pending")
	if pendingSSE < 2 {
		t.Errorf("%d SSE messages while pending, want the stream to keep updating the waiting time (≥ 2)", pendingSSE)
	}
	t.Logf("offline: #device-state showed %s; %d SSE messages", rec.story(), pendingSSE)
	lap("enabled offline, pending held")

	// Back online: the device gets the retained desired state and confirms.
	onlineAt := time.Now()
	if err := sim.Online(); err != nil {
		t.Fatal(err)
	}
	st = awaitDeviceState(t, ctx, "the device confirmed enabled again", `s.status === "confirmed" && s.told === "enabled · confirmed" && s.says === "enabled version 3" && s.button === "revoke"`)
	t.Logf("back online: %s (%v after Online)", st, time.Since(onlineAt).Round(time.Millisecond))
	awaitApplied(t, sim, 3, doorledger.StateEnabled)
	rec = readRecorder(t, ctx)
	rec.requireSSE(t, "online", "confirmed", "enabled · confirmed")
	t.Logf("offline → online: #device-state showed %s", rec.story())
	lap("online, confirmed live")
}

// acceptDialogs accepts every JavaScript dialog the tab opens (a click that
// opens window.confirm hangs until the dialog is handled) and records them.
func acceptDialogs(ctx context.Context) *dialogLog {
	d := &dialogLog{}
	opening := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range opening {
			if err != nil {
				return
			}
			d.add(string(ev.Type) + ": " + ev.Message)
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil && ctx.Err() == nil {
				d.add("error accepting the dialog: " + err.Error())
			}
		}
	}()
	return d
}

type dialogLog struct {
	mu   sync.Mutex
	msgs []string
}

func (d *dialogLog) add(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgs = append(d.msgs, s)
}

// take returns and forgets the dialogs seen so far.
func (d *dialogLog) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.msgs
	d.msgs = nil
	return m
}

// deviceState is what #device-state and the controls show.
type deviceState struct {
	Status string `json:"status"` // data-status of the confirmation
	Told   string `json:"told"`   // "Told to be", without the version
	Says   string `json:"says"`   // "Device says"
	Conf   string `json:"conf"`   // the confirmation's text
	Button string `json:"button"` // id of the revoke/enable button
}

func (s deviceState) String() string {
	return fmt.Sprintf("status %q, told %q, device says %q, confirmation %q, button %q", s.Status, s.Told, s.Says, s.Conf, s.Button)
}

// deviceStateFn reads the device's state from the page: as an expression
// value s for awaitDeviceState's conditions.
const deviceStateFn = `(() => {
	const box = document.getElementById("device-state");
	if (!box) return null;
	const norm = (el) => el ? el.textContent.replace(/\s+/g, " ").trim() : "";
	const dd = {};
	for (const dt of box.querySelectorAll("dt")) dd[norm(dt)] = dt.nextElementSibling;
	const st = box.querySelector("[data-status]");
	const btn = document.querySelector("#device-actions button");
	return {status: st ? st.getAttribute("data-status") : "",
		told: norm(dd["Told to be"] && dd["Told to be"].querySelector(".badge")),
		says: norm(dd["Device says"]), conf: norm(dd["Confirmation"]),
		button: btn ? btn.id : ""};
})()`

func readDeviceState(t *testing.T, ctx context.Context) deviceState {
	t.Helper()
	return browsertest.Eval[deviceState](t, ctx, deviceStateFn)
}

// awaitDeviceState waits, without reloading, until the device state s
// satisfies cond (a JavaScript expression over s), and returns it.
func awaitDeviceState(t *testing.T, ctx context.Context, what, cond string) deviceState {
	t.Helper()
	st, err := browsertest.Wait[deviceState](ctx, `(() => { const s = `+deviceStateFn+`;
		if (s && (`+cond+`)) return s;
		throw new Error("the page shows " + JSON.stringify(s)); })()`)
	if err != nil {
		t.Logf("portal log:\n%s", lastPortal.Stderr.String())
		t.Fatalf("waiting for %s: %v\n%s", what, err, browsertest.Describe(ctx))
	}
	return st
}

// recorderJS marks the window (a reload would lose the mark) and records,
// from now on, each state #device-state shows, each SSE message and each
// htmx request. window.__dl.reset() forgets what was recorded.
const recorderJS = `(() => {
	if (window.__dl) throw new Error("recorder installed twice");
	const read = () => ` + deviceStateFn + `;
	const rec = window.__dl = {marker: "no reload", t0: performance.now(), states: [], sse: [], requests: [], opens: 0};
	const now = () => Math.round(performance.now() - rec.t0);
	rec.reset = () => { rec.t0 = performance.now(); rec.states = []; rec.sse = []; rec.requests = []; rec.opens = 0; };
	const note = (src) => {
		const s = read();
		if (!s) return;
		const text = s.told + " / " + s.conf;
		const last = rec.states[rec.states.length - 1];
		if (!last || last.status !== s.status || last.text !== text) rec.states.push({t: now(), src, status: s.status, text});
	};
	new MutationObserver(() => note("dom")).observe(document.querySelector("main"), {subtree: true, childList: true, characterData: true, attributes: true});
	document.addEventListener("htmx:sseOpen", () => rec.opens++);
	document.addEventListener("htmx:sseMessage", (e) => {
		const tpl = document.createElement("template");
		tpl.innerHTML = e.detail.data;
		const st = tpl.content.querySelector("[data-status]");
		const badge = tpl.content.querySelector(".badge");
		rec.sse.push({t: now(), type: e.detail.type, status: st ? st.getAttribute("data-status") : "",
			told: badge ? badge.textContent.replace(/\s+/g, " ").trim() : ""});
		note("sse");
	});
	document.addEventListener("htmx:afterRequest", (e) => rec.requests.push({t: now(),
		verb: e.detail.requestConfig.verb, path: e.detail.requestConfig.path, status: e.detail.xhr.status}));
	note("start");
})()`

type recorded struct {
	Marker string `json:"marker"`
	States []struct {
		T      int    `json:"t"`
		Src    string `json:"src"`
		Status string `json:"status"`
		Text   string `json:"text"`
	} `json:"states"`
	SSE []struct {
		T      int    `json:"t"`
		Type   string `json:"type"`
		Status string `json:"status"`
		Told   string `json:"told"`
	} `json:"sse"`
	Requests []struct {
		T      int    `json:"t"`
		Verb   string `json:"verb"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	} `json:"requests"`
	Opens int `json:"opens"`
}

func readRecorder(t *testing.T, ctx context.Context) recorded {
	t.Helper()
	r := browsertest.Eval[*recorded](t, ctx, `window.__dl ? {marker: window.__dl.marker, states: window.__dl.states, sse: window.__dl.sse, requests: window.__dl.requests, opens: window.__dl.opens} : null`)
	if r == nil || r.Marker != "no reload" {
		t.Fatalf("the recorder is gone: the page reloaded or navigated\n%s", browsertest.Describe(ctx))
	}
	return *r
}

// check fails the test unless exactly one htmx request was made, verb path,
// and answered 200 (the controls swapped in place).
func (r recorded) check(t *testing.T, step, verb, path string) {
	t.Helper()
	if len(r.Requests) != 1 || r.Requests[0].Verb != strings.ToLower(verb) || r.Requests[0].Path != path || r.Requests[0].Status != 200 {
		t.Errorf("%s: htmx requests %+v, want one %s %s answered 200", step, r.Requests, verb, path)
	}
}

// requireSSE fails the test unless an SSE message brought status and told.
func (r recorded) requireSSE(t *testing.T, step, status, told string) {
	t.Helper()
	for _, m := range r.SSE {
		if m.Type == "state" && m.Status == status && m.Told == told {
			return
		}
	}
	t.Errorf("%s: no SSE message brought %s %q; messages: %+v", step, status, told, r.SSE)
}

func (r recorded) sseWith(status string) int {
	n := 0
	for _, m := range r.SSE {
		if m.Status == status {
			n++
		}
	}
	return n
}

func (r recorded) sawStatus(status string) bool {
	for _, s := range r.States {
		if s.Status == status {
			return true
		}
	}
	return false
}

// story is the sequence of states shown, with their times in milliseconds.
func (r recorded) story() string {
	parts := make([]string, len(r.States))
	for i, s := range r.States {
		parts[i] = fmt.Sprintf("[+%dms %s %s: %s]", s.T, s.Src, s.Status, s.Text)
	}
	return strings.Join(parts, " → ")
}
