package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/internal/browsertest"
)

// historyRow is one row of the history table as the page shows it.
type historyRow struct {
	EventID  string   `json:"eventId"`
	Time     string   `json:"time"`
	Datetime string   `json:"datetime"`
	Device   string   `json:"device"`
	Method   string   `json:"method"`
	Actor    string   `json:"actor"`
	Result   string   `json:"result"`
	Anomaly  []string `json:"anomaly"`
}

const historyRowsJS = `[...document.querySelectorAll("#unlock-rows tbody tr")].map(tr => {
	const t = (i) => tr.cells[i].textContent.replace(/\s+/g, " ").trim();
	return {eventId: tr.getAttribute("data-event-id"), time: t(0), datetime: tr.querySelector("time").getAttribute("datetime"),
		device: t(1), method: t(2), actor: t(3), result: t(4),
		anomaly: [...tr.cells[5].querySelectorAll("[data-anomaly]")].map(b => b.getAttribute("data-anomaly"))};
})`

// awaitHistoryRow waits, without reloading, until the history shows the row
// of eventID, and returns every row then shown.
func awaitHistoryRow(t *testing.T, ctx context.Context, eventID string) []historyRow {
	t.Helper()
	rows, err := browsertest.Wait[[]historyRow](ctx, `(() => { const rows = `+historyRowsJS+`; return rows.some(r => r.eventId === `+jsString(eventID)+`) ? rows : null; })()`)
	if err != nil {
		t.Logf("portal log:\n%s", lastPortal.Stderr.String())
		t.Fatalf("waiting for the row of event %s: %v\n%s", eventID, err, browsertest.Describe(ctx))
	}
	return rows
}

// TestBrowserHistoryLive opens a building's unlock history in headless
// Chromium and watches door openings reported by a simulated device over MQTT
// appear in it, newest first, with their local time labelled, without a
// reload: the rows come over server-sent events, under the portal's CSP.
func TestBrowserHistoryLive(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	history := buildingOf(t, mgr, device) + "/unlocks"
	chicago, _ := time.LoadLocation("America/Chicago")

	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Desktop, Timeout: 45 * time.Second})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, "mia@example.com", "correct horse battery"); resp.Status != 200 {
		t.Fatalf("manager sign-in: status %d", resp.Status)
	}
	// Count the stream's opens and messages from the page's first script on
	// (a script added through the DevTools protocol is not subject to the CSP).
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.__sse = {opens: 0, messages: 0};
		document.addEventListener("htmx:sseOpen", () => window.__sse.opens++);
		document.addEventListener("htmx:sseMessage", () => window.__sse.messages++);`}); err != nil {
		t.Fatal(err)
	}
	browsertest.Navigate(t, ctx, p.URL+history)
	if got := readPage(t, ctx); got.H1 != "Unlock history" || !strings.Contains(got.Lead, "times in America/Chicago") {
		t.Fatalf("history page: %+v", got)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#unlock-rows tbody tr").length`); n != 0 {
		t.Fatalf("%d rows before any door opened", n)
	}
	// From here the page must not reload: a mark on window proves it (a
	// reload would lose it). Wait for the stream's first message, so that
	// what follows arrives on an open stream.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__history = "no reload"`))
	browsertest.WaitFor[bool](t, ctx, "the history's event stream to send its first rows", `window.__sse.messages > 0`)
	before := browsertest.Eval[int](t, ctx, `window.__sse.messages`)

	// The courier opens the door.
	at := time.Now()
	first, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-live-1"})
	if err != nil {
		t.Fatal(err)
	}
	rows := awaitHistoryRow(t, ctx, first.EventID)
	t.Logf("first row on the page %v after the unlock: %+v", time.Since(at).Round(time.Millisecond), rows)
	wantTime := first.OccurredAt.In(chicago).Format("2006-01-02 15:04:05 MST")
	if len(rows) != 1 || rows[0].Time != wantTime || rows[0].Datetime != first.OccurredAt.UTC().Format(time.RFC3339) ||
		!strings.HasPrefix(rows[0].Device, "Acme SN-9") || rows[0].Method != "courier_app" || rows[0].Actor != "parcel-live-1" || rows[0].Result != "granted" {
		t.Errorf("rows %+v, want one granted courier_app row of parcel-live-1 at %s", rows, wantTime)
	}
	if len(rows) == 1 && !strings.HasSuffix(rows[0].Time, first.OccurredAt.In(chicago).Format(" MST")) {
		t.Errorf("the time %q is not labelled with its zone", rows[0].Time)
	}

	// A refusal a moment later lands on top.
	second, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-live-2", Method: "keypad", Result: doorledger.UnlockDenied,
		OccurredAt: first.OccurredAt.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rows = awaitHistoryRow(t, ctx, second.EventID)
	if len(rows) != 2 || rows[0].EventID != second.EventID || rows[0].Result != "denied" || rows[0].Method != "keypad" || rows[1].EventID != first.EventID {
		t.Errorf("rows after the refusal %+v, want it first, then the opening", rows)
	}

	h := browsertest.Eval[struct {
		Marker   string `json:"marker"`
		Opens    int    `json:"opens"`
		Messages int    `json:"messages"`
	}](t, ctx, `({marker: window.__history, opens: window.__sse.opens, messages: window.__sse.messages})`)
	if h.Marker != "no reload" {
		t.Fatalf("the page reloaded or navigated\n%s", browsertest.Describe(ctx))
	}
	if h.Messages-before < 1 || h.Opens != 1 {
		t.Errorf("%d stream opens, %d messages after the first: want the rows brought by the one open stream", h.Opens, h.Messages-before)
	}
	t.Logf("%d SSE messages brought the two rows", h.Messages-before)
	browsertest.CheckConsole(t, ctx)
	browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "history-live.png"))

	// The building's and the device's charts count today's two events.
	today := time.Now().In(chicago).Format("2006-01-02")
	for _, pg := range []struct{ path, chart, shot string }{
		{strings.TrimSuffix(history, "/unlocks"), "chart-building", "building-unlocks.png"},
		{device, "chart-device", "device-unlocks.png"},
	} {
		browsertest.Navigate(t, ctx, p.URL+pg.path)
		bars := browsertest.Eval[map[string]string](t, ctx, fmt.Sprintf(`Object.fromEntries([...document.querySelectorAll('#%s rect[data-date=%q]')].map(r => [r.getAttribute("data-series"), r.getAttribute("data-value")]))`, pg.chart, today))
		if bars["granted"] != "1" || bars["denied"] != "1" || bars["anomalous"] != "0" {
			t.Errorf("%s: today's bars %v, want 1 granted, 1 denied, 0 anomalous", pg.path, bars)
		}
		browsertest.CheckConsole(t, ctx)
		browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), pg.shot))
	}
}
