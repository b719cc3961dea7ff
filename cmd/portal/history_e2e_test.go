package main

import (
	"encoding/csv"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// buildingOf reads the building's path from a device page.
func buildingOf(t *testing.T, c *Client, device string) string {
	t.Helper()
	_, body := c.Get(device)
	m := regexp.MustCompile(`<p><a href="(/buildings/\d+)">`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no building link on %s:\n%s", device, body)
	}
	return m[1]
}

// boardMember has the admin create a board member, Bo Board, grant them the
// building (its path) and returns their signed-in client.
func boardMember(t *testing.T, p *Portal, building string) *Client {
	t.Helper()
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	admin.Post("/users/new", "/users", url.Values{"name": {"Bo Board"}, "email": {"bo@example.com"}, "role": {"board"}, "password": {"correct horse battery"}})
	_, body := admin.Get("/users")
	m := regexp.MustCompile(`href="/users/(\d+)">Bo Board`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no Bo Board on /users:\n%s", body)
	}
	admin.Post(building, building+"/grants", url.Values{"user_id": {m[1]}})
	board := NewClient(t, p.URL)
	board.MustLogin("bo@example.com", "correct horse battery")
	return board
}

var (
	historyActorRE = regexp.MustCompile(`<code>((?:parcel|pkg)-[A-Za-z0-9-]+)</code>`)
	historyOlderRE = regexp.MustCompile(`href="([^"]*)" rel="next" id="older"`)
	importTokenRE  = regexp.MustCompile(`name="token" value="([^"]+)"`)
)

func historyActors(body string) []string {
	var out []string
	for _, m := range historyActorRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestEndToEndHistory is the unlock history as a manager meets it: a device
// opens the door over MQTT and the event is in the history with its local
// time; filters, the CSV export, a vendor's export imported (and a bad one
// refused whole), page after page of history, the delivery-hours settings,
// and the charts on the building and device pages.
func TestEndToEndHistory(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	building := buildingOf(t, mgr, device)
	history := building + "/unlocks"
	chicago, _ := time.LoadLocation("America/Chicago")

	// A door opening, and a refusal, reported by the device.
	granted, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-e2e-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: "parcel-e2e-2", Result: doorledger.UnlockDenied, Method: "keypad"}); err != nil {
		t.Fatal(err)
	}
	body := awaitPage(t, mgr, history, "parcel-e2e-2")
	if got := historyActors(body); !slices.Equal(got, []string{"parcel-e2e-2", "parcel-e2e-1"}) && !slices.Equal(got, []string{"parcel-e2e-1", "parcel-e2e-2"}) {
		t.Fatalf("history rows %q", got)
	}
	if want := ">" + granted.OccurredAt.In(chicago).Format("2006-01-02 15:04:05 MST") + "</time>"; !strings.Contains(body, want) ||
		!strings.Contains(body, "<th>Time (America/Chicago)</th>") {
		t.Errorf("history lacks the local time %s labelled with its zone", want)
	}
	if _, body := mgr.Get(history + "?result=denied"); !slices.Equal(historyActors(body), []string{"parcel-e2e-2"}) {
		t.Errorf("denied only: %q", historyActors(body))
	}
	if _, body := mgr.Get(history + "?method=keypad&result=granted"); len(historyActors(body)) != 0 {
		t.Errorf("granted keypad: %q, want none", historyActors(body))
	}

	// The export: a CSV attachment of the filtered history.
	resp, err := mgr.http.Get(p.URL + building + "/unlocks.csv?result=granted")
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment; filename=") {
		t.Fatalf("export: %d %q %v", resp.StatusCode, resp.Header.Get("Content-Disposition"), err)
	}
	if len(records) != 2 || records[1][7] != "parcel-e2e-1" || records[1][5] != granted.EventID || records[1][10] != "mqtt" {
		t.Errorf("export rows %q", records)
	}

	// A vendor's export: 70 openings two days ago, in Chicago time. First a
	// copy with one bad row: refused whole, the line named.
	importPage := building + "/unlocks/import"
	day := time.Now().In(chicago).AddDate(0, 0, -2).Format("2006-01-02")
	rows := []string{"Date Time,Serial,Outcome,Package ID"}
	for i := range 70 {
		rows = append(rows, fmt.Sprintf("%s %02d:%02d:00,SN-9,OK,pkg-%02d", day, 8+i/60, i%60, i))
	}
	bad := slices.Clone(rows)
	bad[42] = strings.Replace(bad[42], ",OK,", ",maybe,", 1)
	status, _, body := mgr.PostMultipart(importPage, building+"/unlocks/import/preview", url.Values{}, map[string]map[string][]byte{"file": {"export.csv": []byte(strings.Join(bad, "\r\n"))}})
	token := importTokenRE.FindStringSubmatch(body)
	if status != http.StatusOK || token == nil {
		t.Fatalf("preview: %d\n%s", status, body)
	}
	mapping := url.Values{"token": {token[1]}, "col_occurred_at": {"0"}, "col_device": {"1"}, "col_result": {"2"}, "col_actor_ref": {"3"}}
	status, _, body = mgr.Post(importPage, building+"/unlocks/import", mapping)
	if status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), `line 43:</strong> result: "maybe" is neither granted nor denied`) {
		t.Fatalf("bad import: %d\n%s", status, body)
	}
	if _, body := mgr.Get(history); strings.Contains(body, "pkg-00") {
		t.Fatalf("a refused import left events behind")
	}
	status, _, body = mgr.PostMultipart(importPage, building+"/unlocks/import/preview", url.Values{}, map[string]map[string][]byte{"file": {"export.csv": []byte(strings.Join(rows, "\r\n"))}})
	if token = importTokenRE.FindStringSubmatch(body); status != http.StatusOK || token == nil {
		t.Fatalf("preview: %d\n%s", status, body)
	}
	mapping.Set("token", token[1])
	if status, loc, body := mgr.Post(importPage, building+"/unlocks/import", mapping); status != http.StatusSeeOther || loc != history {
		t.Fatalf("import: %d %q\n%s", status, loc, body)
	}
	if _, body := mgr.Get(history); !strings.Contains(body, "Imported export.csv: 70 events, 70 new, 0 already recorded") {
		t.Errorf("no import result on the history page")
	}

	// 72 events: two pages of 50, newest first, each event once.
	var seen []string
	next := history
	for i := 0; next != ""; i++ {
		if i > 3 {
			t.Fatal("too many pages")
		}
		_, body := mgr.Get(next)
		seen = append(seen, historyActors(body)...)
		next = ""
		if m := historyOlderRE.FindStringSubmatch(body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(seen) != 72 || seen[len(seen)-1] != "pkg-00" || seen[2] != "pkg-69" {
		t.Errorf("pages showed %d events: %q", len(seen), seen)
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != 72 {
		t.Errorf("an event was shown twice across pages")
	}

	// Delivery hours: a bad schedule is refused beside the field, the input kept.
	settings := building + "/unlock-settings"
	form := url.Values{"retention_days": {"1095"}, "delivery_hours": {"weekdays 9 to 5"}, "burst_count": {"20"}, "burst_minutes": {"10"}, "heartbeat_seconds": {"0"}}
	status, _, body = mgr.Post(settings, settings, form)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, ">weekdays 9 to 5</textarea>") || !strings.Contains(body, `id="delivery_hours-error"`) {
		t.Fatalf("bad settings: %d\n%s", status, body)
	}
	form.Set("delivery_hours", "mon-fri 08:00-20:00")
	if status, _, body := mgr.Post(settings, settings, form); status != http.StatusSeeOther {
		t.Fatalf("settings: %d\n%s", status, body)
	}

	// The dashboards: the building's chart and anomalies (the import's
	// openings predate the device's consent), the device's chart and events.
	_, body = mgr.Get(building)
	for _, want := range []string{`<section id="unlocks">`, `<svg id="chart-building"`, `data-series="granted" data-date="` + day + `" data-value="70">`,
		`data-anomaly="without_consent"`, `href="` + history + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("building page lacks %s", want)
		}
	}
	_, body = mgr.Get(device)
	for _, want := range []string{`<svg id="chart-device"`, "parcel-e2e-1", fmt.Sprintf(`href="%s?device=%d"`, history, id)} {
		if !strings.Contains(body, want) {
			t.Errorf("device page lacks %s", want)
		}
	}
}
