package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/views"
)

// unlockFixture is the access fixture with unlock events to read: building A
// (America/New_York) has a consented device and an unknown one.
type unlockFixture struct {
	*fixture
	unlocks *sqlite.UnlockService
	device  *doorledger.Device // building A's consented device
	ny      *time.Location
}

func newUnlockFixture(t *testing.T) *unlockFixture {
	t.Helper()
	f := &unlockFixture{fixture: newFixture(t)}
	// A second unlock service on the fixture's database, as a transport's is.
	f.unlocks = sqlite.NewUnlockService(f.db)
	c, _ := f.signedConsent(t)
	f.device = must(sqlite.NewDeviceService(f.db).FindDeviceByID(sys(), c.DeviceID))(t)
	f.ny, _ = time.LoadLocation("America/New_York")
	return f
}

// record commits events as a transport would, failing the test on error.
func (f *unlockFixture) record(t *testing.T, events ...doorledger.UnlockEvent) {
	t.Helper()
	if err := f.unlocks.RecordUnlocks(sys(), events); err != nil {
		t.Fatal(err)
	}
}

var eventSeq int

// event is a granted courier unlock of building A's consented device at at.
func (f *unlockFixture) event(at time.Time, actor string) doorledger.UnlockEvent {
	eventSeq++
	return doorledger.UnlockEvent{DeviceID: f.device.ID, EventID: fmt.Sprintf("ev-%d", eventSeq), OccurredAt: at,
		Method: doorledger.MethodCourierApp, ActorRef: actor, Result: doorledger.UnlockGranted}
}

// ghost is an unlock from a device building A does not know (flagged unknown_device).
func (f *unlockFixture) ghost(at time.Time, actor string) doorledger.UnlockEvent {
	eventSeq++
	return doorledger.UnlockEvent{DeviceRef: "GHOST-1", BuildingID: f.A.ID, EventID: fmt.Sprintf("gh-%d", eventSeq), OccurredAt: at,
		Method: doorledger.MethodKeypad, ActorRef: actor, Result: doorledger.UnlockGranted}
}

var actorRE = regexp.MustCompile(`<code>(pkg-[A-Za-z0-9-]+)</code>`)

// actors lists the courier references of the history rows on a page, in order.
func actors(body string) []string {
	var out []string
	for _, m := range actorRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

var olderRE = regexp.MustCompile(`href="([^"]*)" rel="next" id="older"`)

func olderLink(body string) string {
	if m := olderRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

func TestUnlockHistoryFilters(t *testing.T) {
	f := newUnlockFixture(t)
	now := time.Now()
	// Three days ago at 23:30 in New York: the next day in UTC. The date
	// filter counts in the building's time zone.
	d := now.In(f.ny).AddDate(0, 0, -3)
	late := time.Date(d.Year(), d.Month(), d.Day(), 23, 30, 0, 0, f.ny)
	denied := f.event(now.Add(-2*time.Hour), "pkg-denied")
	denied.Result = doorledger.UnlockDenied
	// pkg-late predates the device's consent: it is flagged without_consent.
	f.record(t, f.event(now, "pkg-new"), denied, f.ghost(now.Add(-3*time.Hour), "pkg-ghost"), f.event(late, "pkg-late"))
	// Building B's events never show in A's history.
	f.record(t, doorledger.UnlockEvent{DeviceRef: "B-1", BuildingID: f.B.ID, EventID: "b-1", OccurredAt: now, Method: "keypad", ActorRef: "pkg-other-building", Result: doorledger.UnlockGranted})

	c := f.client()
	c.login(f.boardA.Email)
	base := fmt.Sprintf("/buildings/%d/unlocks", f.A.ID)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"pkg-new", "pkg-denied", "pkg-ghost", "pkg-late"}},
		{"result=denied", []string{"pkg-denied"}},
		{"result=granted", []string{"pkg-new", "pkg-ghost", "pkg-late"}},
		{fmt.Sprintf("device=%d", f.device.ID), []string{"pkg-new", "pkg-denied", "pkg-late"}},
		{"device_ref=GHOST-1", []string{"pkg-ghost"}},
		{"method=keypad", []string{"pkg-ghost"}},
		{"method=Courier+App", []string{"pkg-new", "pkg-denied", "pkg-late"}},
		{"anomalies=1", []string{"pkg-ghost", "pkg-late"}},
		{"anomaly=unknown_device", []string{"pkg-ghost"}},
		{"anomaly=without_consent&result=granted", []string{"pkg-late"}},
		{"from=" + late.Format("2006-01-02") + "&to=" + late.Format("2006-01-02"), []string{"pkg-late"}},
		{"to=" + late.AddDate(0, 0, -1).Format("2006-01-02"), nil},
	} {
		resp, body := c.get(base + "?" + tc.query)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("?%s: status %d\n%.600s", tc.query, resp.StatusCode, body)
			continue
		}
		if got := actors(body); !slices.Equal(got, tc.want) {
			t.Errorf("?%s: rows %q, want %q", tc.query, got, tc.want)
		}
		// The first page of a filter streams that filter's new events.
		q, _ := url.ParseQuery(tc.query)
		if want := html.EscapeString(fmt.Sprintf(`sse-connect="%s/events`, base)); tc.query == "" && !strings.Contains(body, `sse-connect="`+base+`/events"`) ||
			tc.query != "" && !strings.Contains(body, `sse-connect="`+html.EscapeString(base+"/events?"+q.Encode())+`"`) {
			t.Errorf("?%s: no stream of the filter (%s…)", tc.query, want)
		}
	}

	// The anomaly is a badge that explains itself.
	_, body := c.get(base + "?anomalies=1")
	if want := `title="` + html.EscapeString(doorledger.AnomalyDescription(doorledger.AnomalyUnknownDevice)) + `" data-anomaly="unknown_device">unknown device</span>`; !strings.Contains(body, want) {
		t.Errorf("no explained anomaly badge %s in\n%s", want, body)
	}

	// Bad filters are refused beside their fields, with what was typed kept.
	for _, tc := range []struct{ query, field, msg, kept string }{
		{"from=2026-13-01", "from", "Use a date such as 2026-03-08.", `value="2026-13-01"`},
		{"from=2026-03-09&to=2026-03-08", "to", "The end date must not be before the start date.", `value="2026-03-09"`},
		{"device=abc", "device", "Choose a device from the list.", ""},
		{"result=maybe", "result", "Choose granted or denied.", ""},
		{"anomaly=ghosts", "anomaly", "Choose a kind of anomaly from the list.", ""},
		{"after=not-a-cursor", "after", "This page link is not valid; start from the first page.", ""},
	} {
		resp, body := c.get(base + "?" + tc.query)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, html.EscapeString(tc.msg)) || !strings.Contains(body, tc.kept) {
			t.Errorf("?%s: status %d, want 422 with %q and %s\n%.2000s", tc.query, resp.StatusCode, tc.msg, tc.kept, body)
		}
		if len(actors(body)) != 0 {
			t.Errorf("?%s: rows shown for a filter that cannot be used", tc.query)
		}
	}

	// Installers have no history; other buildings' managers do not see A's.
	inst := f.client()
	inst.login(f.instA.Email)
	if resp, _ := inst.get(base); resp.StatusCode != http.StatusNotFound {
		t.Errorf("installer: %d, want 404", resp.StatusCode)
	}
	mgrB := f.client()
	mgrB.login(f.managerB.Email)
	for _, p := range []string{base, base + ".csv", base + "/events"} {
		if resp, _ := mgrB.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("manager B GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestUnlockHistoryPagination(t *testing.T) {
	f := newUnlockFixture(t)
	now := time.Now().Truncate(time.Second)
	var events []doorledger.UnlockEvent
	var want []string
	for i := range 120 {
		e := f.event(now.Add(-time.Duration(i)*time.Minute), fmt.Sprintf("pkg-%03d", i))
		if i%2 == 1 {
			e.Result = doorledger.UnlockDenied
		} else {
			want = append(want, e.ActorRef)
		}
		events = append(events, e)
	}
	// Two events at the same second: the cursor's id keeps them apart.
	twin := f.event(now.Add(-10*time.Minute), "pkg-010-twin")
	events = append(events, twin)
	want = slices.Insert(want, 5, "pkg-010-twin") // recorded after pkg-010: newer
	f.record(t, events...)

	c := f.client()
	c.login(f.managerA.Email)
	next := fmt.Sprintf("/buildings/%d/unlocks?result=granted", f.A.ID)
	var got []string
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		resp, body := c.get(next)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", next, resp.StatusCode)
		}
		rows := actors(body)
		if pages == 0 && (len(rows) != 50 || strings.Contains(body, "← Newest") || !strings.Contains(body, "sse-connect=")) {
			t.Errorf("first page: %d rows, newest link %v, stream %v; want 50 rows, a live page", len(rows), strings.Contains(body, "← Newest"), strings.Contains(body, "sse-connect="))
		}
		if pages > 0 && (!strings.Contains(body, "← Newest") || strings.Contains(body, "sse-connect=")) {
			t.Errorf("page %d: want a link to the newest and no stream", pages+1)
		}
		got = append(got, rows...)
		next = olderLink(body)
		if next != "" {
			u, _ := url.Parse(next)
			if u.Query().Get("result") != "granted" || u.Query().Get("after") == "" {
				t.Errorf("older link %q does not keep the filter and a cursor", next)
			}
			if _, err := doorledger.ParseUnlockCursor(u.Query().Get("after")); err != nil {
				t.Errorf("older link %q: %v", next, err)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages showed %d events:\n%q\nwant %d, newest first, each once:\n%q", len(got), got, len(want), want)
	}
}

func TestUnlockHistoryTimezones(t *testing.T) {
	f := newUnlockFixture(t)
	winter := time.Date(time.Now().Year()-1, 1, 15, 17, 4, 5, 0, time.UTC)
	summer := time.Date(time.Now().Year()-1, 7, 15, 17, 4, 5, 0, time.UTC)
	// Received when they happened: recorded now, so long after, they would
	// be flagged clock_skew and dated by the time received.
	w, s := f.event(winter, "pkg-winter"), f.event(summer, "pkg-summer")
	w.ReceivedAt, s.ReceivedAt = winter.Add(time.Second), summer.Add(time.Second)
	f.record(t, w, s,
		doorledger.UnlockEvent{DeviceRef: "W-1", BuildingID: f.B.ID, EventID: "w-1", OccurredAt: summer, ReceivedAt: summer, Method: "keypad", ActorRef: "pkg-warsaw", Result: doorledger.UnlockDenied})

	c := f.client()
	c.login(f.admin.Email)
	_, body := c.get(fmt.Sprintf("/buildings/%d/unlocks", f.A.ID))
	for _, want := range []string{
		"<th>Time (America/New_York)</th>",
		">" + winter.Format("2006") + "-01-15 12:04:05 EST</time>",
		">" + summer.Format("2006") + "-07-15 13:04:05 EDT</time>",
		`datetime="` + summer.Format(time.RFC3339) + `"`,
		"times in America/New_York",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("building A's history lacks %q", want)
		}
	}
	_, body = c.get(fmt.Sprintf("/buildings/%d/unlocks", f.B.ID))
	if want := ">" + summer.Format("2006") + "-07-15 19:04:05 CEST</time>"; !strings.Contains(body, want) || !strings.Contains(body, "<th>Time (Europe/Warsaw)</th>") {
		t.Errorf("building B's history lacks %q in Europe/Warsaw", want)
	}
}

// sseEvent reads the next server-sent event of type name from r.
func sseEvent(t *testing.T, r *bufio.Reader, name string) string {
	t.Helper()
	var typ string
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case line == "":
			if typ == name {
				return strings.Join(data, "\n")
			}
			typ, data = "", nil
		}
	}
}

func TestUnlockHistoryStream(t *testing.T) {
	f := newUnlockFixture(t)
	now := time.Now()
	f.record(t, f.event(now.Add(-time.Hour), "pkg-old"))
	c := f.client()
	c.login(f.boardA.Email)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/buildings/%d/unlocks/events?result=granted", c.base, f.A.ID), nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	if got := actors(sseEvent(t, r, "rows")); !slices.Equal(got, []string{"pkg-old"}) {
		t.Fatalf("first rows: %q", got)
	}
	// A denied event does not match the filter: the next rows are sent once
	// the granted one is recorded (the stream re-reads every second).
	denied := f.event(now, "pkg-denied")
	denied.Result = doorledger.UnlockDenied
	f.record(t, denied, f.event(now, "pkg-live"))
	if got := actors(sseEvent(t, r, "rows")); !slices.Equal(got, []string{"pkg-live", "pkg-old"}) {
		t.Fatalf("rows after the new events: %q", got)
	}
}

func TestUnlockCSVExport(t *testing.T) {
	f := newUnlockFixture(t)
	now := time.Now().Truncate(time.Second)
	var events []doorledger.UnlockEvent
	const n = 3000 // about 400 KB: more than the export's buffer
	for i := range n {
		e := f.event(now.Add(-time.Duration(i)*time.Second), fmt.Sprintf("pkg-%04d", i))
		if i%3 == 0 {
			e.Result = doorledger.UnlockDenied
		}
		events = append(events, e)
	}
	events = append(events, f.ghost(now.Add(-time.Hour), "=HYPERLINK(\"x\")"))
	f.record(t, events...)

	c := f.client()
	c.login(f.boardA.Email)
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/buildings/%d/unlocks.csv", c.base, f.A.ID), nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := resp.Header.Get("Content-Disposition"); !regexp.MustCompile(fmt.Sprintf(`^attachment; filename="unlocks-building-%d-\d{8}-\d{6}\.csv"$`, f.A.ID)).MatchString(got) {
		t.Errorf("Content-Disposition %q", got)
	}
	// Streamed: no length known in advance (chunked), not buffered whole.
	if resp.ContentLength != -1 || !slices.Contains(resp.TransferEncoding, "chunked") {
		t.Errorf("export of %d rows sent with length %d, encoding %v: want it streamed (chunked)", n, resp.ContentLength, resp.TransferEncoding)
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"occurred_at", "occurred_at_utc", "received_at_utc", "device_id", "device_ref", "event_id", "method", "actor_ref", "result", "anomalies", "source", "acknowledged_at_utc", "acknowledged_by", "ack_note", "effective_at"}
	if !slices.Equal(records[0], wantHeader) {
		t.Errorf("header %q, want %q", records[0], wantHeader)
	}
	if len(records) != n+2 {
		t.Fatalf("%d rows, want %d", len(records)-1, n+1)
	}
	first := records[1]
	if first[7] != "pkg-0000" || first[3] != fmt.Sprint(f.device.ID) || first[1] != now.UTC().Format(time.RFC3339) ||
		first[0] != now.In(f.ny).Format(time.RFC3339) || first[8] != "denied" {
		t.Errorf("newest row %q", first)
	}
	for _, r := range records[1:] {
		if r[4] == "GHOST-1" && (r[7] != `'=HYPERLINK("x")` || r[9] != "unknown_device") {
			t.Errorf("ghost row %q: want the formula defused and the anomaly named", r)
		}
	}

	// The export takes the history's filter.
	_, body := c.get(fmt.Sprintf("/buildings/%d/unlocks.csv?result=denied&anomalies=1", f.A.ID))
	if records, _ := csv.NewReader(strings.NewReader(body)).ReadAll(); len(records) != 1 {
		t.Errorf("denied anomalies: %d rows, want the header only", len(records)-1)
	}
	_, body = c.get(fmt.Sprintf("/buildings/%d/unlocks.csv?result=denied", f.A.ID))
	if records, _ := csv.NewReader(strings.NewReader(body)).ReadAll(); len(records) != n/3+1 {
		t.Errorf("denied: %d rows, want %d", len(records)-1, n/3)
	}
	// A filter that cannot be used is the history page with the message, not a file.
	resp, body = c.get(fmt.Sprintf("/buildings/%d/unlocks.csv?from=yesterday", f.A.ID))
	if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Content-Disposition") != "" || !strings.Contains(body, "Use a date such as 2026-03-08.") {
		t.Errorf("bad filter export: %d %q\n%.500s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}
	// Each export is in the audit journal.
	entries := must(f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{BuildingID: f.A.ID}))(t)
	exports := 0
	for _, e := range entries {
		if e.Action == "unlocks.export" {
			exports++
		}
	}
	if exports != 3 {
		t.Errorf("%d exports audited, want 3", exports)
	}
	// The building's journal says what each export was, in a sentence.
	_, page := c.get(fmt.Sprintf("/buildings/%d/audit", f.A.ID))
	for _, want := range []string{
		fmt.Sprintf("exported %d,%03d unlock events, all dates, denied only, as CSV", n/3/1000, n/3%1000),
		"exported 0 unlock events, all dates, denied only, anomalies only, as CSV",
		"<small><code>unlocks.export</code></small>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the journal lacks %q", want)
		}
	}
	if strings.Contains(page, "&#34;AnomaliesOnly&#34;") || strings.Contains(page, "&#34;format&#34;") {
		t.Error("the journal prints an entry's JSON")
	}
}

func TestUnlockSettingsForm(t *testing.T) {
	f := newUnlockFixture(t)
	c := f.client()
	c.login(f.managerA.Email)
	path := fmt.Sprintf("/buildings/%d/unlock-settings", f.A.ID)
	_, body := c.get(path)
	for _, want := range []string{`name="retention_days" type="number" value="1095"`, `name="burst_count" type="number" value="20"`,
		`name="burst_minutes" type="number" value="10"`, "mon-fri 08:00-20:00; sat 09:00-12:00,14:00-17:00", "Delivery hours (America/New_York)"} {
		if !strings.Contains(body, want) {
			t.Errorf("settings page lacks %q", want)
		}
	}

	bad := url.Values{"retention_days": {"forever"}, "delivery_hours": {"mon-fri 8-20"}, "burst_count": {"5"}, "burst_minutes": {"0"},
		"heartbeat_seconds": {"300"}, "alert_board": {"1"}}
	resp, body := c.post(path, bad, "")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad settings: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`id="retention_days-error" class="field-error">Enter a whole number.`,
		`id="delivery_hours-error" class="field-error">` + html.EscapeString(`"8-20": write hours as 08:00-20:00 (00:00 to 24:00).`),
		`id="burst_minutes-error" class="field-error">Use from 1 to 1440 minutes.`,
		`value="forever"`, ">mon-fri 8-20</textarea>", `name="burst_count" type="number" value="5"`, `name="alert_board" value="1" checked`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("bad settings page lacks %s\n", want)
		}
	}
	if st := must(f.unlocks.UnlockSettings(sys(), f.A.ID))(t); st.RetentionDays != doorledger.DefaultRetentionDays || st.DeliveryHours.Restricted {
		t.Errorf("refused settings were saved: %+v", st)
	}

	good := url.Values{"retention_days": {"365"}, "delivery_hours": {"mon-fri 08:00-20:00\nsat 09:00-12:00"}, "burst_count": {"5"},
		"burst_minutes": {"15"}, "heartbeat_seconds": {"300"}, "alert_board": {"1"}}
	resp, _ = c.post(path, good, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != fmt.Sprintf("/buildings/%d#unlocks", f.A.ID) {
		t.Fatalf("good settings: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	st := must(f.unlocks.UnlockSettings(sys(), f.A.ID))(t)
	if st.RetentionDays != 365 || st.DeliveryHours.String() != "mon-fri 08:00-20:00; sat 09:00-12:00" || st.BurstCount != 5 ||
		st.BurstMinutes != 15 || st.HeartbeatSeconds != 300 || !st.AlertBoard {
		t.Errorf("saved settings %+v", st)
	}
	if _, body := c.get(path); !strings.Contains(body, ">mon-fri 08:00-20:00; sat 09:00-12:00</textarea>") {
		t.Errorf("the saved schedule is not shown back")
	}
}

// upload posts a file to the import preview as a browser form does.
func (c *client) upload(path, name string, data []byte) (*http.Response, string) {
	c.tb.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("_csrf", c.csrf())
	fw, _ := w.CreateFormFile("file", name)
	fw.Write(data)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.do(req)
}

var tokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

// selected returns the column chosen for field in the mapping form ("" for none).
func selected(body, field string) string {
	sel := regexp.MustCompile(`(?s)<select id="col_` + field + `".*?</select>`).FindString(body)
	if m := regexp.MustCompile(`<option value="(\d+)" selected>`).FindStringSubmatch(sel); m != nil {
		return m[1]
	}
	return ""
}

func TestUnlockImport(t *testing.T) {
	f := newUnlockFixture(t)
	c := f.client()
	c.login(f.managerA.Email)
	preview := fmt.Sprintf("/buildings/%d/unlocks/import/preview", f.A.ID)
	importPath := fmt.Sprintf("/buildings/%d/unlocks/import", f.A.ID)
	history := fmt.Sprintf("/buildings/%d/unlocks", f.A.ID)
	day := time.Now().In(f.ny).AddDate(0, 0, -2).Format("2006-01-02")

	if resp, body := c.get(importPath); resp.StatusCode != http.StatusOK || !strings.Contains(body, `enctype="multipart/form-data"`) {
		t.Fatalf("upload page: %d", resp.StatusCode)
	}

	// A vendor's export: its own column names, semicolons, local times.
	good := "Courier;Timestamp;Serial Number;Status;Type\n" +
		"pkg-imp-1;" + day + " 09:15:00;" + f.device.Serial + ";Success;Courier App\n" +
		"pkg-imp-2;" + day + " 09:20:00;" + f.device.Serial + ";Rejected;Keypad\n" +
		"pkg-imp-3;" + day + " 23:50:00;UNKNOWN-9;Success;Keypad\n"
	resp, body := c.upload(preview, "vendor.csv", []byte(good))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"<th>1: Courier</th>", "<th>2: Timestamp</th>", "<td>pkg-imp-3</td>", "separated by semicolons", "<strong>vendor.csv</strong>"} {
		if !strings.Contains(body, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	for field, col := range map[string]string{"occurred_at": "1", "device": "2", "result": "3", "method": "4", "actor_ref": "0", "event_id": "", "device_id": ""} {
		if got := selected(body, field); got != col {
			t.Errorf("mapping of %s: column %q, want %q (guessed from the header)", field, got, col)
		}
	}
	token := tokenRE.FindStringSubmatch(body)[1]
	mapping := url.Values{"token": {token}, "col_occurred_at": {"1"}, "col_device": {"2"}, "col_result": {"3"}, "col_method": {"4"}, "col_actor_ref": {"0"}}

	// The token is the uploader's: another manager of the building cannot use it.
	other := f.client()
	other.login(f.admin.Email)
	if resp, body := other.post(importPath, mapping, ""); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "upload it again") {
		t.Errorf("someone else's token: %d\n%.500s", resp.StatusCode, body)
	}
	// A mapping without the time is refused beside its select.
	noTime := url.Values{"token": {token}, "col_device": {"2"}, "col_result": {"3"}}
	resp, body = c.post(importPath, noTime, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Choose the column with the time of each event.") ||
		!strings.Contains(body, `<select id="col_occurred_at" name="col_occurred_at" aria-invalid="true">`) {
		t.Errorf("mapping without a time: %d\n%.3000s", resp.StatusCode, body)
	}

	resp, _ = c.post(importPath, mapping, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != history {
		t.Fatalf("import: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Flagged: pkg-imp-1 predates the device's consent, pkg-imp-3 is from an
	// unknown device (pkg-imp-2 was refused at the door: not an anomaly).
	_, body = c.get(history)
	if !strings.Contains(body, "Imported vendor.csv: 3 events, 3 new, 0 already recorded, 2 flagged as anomalies.") {
		t.Errorf("no result counts after the import:\n%.1500s", body)
	}
	if got := actors(body); !slices.Equal(got, []string{"pkg-imp-3", "pkg-imp-2", "pkg-imp-1"}) {
		t.Errorf("history after the import: %q", got)
	}
	if want := ">" + day + " 23:50:00 "; !strings.Contains(body, want) {
		t.Errorf("local times of the file are not read in the building's zone: no %q", want)
	}
	// The token was used up.
	if resp, _ := c.post(importPath, mapping, ""); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("second import with the same token: %d, want 422", resp.StatusCode)
	}

	count := func() int {
		page := must(f.unlocks.History(doorledger.NewContextWithUser(context.Background(), f.admin), doorledger.UnlockFilter{BuildingID: f.A.ID, Limit: 500}))(t)
		return len(page.Events)
	}
	before := count()

	// All or nothing: one bad row, and nothing of the file is recorded; the
	// problems are listed by line number.
	var lines []string
	lines = append(lines, "time,device,result,courier")
	for i := range 40 {
		ts := day + fmt.Sprintf(" 10:%02d:00", i)
		switch i {
		case 3:
			ts = "yesterday noon"
		case 35:
			ts = ""
		}
		lines = append(lines, fmt.Sprintf("%s,%s,granted,pkg-bad-%d", ts, f.device.Serial, i))
	}
	resp, body = c.upload(preview, "bad.csv", []byte(strings.Join(lines, "\n")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview of the file with bad rows: %d\n%s", resp.StatusCode, body)
	}
	token = tokenRE.FindStringSubmatch(body)[1]
	resp, body = c.post(importPath, url.Values{"token": {token}, "col_occurred_at": {"0"}, "col_device": {"1"}, "col_result": {"2"}, "col_actor_ref": {"3"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("import of bad rows: %d", resp.StatusCode)
	}
	problems := regexp.MustCompile(`<li><strong>(line \d+):</strong> ([^<]*)</li>`).FindAllStringSubmatch(body, -1)
	if len(problems) != 2 || problems[0][1] != "line 5" || !strings.Contains(html.UnescapeString(problems[0][2]), `occurred_at: "yesterday noon" is not a time`) ||
		problems[1][1] != "line 37" || problems[1][2] != "occurred_at: missing" {
		t.Errorf("problems %q, want lines 5 and 37 in order", problems)
	}
	if !strings.Contains(body, "Nothing was imported.") || !strings.Contains(body, "2 problems in the file; nothing was accepted.") {
		t.Errorf("the page does not say nothing was imported")
	}
	if selected(body, "occurred_at") != "0" || tokenRE.FindStringSubmatch(body)[1] != token {
		t.Errorf("the mapping and the file are not kept for another try")
	}
	if got := count(); got != before {
		t.Errorf("%d events after a refused import, want %d", got, before)
	}

	// Files that are not UTF-8 CSV, or that break their quoting, are refused
	// at once with where and why.
	for _, tc := range []struct {
		name   string
		data   []byte
		status int
		want   string
	}{
		{"latin1.csv", []byte("time,device,result,courier\n" + day + " 10:00:00,SN-1,granted,Z\xfcrich\n"), http.StatusUnprocessableEntity,
			`line 2:</strong> column &#34;courier&#34;: not UTF-8 text; export the file as UTF-8 (it may be Latin-1 or Windows-1252)`},
		{"utf16.csv", append([]byte{0xFF, 0xFE}, []byte("t\x00i\x00m\x00e\x00")...), http.StatusUnprocessableEntity,
			"line 1: the file is UTF-16 or binary, not UTF-8 text; export it as CSV UTF-8"},
		{"quotes.csv", []byte("time,device,result,courier\n" + day + " 10:00:00,SN-1,granted,\"pkg \"quoted\" badly\"\n"), http.StatusUnprocessableEntity,
			"line 2: broken quoting at column"},
		{"empty.csv", []byte("\n\n"), http.StatusUnprocessableEntity, "The file is empty."},
	} {
		resp, body := c.upload(preview, tc.name, tc.data)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: status %d, want %d with %q\n%.2500s", tc.name, resp.StatusCode, tc.status, tc.want, body)
		}
		if tokenRE.MatchString(body) {
			t.Errorf("%s: a refused file is offered for import", tc.name)
		}
	}

	// Broken quoting after the preview's rows: found at the import, nothing written.
	lines = lines[:1]
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("%s 11:%02d:00,%s,granted,pkg-q-%d", day, i, f.device.Serial, i))
	}
	lines = append(lines, day+` 12:00:00,`+f.device.Serial+`,granted,"pkg "q" x"`)
	resp, body = c.upload(preview, "late-quote.csv", []byte(strings.Join(lines, "\n")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview of late-quote.csv: %d\n%s", resp.StatusCode, body)
	}
	token = tokenRE.FindStringSubmatch(body)[1]
	resp, body = c.post(importPath, url.Values{"token": {token}, "col_occurred_at": {"0"}, "col_device": {"1"}, "col_result": {"2"}, "col_actor_ref": {"3"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "<li><strong>line 32:</strong> broken quoting at column") ||
		!strings.Contains(body, "nothing after it was read") {
		t.Errorf("late broken quoting: %d\n%.3000s", resp.StatusCode, body)
	}
	if got := count(); got != before {
		t.Errorf("%d events after a refused import, want %d", got, before)
	}

	// No file at all.
	if resp, body := c.post(preview, url.Values{}, ""); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Choose the CSV file to upload.") {
		t.Errorf("no file: %d", resp.StatusCode)
	}
}

func TestUnlockChart(t *testing.T) {
	days := []doorledger.UnlockDay{{Date: "2026-03-01"}, {Date: "2026-03-02", Granted: 7, Denied: 2, Anomalous: 1}, {Date: "2026-03-03", Granted: 1}}
	var buf bytes.Buffer
	if err := views.UnlockChart(days, "c1", "Door openings").Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	bars := regexp.MustCompile(`<rect [^>]*data-series="(\w+)" data-date="([\d-]+)" data-value="(\d+)"><title>([^<]*)</title></rect>`).FindAllStringSubmatch(svg, -1)
	if len(bars) != 9 {
		t.Fatalf("%d bars with a title, want 3 per day:\n%s", len(bars), svg)
	}
	if b := bars[3]; b[1] != "granted" || b[2] != "2026-03-02" || b[3] != "7" || b[4] != "2026-03-02: 7 granted" {
		t.Errorf("bar %q", b)
	}
	for _, want := range []string{`<title id="c1-title">Door openings</title>`, `role="img" aria-labelledby="c1-title"`,
		`text-anchor="end" font-size="12" fill="currentColor">8</text>`, // the y axis rounds 7 up to 8, with 4 in the middle
		`text-anchor="end" font-size="12" fill="currentColor">4</text>`,
		`text-anchor="middle" font-size="12" fill="currentColor">Mar 3</text>`, // the last day is labelled
		"<td>2026-03-02</td><td>7</td><td>2</td><td>1</td>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s", want)
		}
	}
	if strings.Contains(svg, "<script") || strings.Contains(svg, "style=") {
		t.Errorf("the chart must be plain SVG (no script, no inline style: the CSP forbids both)")
	}
}
