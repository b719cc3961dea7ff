package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/internal/browsertest"
)

// htmxPost sends what an htmx form sends: the form encoded, HX-Request, and
// the CSRF token in the header (the layout's hx-headers). It returns the
// status and the body.
func htmxPost(t *testing.T, c *Client, csrf, path string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	ackFormRE    = regexp.MustCompile(`hx-post="(/buildings/\d+/anomalies/(\d+)/ack)"`)
	openCountRE  = regexp.MustCompile(`data-open-anomalies="(\d+)"`)
	ackAllFormRE = regexp.MustCompile(`<form method="post" action="(/buildings/\d+/anomalies/ack)" id="ack-all-form"`)
	ackAllIDsRE  = regexp.MustCompile(`<input type="hidden" name="event" value="(\d+)">`)
)

// ackForms lists the acknowledgement forms of a page: path by event id, in order.
func ackForms(body string) (ids []string, paths map[string]string) {
	paths = map[string]string{}
	for _, m := range ackFormRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[2])
		paths[m[2]] = m[1]
	}
	return ids, paths
}

func openCount(t *testing.T, body string) string {
	t.Helper()
	m := openCountRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no open anomaly count on the page:\n%s", body)
	}
	return m[1]
}

// TestEndToEndAnomalyAck is acknowledging anomalies as the building's people
// meet it through the real portal: door openings outside the delivery hours
// show as open anomalies on the building page with a count; a manager says
// what was done beside each (htmx, error beside the note and the note kept;
// without htmx, a page of its own), or about a burst of them at once; the
// building page then lists only the open ones, the history's filter shows
// open or all, and the board reads who acknowledged each, when and why, and
// may not acknowledge.
func TestEndToEndAnomalyAck(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	building := buildingOf(t, mgr, device)
	history := building + "/unlocks"

	// A board member of the building.
	board := boardMember(t, p, building)

	// No deliveries allowed: every opening is flagged outside_hours.
	settings := building + "/unlock-settings"
	if status, _, body := mgr.Post(settings, settings, url.Values{"retention_days": {"1095"}, "delivery_hours": {"never"},
		"burst_count": {"20"}, "burst_minutes": {"10"}, "heartbeat_seconds": {"0"}}); status != http.StatusSeeOther {
		t.Fatalf("settings: %d\n%s", status, body)
	}
	if _, body := mgr.Get(building); openCount(t, body) != "0" || !strings.Contains(body, "No open anomalies") {
		t.Fatalf("open anomalies before any opening: %s", openCount(t, body))
	}
	for i := 1; i <= 3; i++ {
		if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("parcel-night-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	awaitPage(t, mgr, history, "parcel-night-3")

	// The building page: three open anomalies, each with its form for managers.
	_, body := mgr.Get(building)
	ids, paths := ackForms(body)
	if openCount(t, body) != "3" || len(ids) != 3 || strings.Count(body, `data-anomaly="outside_hours"`) != 3 {
		t.Fatalf("building page: %s open, forms for %q", openCount(t, body), ids)
	}
	if !strings.Contains(body, `name="_csrf" value="`) || !strings.Contains(body, `name="back" value="`+building+`#open-anomalies"`) {
		t.Errorf("acknowledgement form without its CSRF token or way back")
	}
	// The board sees them, without forms, and may not acknowledge.
	_, bbody := board.Get(building)
	if boardIDs, _ := ackForms(bbody); openCount(t, bbody) != "3" || len(boardIDs) != 0 {
		t.Errorf("board's building page: %s open, forms %q", openCount(t, bbody), boardIDs)
	}
	csrf := mgr.CSRF(building)
	boardCSRF := board.CSRF(building)
	if status, _ := htmxPost(t, board, boardCSRF, paths[ids[0]], url.Values{"note": {"board says fine"}}); status != http.StatusNotFound {
		t.Errorf("board acknowledging: %d, want 404", status)
	}
	// Without the CSRF token: refused.
	if status, _ := htmxPost(t, mgr, "", paths[ids[0]], url.Values{"note": {"device removed"}}); status != http.StatusForbidden {
		t.Errorf("acknowledging without the CSRF token: %d, want 403", status)
	}

	// htmx: a bad note comes back beside the field, the note kept.
	long := strings.Repeat("n", 501)
	status, frag := htmxPost(t, mgr, csrf, paths[ids[0]], url.Values{"note": {long}})
	if status != http.StatusOK || !strings.Contains(frag, `class="field-error"`) || !strings.Contains(frag, "at most 500 characters") ||
		!strings.Contains(frag, `value="`+long+`"`) || !strings.Contains(frag, `aria-invalid="true"`) || strings.Contains(frag, "<html") {
		t.Fatalf("bad note (htmx): %d\n%s", status, frag)
	}
	if strings.Contains(frag, "hx-preserve") {
		t.Errorf("the corrected form must replace the old one, not be preserved over it")
	}
	// A good one: the fragment shows who, and what was done.
	status, frag = htmxPost(t, mgr, csrf, paths[ids[0]], url.Values{"note": {"Courier's <b>account</b> reported to the carrier"}})
	if status != http.StatusOK || !strings.Contains(frag, `id="ack-`+ids[0]+`"`) || !strings.Contains(frag, "Acknowledged by mia@example.com") ||
		!strings.Contains(frag, "Courier&#39;s &lt;b&gt;account&lt;/b&gt; reported to the carrier") || strings.Contains(frag, "<form") {
		t.Fatalf("acknowledged (htmx): %d\n%s", status, frag)
	}
	// Twice: the conflict is said in place.
	status, frag = htmxPost(t, mgr, csrf, paths[ids[0]], url.Values{"note": {"again"}})
	if status != http.StatusOK || !strings.Contains(frag, "was already acknowledged by mia@example.com") {
		t.Fatalf("acknowledged twice (htmx): %d\n%s", status, frag)
	}

	// Without htmx: a bad note gets a page of its own (422), the note kept;
	// a good one returns to the building page with a message.
	status, _, page := mgr.Post(building, paths[ids[1]], url.Values{"note": {"removed\tand\treported"}, "back": {building + "#open-anomalies"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(page, `id="note-error"`) || !strings.Contains(page, "Acknowledge anomalies") ||
		!strings.Contains(page, `name="event" value="`+ids[1]+`"`) || !strings.Contains(html.UnescapeString(page), "removed\tand\treported") {
		t.Fatalf("bad note (plain post): %d\n%s", status, page)
	}
	status, loc, _ := mgr.Post(building, paths[ids[1]], url.Values{"note": {"false alarm: delivery hours were wrong"}, "back": {building + "#open-anomalies"}})
	if status != http.StatusSeeOther || loc != building+"#open-anomalies" {
		t.Fatalf("acknowledge (plain post): %d %q", status, loc)
	}
	// A way back elsewhere is not followed.
	status, loc, _ = mgr.Post(building, paths[ids[2]], url.Values{"note": {"device removed"}, "back": {"//evil.example/"}})
	if status != http.StatusSeeOther || loc != history+"?anomalies=open" {
		t.Fatalf("acknowledge with a foreign way back: %d %q", status, loc)
	}
	_, body = mgr.Get(building)
	if openCount(t, body) != "0" || !strings.Contains(body, "Anomaly acknowledged.") || !strings.Contains(body, "No open anomalies") {
		t.Errorf("building page after three acknowledgements: %s open", openCount(t, body))
	}

	// A burst of openings: acknowledged at once from the history's open anomalies.
	for i := 1; i <= 4; i++ {
		if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("parcel-burst-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	awaitPage(t, mgr, history, "parcel-burst-4")
	if _, body := mgr.Get(building); openCount(t, body) != "4" {
		t.Errorf("open after the burst: %s, want 4", openCount(t, body))
	}
	_, body = mgr.Get(history + "?anomalies=open")
	if got := historyActors(body); len(got) != 4 || !slices.Contains(got, "parcel-burst-1") || slices.Contains(got, "parcel-night-1") {
		t.Errorf("open anomalies in the history: %q", got)
	}
	if !strings.Contains(body, `<option value="open" selected>`) {
		t.Errorf("the filter does not show that it lists open anomalies only")
	}
	all := ackAllFormRE.FindStringSubmatch(body)
	var burst []string
	for _, m := range ackAllIDsRE.FindAllStringSubmatch(body, -1) {
		burst = append(burst, m[1])
	}
	if all == nil || len(burst) != 4 {
		t.Fatalf("no form to acknowledge the page's 4 open anomalies at once (ids %q):\n%s", burst, body)
	}
	form := url.Values{"event": burst, "back": {history + "?anomalies=open"}}
	status, frag = htmxPost(t, mgr, csrf, all[1], form)
	if status != http.StatusOK || !strings.Contains(frag, `id="ack-all"`) || !strings.Contains(frag, "field-error") || strings.Count(frag, `name="event"`) != 4 {
		t.Fatalf("acknowledge all without a note: %d\n%s", status, frag)
	}
	form.Set("note", "burst: courier's account suspended by the carrier")
	status, frag = htmxPost(t, mgr, csrf, all[1], form)
	if status != http.StatusOK || !strings.Contains(frag, "4 anomalies acknowledged.") {
		t.Fatalf("acknowledge all: %d\n%s", status, frag)
	}
	_, body = mgr.Get(history + "?anomalies=open")
	if got := historyActors(body); len(got) != 0 || !strings.Contains(body, "No events match.") {
		t.Errorf("open anomalies after acknowledging all: %q", got)
	}

	// The board reads the whole story: every anomaly with who acknowledged
	// it and what was done, and the journal's entries.
	_, body = board.Get(history + "?anomalies=1")
	if got := historyActors(body); len(got) != 7 {
		t.Errorf("all anomalies: %q, want 7", got)
	}
	for _, want := range []string{"Courier&#39;s &lt;b&gt;account&lt;/b&gt; reported to the carrier", "false alarm: delivery hours were wrong",
		"device removed", "burst: courier&#39;s account suspended by the carrier"} {
		if !strings.Contains(body, want) {
			t.Errorf("the board's history lacks the note %q", want)
		}
	}
	if n := strings.Count(body, "Acknowledged by mia@example.com"); n != 7 {
		t.Errorf("%d events say who acknowledged them, want 7", n)
	}
	if ids, _ := ackForms(body); len(ids) != 0 {
		t.Errorf("the board is offered acknowledgement forms: %q", ids)
	}
	_, body = board.Get(building + "/audit")
	if n := strings.Count(body, "anomaly.acknowledge"); n < 7 {
		t.Errorf("the building's journal shows %d acknowledgements, want 7", n)
	}
}

// TestBrowserAnomalyAck is acknowledging in a real browser, on the live
// history of open anomalies: a note being typed survives the stream's
// re-render when another anomaly arrives (hx-preserve), the acknowledgement
// is posted by htmx and swapped in place without a reload, and the row then
// leaves the open anomalies.
func TestBrowserAnomalyAck(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	building := buildingOf(t, mgr, device)
	settings := building + "/unlock-settings"
	if status, _, body := mgr.Post(settings, settings, url.Values{"retention_days": {"1095"}, "delivery_hours": {"never"},
		"burst_count": {"20"}, "burst_minutes": {"10"}, "heartbeat_seconds": {"0"}}); status != http.StatusSeeOther {
		t.Fatalf("settings: %d\n%s", status, body)
	}
	first, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-late-1"})
	if err != nil {
		t.Fatal(err)
	}
	open := building + "/unlocks?anomalies=open"
	awaitPage(t, mgr, open, "parcel-late-1")
	_, body := mgr.Get(open)
	ids, _ := ackForms(body)
	if len(ids) != 1 {
		t.Fatalf("open anomalies: forms for %q", ids)
	}
	ack := "#ack-" + ids[0]

	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Desktop, Timeout: 45 * time.Second})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	if resp := browserSignIn(t, ctx, "mia@example.com", "correct horse battery"); resp.Status != http.StatusOK {
		t.Fatalf("manager sign-in: status %d", resp.Status)
	}
	browsertest.Navigate(t, ctx, p.URL+open)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__mark = "no reload"`))
	const note = "Courier account reported to the carrier"
	browsertest.Do(t, ctx, browsertest.SendKeys(ack+"-note", note))

	// Another door opening arrives while the manager types: the stream
	// re-renders the rows, and the note typed so far stays.
	if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-late-2"}); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor[bool](t, ctx, "the second opening (parcel-late-2) on the page", `document.body.textContent.includes("parcel-late-2")`)
	if got := browsertest.Eval[string](t, ctx, `document.querySelector("`+ack+`-note").value`); got != note {
		t.Fatalf("the note being typed became %q across the live re-render", got)
	}

	// Acknowledge: swapped in place (then the row leaves the open list), no reload.
	browsertest.Do(t, ctx, browsertest.Click(ack+" button[type=submit]"))
	browsertest.WaitFor[bool](t, ctx, "the acknowledgement in place of the form", `(() => { const el = document.querySelector("`+ack+`");
		return !el || el.textContent.includes("Acknowledged by mia@example.com"); })()`)
	browsertest.WaitFor[bool](t, ctx, "the acknowledged anomaly (parcel-late-1) to leave the open ones", `!document.body.textContent.includes("parcel-late-1")`)
	if got := browsertest.Eval[string](t, ctx, `window.__mark || ""`); got != "no reload" {
		t.Errorf("the page reloaded")
	}
	if !strings.Contains(browsertest.Eval[string](t, ctx, `document.body.textContent`), "parcel-late-2") {
		t.Errorf("the other open anomaly left the page")
	}
	_, body = mgr.Get(building + "/unlocks?anomalies=1")
	if !strings.Contains(body, note) || !strings.Contains(body, first.EventID) {
		t.Errorf("the acknowledgement is not in the history")
	}
}
