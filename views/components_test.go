package views

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"golang.org/x/net/html"
)

var (
	testBuilding = &doorledger.Building{ID: 7, Name: "12 Elm Street", Timezone: "UTC"}
	testDevice   = &doorledger.Device{ID: 3, BuildingID: 7, DeviceDetails: doorledger.DeviceDetails{Vendor: "Acme", Model: "Door 2", Serial: "X1", Location: "lobby"}}
	testAt       = time.Date(2026, 3, 8, 9, 14, 5, 0, time.UTC)
)

func historyEvents() []*doorledger.UnlockEvent {
	return []*doorledger.UnlockEvent{
		{ID: 30, DeviceID: 3, EventID: "e30", OccurredAt: testAt, Method: doorledger.MethodKeypad, Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT},
		{ID: 29, DeviceID: 3, EventID: "e29", OccurredAt: testAt.Add(-time.Hour), Method: doorledger.MethodRemote, Result: doorledger.UnlockDenied,
			Anomalies: []string{doorledger.AnomalyAfterRevocation}, Source: doorledger.SourceHTTP},
		{ID: 28, DeviceRef: "acme:zz9", EventID: "e28", OccurredAt: testAt.Add(-48 * time.Hour), ReceivedAt: testAt.Add(-2 * time.Hour),
			Method: doorledger.MethodKeypad, Result: doorledger.UnlockGranted, Anomalies: []string{doorledger.AnomalyUnknownDevice, doorledger.AnomalyClockSkew}, Source: doorledger.SourceCSV},
		{ID: 27, DeviceID: 9, EventID: "e27", OccurredAt: testAt.Add(-3 * time.Hour), Method: doorledger.MethodKeypad, Result: doorledger.UnlockGranted,
			Anomalies: []string{doorledger.AnomalyBurst}, AcknowledgedAt: testAt, AcknowledgedBy: "mia@example.com", AckNote: "courier's bulk drop"},
	}
}

func historyRows(events []*doorledger.UnlockEvent) UnlockRowsView {
	return UnlockRowsView{
		BuildingID: 7, Loc: time.UTC, Events: events,
		Devices: map[int64]*doorledger.Device{3: testDevice},
		Query:   "anomalies=open", Next: "c-27", Paged: true,
		Ack: AckControls{BuildingID: 7, CSRF: "tok", CanManage: true, Back: "/buildings/7/unlocks"},
	}
}

func TestUnlockRowsShowsTheHistory(t *testing.T) {
	doc := render(t, UnlockRows(historyRows(historyEvents())))

	rows := all(doc, "tbody tr")
	if got, want := len(rows), 4; got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, attr(r, "data-event-id"))
	}
	if want := []string{"e30", "e29", "e28", "e27"}; !slices.Equal(ids, want) {
		t.Errorf("rows %v, want newest first %v", ids, want)
	}
	for i, want := range []struct{ time, device, result, class, source string }{
		{"2026-03-08 09:14:05 UTC", "Acme X1 (lobby)", "granted", "badge-ok", "device"},
		{"2026-03-08 08:14:05 UTC", "Acme X1 (lobby)", "denied", "badge-warn", "vendor cloud"},
		// a skewed clock: dated by the time received, the device's time beside it
		{"2026-03-08 07:14:05 UTC received; device clock: 2026-03-06 09:14:05 UTC", "unknown acme:zz9", "granted", "badge-ok", "CSV import"},
		{"2026-03-08 06:14:05 UTC", "device 9", "granted", "badge-ok", ""},
	} {
		cells := all(rows[i], "td")
		if len(cells) != 7 {
			t.Fatalf("row %d: %d cells, want 7", i, len(cells))
		}
		badge := one(t, cells[4], "span.badge")
		if got := [5]string{text(cells[0]), text(cells[1]), text(badge), "", text(cells[6])}; got != [5]string{want.time, want.device, want.result, "", want.source} {
			t.Errorf("row %d reads %q, want %q", i, got, [5]string{want.time, want.device, want.result, "", want.source})
		}
		if !hasClass(badge, want.class) {
			t.Errorf("row %d: result badge class %q, want %s", i, attr(badge, "class"), want.class)
		}
	}
	if got, want := texts(rows[2], "span[data-anomaly]"), []string{"unknown device", "clock skew"}; !slices.Equal(got, want) {
		t.Errorf("anomaly badges %q, want %q", got, want)
	}
	if got := attr(one(t, rows[1], "a"), "href"); got != "/devices/3" {
		t.Errorf("device link %q, want /devices/3", got)
	}

	// open anomalies offer the form; the acknowledged one says who and what
	for _, id := range []string{"ack-29", "ack-28"} {
		f := one(t, doc, "#"+id+" form")
		if got, want := attr(f, "action"), "/buildings/7/anomalies/"+strings.TrimPrefix(id, "ack-")+"/ack"; got != want {
			t.Errorf("%s posts to %q, want %q", id, got, want)
		}
	}
	if got, want := text(one(t, doc, "#ack-27")), "Acknowledged by mia@example.com, 2026-03-08 09:14:05 UTC: courier's bulk drop"; got != want {
		t.Errorf("acknowledged anomaly reads %q, want %q", got, want)
	}
	if n := len(all(doc, "#ack-all")); n != 0 {
		t.Errorf("acknowledge-all form shown without the open-only filter")
	}

	// the pager: back to the newest, and on to older events, filter kept
	if got, want := attr(one(t, doc, "a[rel=first]"), "href"), "/buildings/7/unlocks?anomalies=open"; got != want {
		t.Errorf("newest link %q, want %q", got, want)
	}
	if got, want := attr(one(t, doc, "a[rel=next]"), "href"), "/buildings/7/unlocks?after=c-27&anomalies=open"; got != want {
		t.Errorf("older link %q, want %q", got, want)
	}
}

func TestUnlockRowsAcknowledgeAll(t *testing.T) {
	v := historyRows(historyEvents())
	v.OpenOnly = true
	doc := render(t, UnlockRows(v))
	form := one(t, doc, "#ack-all form")
	var events []string
	for _, in := range all(form, "input[name=event]") {
		events = append(events, attr(in, "value"))
	}
	if want := []string{"29", "28"}; !slices.Equal(events, want) {
		t.Errorf("acknowledge-all form carries events %v, want the open ones %v", events, want)
	}
	if got, want := text(one(t, form, "button")), "Acknowledge these 2"; got != want {
		t.Errorf("button reads %q, want %q", got, want)
	}

	v.Ack.CanManage = false
	if n := len(all(render(t, UnlockRows(v)), "#ack-all")); n != 0 {
		t.Errorf("acknowledge-all form offered to someone who cannot manage")
	}
}

func TestUnlockRowsEmpty(t *testing.T) {
	for _, tt := range []struct {
		paged bool
		next  string
		want  string
		links []string
	}{
		{false, "", "No events match.", nil},
		{true, "", "No older events.", []string{"← Newest"}},
	} {
		v := historyRows(nil)
		v.Paged, v.Next = tt.paged, tt.next
		doc := render(t, UnlockRows(v))
		if n := len(all(doc, "table")); n != 0 {
			t.Errorf("paged %v: an empty history draws a table", tt.paged)
		}
		if got := text(one(t, doc, "p.empty")); got != tt.want {
			t.Errorf("paged %v: empty state %q, want %q", tt.paged, got, tt.want)
		}
		if got := texts(doc, "nav.pager a"); !slices.Equal(got, tt.links) {
			t.Errorf("paged %v: pager links %q, want %q", tt.paged, got, tt.links)
		}
	}
}

func TestUnlockChartDraws(t *testing.T) {
	days := []doorledger.UnlockDay{
		{Date: "2026-03-07", Granted: 4, Denied: 1},
		{Date: "2026-03-08", Granted: 10, Anomalous: 2},
	}
	doc := render(t, UnlockChart(days, "chart-x", "Door openings per day, last 2 days (UTC)"))
	svg := one(t, doc, "svg#chart-x")
	if got, want := attr(svg, "aria-labelledby"), "chart-x-title"; got != want {
		t.Errorf("chart labelled by %q, want %q", got, want)
	}
	if got, want := text(one(t, svg, "title#chart-x-title")), "Door openings per day, last 2 days (UTC)"; got != want {
		t.Errorf("chart title %q, want %q", got, want)
	}
	bars := all(svg, "rect[data-series]")
	if got, want := len(bars), 6; got != want {
		t.Fatalf("%d bars, want %d", got, want)
	}
	var drawn []string
	for _, b := range bars {
		drawn = append(drawn, attr(b, "data-date")+" "+attr(b, "data-series")+" "+attr(b, "data-value")+" h="+attr(b, "height")+" | "+text(b))
	}
	want := []string{
		"2026-03-07 granted 4 h=52.0 | 2026-03-07: 4 granted",
		"2026-03-07 denied 1 h=13.0 | 2026-03-07: 1 denied",
		"2026-03-07 anomalous 0 h=0.0 | 2026-03-07: 0 anomalous",
		"2026-03-08 granted 10 h=130.0 | 2026-03-08: 10 granted",
		"2026-03-08 denied 0 h=0.0 | 2026-03-08: 0 denied",
		"2026-03-08 anomalous 2 h=26.0 | 2026-03-08: 2 anomalous",
	}
	if !slices.Equal(drawn, want) {
		t.Errorf("bars:\n%s\nwant:\n%s", strings.Join(drawn, "\n"), strings.Join(want, "\n"))
	}
	if got, want := texts(svg, "text[text-anchor=end]"), []string{"0", "5", "10"}; !slices.Equal(got, want) {
		t.Errorf("scale %q, want %q", got, want)
	}
	if got, want := texts(svg, "text[text-anchor=middle]"), []string{"Mar 8"}; !slices.Equal(got, want) {
		t.Errorf("dates %q, want %q", got, want)
	}
	// the same numbers in a table, for those who cannot see the chart
	if got, want := rows(doc, "figcaption tbody tr"), []string{"2026-03-07 | 4 | 1 | 0", "2026-03-08 | 10 | 0 | 2"}; !slices.Equal(got, want) {
		t.Errorf("numbers table %q, want %q", got, want)
	}
	if got := text(one(t, doc, "figcaption small")); strings.Contains(got, "No door openings") {
		t.Errorf("caption %q says there were no openings", got)
	}

	quiet := render(t, UnlockChart([]doorledger.UnlockDay{{Date: "2026-03-08"}}, "chart-q", "Door openings"))
	if got, want := text(one(t, quiet, "figcaption small")), "Door openings. No door openings in these days."; got != want {
		t.Errorf("quiet caption %q, want %q", got, want)
	}
}

func TestUnlocksSectionOpenAnomalies(t *testing.T) {
	events := historyEvents()[1:3]
	s := UnlockSummary{
		Building: testBuilding, Events: events, OpenAnomalies: 1000, OpenMax: 1000, CSRF: "tok", CanManage: true,
		Devices:    map[int64]*doorledger.Device{3: testDevice, 4: {ID: 4, DeviceDetails: doorledger.DeviceDetails{Serial: "Y2"}}},
		LastUnlock: map[int64]*doorledger.UnlockEvent{3: historyEvents()[0]},
		Days:       []doorledger.UnlockDay{{Date: "2026-03-08", Granted: 1}},
	}
	doc := render(t, UnlocksSection(s))
	badge := one(t, doc, "[data-open-anomalies]")
	if got, want := text(badge), "1000+"; got != want {
		t.Errorf("open anomalies badge %q, want %q", got, want)
	}
	if !hasClass(badge, "badge-danger") {
		t.Errorf("open anomalies badge class %q, want badge-danger", attr(badge, "class"))
	}
	if got, want := rows(doc, "h3 + div.overflow-auto tbody tr"), []string{"Acme X1 (lobby) | 2026-03-08 09:14:05 UTC | granted", "Y2 | never | "}; !slices.Equal(got, want) {
		t.Errorf("last opening by device %q, want %q", got, want)
	}
	if got := attr(one(t, doc, "#ack-29 input[name=back]"), "value"); got != "/buildings/7#open-anomalies" {
		t.Errorf("acknowledging from the building page returns to %q", got)
	}

	s.Events, s.OpenAnomalies = nil, 0
	doc = render(t, UnlocksSection(s))
	if !hasClass(one(t, doc, "[data-open-anomalies]"), "badge-ok") {
		t.Errorf("no open anomalies, yet the badge is not badge-ok")
	}
	if got, want := text(one(t, doc, "#open-anomalies + p")), "No open anomalies: every flagged door opening has been acknowledged."; got != want {
		t.Errorf("empty state %q, want %q", got, want)
	}
}

func TestCommandsTableStatusWords(t *testing.T) {
	cmds := []*doorledger.Command{
		{ID: 6, Version: 6, State: doorledger.StateDisabled, RequestedBy: "mia@example.com", Reason: "courier left",
			RequestedAt: testAt, Attempts: 3, RefusedAt: testAt.Add(2 * time.Second), LastError: "device answered enabled", Status: doorledger.CommandRefused},
		{ID: 5, Version: 5, State: doorledger.StateEnabled, RequestedBy: "mia@example.com", RequestedAt: testAt.Add(-time.Hour), Status: doorledger.CommandNotConfirmed},
		{ID: 4, Version: 4, State: doorledger.StateDisabled, RequestedBy: "system", RequestedAt: testAt.Add(-2 * time.Hour), Status: doorledger.CommandSuperseded},
		{ID: 3, Version: 3, State: doorledger.StateEnabled, RequestedBy: "mia@example.com", RequestedAt: testAt.Add(-3 * time.Hour),
			ConfirmedAt: testAt.Add(-3*time.Hour + 19*time.Millisecond), Status: doorledger.CommandConfirmed},
		{ID: 2, Version: 2, State: doorledger.StateEnabled, RequestedBy: "mia@example.com", RequestedAt: testAt.Add(-4 * time.Hour), Status: doorledger.CommandSent},
		{ID: 1, Version: 1, State: doorledger.StateEnabled, RequestedBy: "mia@example.com", RequestedAt: testAt.Add(-5 * time.Hour), Status: doorledger.CommandPending},
	}
	doc := render(t, CommandsTable(cmds, time.UTC))
	badges := all(doc, "tbody span[data-command-status]")
	if len(badges) != len(cmds) {
		t.Fatalf("%d status badges, want %d", len(badges), len(cmds))
	}
	for i, want := range []struct{ code, word, class string }{
		{"refused", "REFUSED by the device: still enabled", "badge-danger"},
		{"not_confirmed", "NOT CONFIRMED (still retried)", "badge-danger"},
		{"superseded", "superseded", ""},
		{"confirmed", "confirmed", "badge-ok"},
		{"sent", "sent, not yet confirmed", "badge-warn"},
		{"pending", "not yet sent", "badge-warn"},
	} {
		b := badges[i]
		if got := attr(b, "data-command-status"); got != want.code {
			t.Errorf("row %d: status %q, want %q", i, got, want.code)
		}
		if got := text(b); got != want.word {
			t.Errorf("row %d: reads %q, want %q", i, got, want.word)
		}
		if got, wantClass := strings.Join(strings.Fields(attr(b, "class")), " "), strings.TrimSpace("badge "+want.class); got != wantClass {
			t.Errorf("row %d: class %q, want %q", i, got, wantClass)
		}
	}
	got := rows(doc, "tbody tr")
	if want := "6 | disabled | mia@example.com courier left | 2026-03-08 09:14 UTC | — | — | REFUSED by the device: still enabled the device refused it at 2026-03-08 09:14 UTC 3 attempts device answered enabled"; got[0] != want {
		t.Errorf("refused row reads %q, want %q", got[0], want)
	}
	if want := "3 | enabled | mia@example.com | 2026-03-08 06:14 UTC | 2026-03-08 06:14 UTC | 19 ms | confirmed"; got[3] != want {
		t.Errorf("confirmed row reads %q, want %q", got[3], want)
	}

	if got, want := text(render(t, CommandsTable(nil, time.UTC)).LastChild), "No commands yet."; got != want {
		t.Errorf("no commands: %q, want %q", got, want)
	}
}

func TestDeviceLiveOutcome(t *testing.T) {
	confirmed := &doorledger.Command{State: doorledger.StateDisabled, RequestedAt: testAt, ConfirmedAt: testAt.Add(19 * time.Millisecond), Status: doorledger.CommandConfirmed}
	sent := &doorledger.Command{State: doorledger.StateDisabled, RequestedAt: testAt, Status: doorledger.CommandSent}
	d := &doorledger.Device{ID: 3, DesiredState: doorledger.StateDisabled, DesiredVersion: 2, CommandAt: testAt}
	for _, tt := range []struct {
		name  string
		cmd   *doorledger.Command
		now   time.Time
		down  bool // the broker does not accept the portal
		words string
		class string
	}{
		{"confirmed", confirmed, testAt.Add(time.Second), false, "Revoked — confirmed by the device in 19 ms", "outcome-ok"},
		{"waiting", sent, testAt.Add(5 * time.Second), false, "Revoke sent — waiting for the device to confirm.", "outcome-warn"},
		{"timed out", sent, testAt.Add(2 * time.Minute), false, "Revoke not confirmed: the device has not answered for 2m0s; the portal keeps retrying and the managers were alerted.", "outcome-danger"},
		{"broker down", sent, testAt.Add(2 * time.Minute), true, "Revoke waiting for the broker: the portal cannot reach the MQTT broker; the command is sent as soon as the broker is back, and the device confirms it then.", "outcome-warn"},
		{"confirmed, broker down", confirmed, testAt.Add(time.Second), true, "Revoked — confirmed by the device in 19 ms", "outcome-ok"},
	} {
		doc := render(t, DeviceLive(d, []*doorledger.Command{tt.cmd}, time.UTC, tt.now, time.Minute, tt.down, false))
		p := one(t, doc, "#device-outcome")
		if got := text(p); got != tt.words {
			t.Errorf("%s: outcome %q, want %q", tt.name, got, tt.words)
		}
		if !hasClass(p, tt.class) {
			t.Errorf("%s: outcome class %q, want %s", tt.name, attr(p, "class"), tt.class)
		}
		if n := len(all(doc, "section#commands")); n != 0 {
			t.Errorf("%s: the command table sent without oob", tt.name)
		}
	}
}

func TestConsentPageSignature(t *testing.T) {
	consent := func() *doorledger.Consent {
		return &doorledger.Consent{
			ID: 11, BuildingID: 7, Device: testDevice.DeviceDetails, Installer: "Ivan", Company: "Fitters Ltd",
			Signer: doorledger.Signer{ID: 2, Name: "Paula Prez", Title: "Board president", Email: "paula@example.com", Active: true},
			Status: doorledger.ConsentSigned, RequestedAt: testAt.Add(-time.Hour), ExpiresAt: testAt.AddDate(1, 0, 0),
			Signature: &doorledger.ConsentSignature{
				TermsSHA256: "ab12", TypedName: "P. Prez", SignedAt: testAt, Timezone: "UTC",
				IP: "203.0.113.9", UserAgent: "Firefox", Method: doorledger.VerifyCode, NameDiffers: true,
			},
		}
	}
	for _, tt := range []struct {
		name      string
		installer bool
		want      []string // the evidence's rows, "term: description"
		image     bool
	}{
		{"manager", false, []string{
			"Typed name: P. Prez",
			"Roster name: Paula Prez",
			"Name check: typed name differs from the roster (the signer confirmed signing with it)",
			"Signed: 2026-03-08 09:14 UTC · 2026-03-08 09:14 UTC (UTC)",
			"Verified: The signer's roster address, paula@example.com, by a 6-digit code mailed to it, typed on the installer's screen. The typed name is not verified.",
			"IP, browser: 203.0.113.9 · Firefox",
			"Terms SHA-256: ab12",
			"Lasts until: 2027-03-08 09:14 UTC",
		}, true},
		{"installer sees no contact data, IP or signature", true, []string{
			"Typed name: P. Prez",
			"Roster name: Paula Prez",
			"Name check: typed name differs from the roster (the signer confirmed signing with it)",
			"Signed: 2026-03-08 09:14 UTC · 2026-03-08 09:14 UTC (UTC)",
			"Verified: The signer's roster address by a 6-digit code mailed to it, typed on the installer's screen. The typed name is not verified.",
			"Terms SHA-256: ab12",
			"Lasts until: 2027-03-08 09:14 UTC",
		}, false},
	} {
		v := ConsentView{Consent: consent(), Building: testBuilding, Installer: tt.installer, Now: testAt}
		doc := render(t, ConsentPage(Page{Title: "Consent"}, v))
		ev := one(t, doc, "article#evidence")
		var got []string
		for _, dt := range all(ev, "dt") {
			dd := dt.NextSibling
			for dd != nil && dd.Type != html.ElementNode {
				dd = dd.NextSibling
			}
			got = append(got, text(dt)+": "+text(dd))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: evidence\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
		if hasImg := len(all(ev, "img.signature-img")) == 1; hasImg != tt.image {
			t.Errorf("%s: signature image shown %v, want %v", tt.name, hasImg, tt.image)
		}
		if body := text(doc); tt.installer && strings.Contains(body, "paula@example.com") {
			t.Errorf("%s: the signer's address is on the page", tt.name)
		}
		if got, want := text(one(t, doc, "h1 .badge")), "Signed"; got != want {
			t.Errorf("%s: status badge %q, want %q", tt.name, got, want)
		}
	}
}

func TestReportPage(t *testing.T) {
	r := func(status string) *doorledger.ReportRecord {
		return &doorledger.ReportRecord{
			ID: "AR-7-20260308T091405Z-3f9a", BuildingID: 7, BuildingName: "12 Elm Street", Format: doorledger.ReportPDF,
			From: "2026-03-01", To: "2026-03-31", RequestedName: "mia@example.com", RequestedAt: testAt,
			Status: status, Done: 40, Total: 160, DoneAt: testAt.Add(time.Minute), Error: "the disk is full",
			SHA256: "9f86d081884c7d65", Bytes: 3 << 19, HeadSize: 1234, HeadNote: "doorledger.example/log\n1234\nq83=\n",
		}
	}
	t.Run("ready", func(t *testing.T) {
		doc := render(t, ReportPage(Page{Title: "Report"}, ReportView{Report: r(doorledger.ReportDone), Loc: time.UTC, Days: 31, Origin: "doorledger.example/log", VerifierKey: "key+1"}))
		if got, want := text(one(t, doc, "h1")), "PDF audit report"; got != want {
			t.Errorf("title %q, want %q", got, want)
		}
		st := one(t, doc, "section#report-status")
		if got := attr(st, "data-status"); got != "done" || hasAttr(st, "hx-get") {
			t.Errorf("a finished report's status is %q and polls: %v", got, hasAttr(st, "hx-get"))
		}
		if got, want := text(one(t, doc, "#report-lead")), "This report holds 160 unlock events from 2026-03-01 to 2026-03-31, with the anomalies among them, every consent, device and command of the building, and its journal entries."; got != want {
			t.Errorf("lead %q, want %q", got, want)
		}
		dl := one(t, doc, "a#download")
		if got, want := text(dl), "Download AR-7-20260308T091405Z-3f9a.pdf (1.5 MB)"; got != want {
			t.Errorf("download %q, want %q", got, want)
		}
		if got, want := attr(dl, "href"), "/reports/AR-7-20260308T091405Z-3f9a/download"; got != want {
			t.Errorf("download link %q, want %q", got, want)
		}
		for id, want := range map[string]string{"#sha256": "9f86d081884c7d65", "#head-size": "1234", "#log-origin": "doorledger.example/log", "#verifier-key": "key+1"} {
			if got := text(one(t, doc, id)); got != want {
				t.Errorf("%s reads %q, want %q", id, got, want)
			}
		}
		if n := len(all(doc, ".flash-error")); n != 0 {
			t.Errorf("a month's report warns about its range")
		}
	})
	t.Run("writing", func(t *testing.T) {
		doc := render(t, ReportPage(Page{Title: "Report"}, ReportView{Report: r(doorledger.ReportRunning), Loc: time.UTC, Days: 400}))
		st := one(t, doc, "section#report-status")
		if got, want := attr(st, "hx-get"), "/reports/AR-7-20260308T091405Z-3f9a/status"; got != want {
			t.Errorf("a running report polls %q, want %q", got, want)
		}
		if got, want := texts(st, "p")[0], "Writing: 40 of 160 unlock events."; got != want {
			t.Errorf("progress %q, want %q", got, want)
		}
		if p := one(t, st, "progress"); attr(p, "value") != "40" || attr(p, "max") != "160" {
			t.Errorf("progress bar %q of %q, want 40 of 160", attr(p, "value"), attr(p, "max"))
		}
		if got := text(one(t, doc, "p.flash-error")); !strings.HasPrefix(got, "This report covers 400 days, more than a year") {
			t.Errorf("long range warning %q", got)
		}
	})
	t.Run("failed", func(t *testing.T) {
		doc := render(t, ReportPage(Page{Title: "Report"}, ReportView{Report: r(doorledger.ReportFailed), Loc: time.UTC}))
		if got, want := text(one(t, doc, "p.flash-error[role=alert]")), "The report could not be made: the disk is full"; got != want {
			t.Errorf("failure %q, want %q", got, want)
		}
		if n := len(all(doc, "a#download")); n != 0 {
			t.Errorf("a failed report offers a download")
		}
	})
}

func TestReportsTableStatusWords(t *testing.T) {
	list := []*doorledger.ReportRecord{
		{ID: "AR-2", Format: doorledger.ReportCSV, From: "2026-03-01", To: "2026-03-08", Status: doorledger.ReportRunning, Done: 1, Total: 8},
		{ID: "AR-1", Format: doorledger.ReportPDF, From: "2026-02-01", To: "2026-02-28", Status: doorledger.ReportFailed},
	}
	doc := render(t, ReportsTable(list, time.UTC))
	var got []string
	for _, b := range all(doc, "tbody .badge") {
		got = append(got, text(b)+" "+strings.Join(strings.Fields(attr(b, "class")), "."))
	}
	if want := []string{"writing, 12% badge.badge-warn", "failed badge.badge-danger"}; !slices.Equal(got, want) {
		t.Errorf("status badges %q, want %q", got, want)
	}
}

// An error comes back beside its field, the input kept (the ack note, the
// unlock settings' fields).
func TestFormErrorsBesideTheirFields(t *testing.T) {
	e := historyEvents()[1]
	f := Form{Values: map[string]string{"note": "   "}, Errors: map[string]string{"note": "Say what was done."}}
	doc := render(t, AnomalyAck(AckControls{BuildingID: 7, CSRF: "tok", CanManage: true, Back: "/buildings/7"}, e, time.UTC, f, false))
	in := one(t, doc, "input#ack-29-note")
	if got := attr(in, "value"); got != "   " {
		t.Errorf("note kept as %q, want the input as typed", got)
	}
	if attr(in, "aria-invalid") != "true" || attr(in, "aria-describedby") != "ack-29-error" {
		t.Errorf("note input not marked invalid and described by its error: %v", in.Attr)
	}
	if got := text(one(t, doc, "#ack-29-error.field-error")); got != "Say what was done." {
		t.Errorf("error beside the note %q", got)
	}
	if hasAttr(one(t, doc, "form"), "hx-preserve") {
		t.Errorf("an answer's form is hx-preserve'd: the live page would keep the old one")
	}

	f = Form{
		Values: map[string]string{"delivery_hours": "mon-fri 25:00", "burst_count": "abc", "burst_minutes": "10", "retention_days": "1095", "heartbeat_seconds": "0"},
		Errors: map[string]string{"delivery_hours": "25:00 is not a time of day.", "burst_count": "Enter a whole number."},
		Error:  "Correct the fields below.",
	}
	doc = render(t, UnlockSettingsPage(Page{Title: "Unlock settings", CSRF: "tok"}, testBuilding, f))
	if got := text(one(t, doc, "p.form-error[role=alert]")); got != "Correct the fields below." {
		t.Errorf("form error %q", got)
	}
	if got := text(one(t, doc, "textarea#delivery_hours")); got != "mon-fri 25:00" {
		t.Errorf("delivery hours kept as %q", got)
	}
	if got := text(one(t, doc, "label[for=delivery_hours] > small.field-error")); got != "25:00 is not a time of day." {
		t.Errorf("delivery hours error %q", got)
	}
	burst := one(t, doc, "input#burst_count")
	if attr(burst, "value") != "abc" || attr(burst, "aria-describedby") != "burst_count-error" {
		t.Errorf("burst count input %v: want the value kept and its error named", burst.Attr)
	}
	if got := text(one(t, doc, "label[for=burst_count] > small#burst_count-error")); got != "Enter a whole number." {
		t.Errorf("burst count error %q", got)
	}
	if minutes := one(t, doc, "input#burst_minutes"); attr(minutes, "value") != "10" || hasAttr(minutes, "aria-invalid") {
		t.Errorf("a valid field is marked invalid or loses its value: %v", minutes.Attr)
	}
	if n := len(all(doc, "small.field-error")); n != 2 {
		t.Errorf("%d field errors, want 2", n)
	}
}
