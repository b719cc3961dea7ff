package sqlite_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// residentWorld is the consent world with the residents' service, and building
// A's notice slug.
type residentWorld struct {
	*consentWorld
	residents *sqlite.ResidentService
	devices   *sqlite.DeviceService
	slug      string
}

func newResidentWorld(t *testing.T) *residentWorld {
	t.Helper()
	w := &residentWorld{consentWorld: newConsentWorld(t)}
	w.residents = sqlite.NewResidentService(w.db, "http://portal.test")
	w.devices = sqlite.NewDeviceService(w.db)
	w.slug = w.noticeSettings(t).Slug
	return w
}

func (w *residentWorld) noticeSettings(t *testing.T) *doorledger.NoticeSettings {
	t.Helper()
	n, err := w.residents.NoticeSettings(as(w.Manager), w.A.ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// signed requests and signs a consent for a device of building A, now.
func (w *residentWorld) signed(t *testing.T, serial string) *doorledger.Consent {
	t.Helper()
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request(serial, w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	return c
}

func noticeByID(n *doorledger.PublicNotice) map[int64]*doorledger.NoticeDevice {
	m := map[int64]*doorledger.NoticeDevice{}
	for _, d := range n.Devices {
		m[d.ID] = d
	}
	return m
}

// The notice lists what can open a door now, what awaits consent, and what
// was disabled or found in the last 90 days, not earlier; each device with
// its state, since when, and the consent by the signer's role.
func TestPublicNoticeDevices(t *testing.T) {
	w := newResidentWorld(t)
	t0 := *w.Now
	mgr := as(w.Manager)
	at := func(days int) { *w.Now = t0.AddDate(0, 0, days) }

	at(-120)
	old := w.signed(t, "OLD-1")       // disabled 91 days ago: off the notice
	recent := w.signed(t, "RECENT-1") // disabled 10 days ago
	pending := w.signed(t, "PENDING-1")
	at(-91)
	if _, err := w.devices.SetDesiredState(mgr, old.DeviceID, doorledger.StateDisabled, "removed"); err != nil {
		t.Fatal(err)
	}
	at(-10)
	if _, err := w.devices.SetDesiredState(mgr, recent.DeviceID, doorledger.StateDisabled, "removed"); err != nil {
		t.Fatal(err)
	}
	at(-5)
	found, err := w.devices.RecordFoundDevice(mgr, w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	at(-2)
	// Told to disable, but the device's last report says it is enabled.
	if err := w.devices.ReportState(context.Background(), doorledger.ReportedState{DeviceID: pending.DeviceID, State: doorledger.StateEnabled, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.devices.SetDesiredState(mgr, pending.DeviceID, doorledger.StateDisabled, "revoke"); err != nil {
		t.Fatal(err)
	}
	at(0)
	enabled := w.signed(t, "ON-1")
	awaiting, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("WAIT-1", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	// Another building's device is not on A's notice.
	if _, err := w.devices.RecordFoundDevice(sys(), w.B.ID, doorledger.DeviceDetails{Vendor: "Elsewhere", Serial: "B-1", Location: "panel"}); err != nil {
		t.Fatal(err)
	}

	n, err := w.residents.PublicNotice(context.Background(), w.slug)
	if err != nil {
		t.Fatal(err)
	}
	got := noticeByID(n)
	if len(n.Devices) != 5 || got[old.DeviceID] != nil {
		t.Fatalf("notice lists %d devices (old one: %v), want 5 without the one disabled 91 days ago", len(n.Devices), got[old.DeviceID])
	}
	check := func(id int64, state doorledger.NoticeState, since time.Time) *doorledger.NoticeDevice {
		t.Helper()
		d := got[id]
		if d == nil {
			t.Fatalf("device %d not on the notice", id)
		}
		if d.State != state || !d.Since.Equal(since) {
			t.Errorf("device %d: %s since %v, want %s since %v", id, d.State, d.Since, state, since)
		}
		return d
	}
	on := check(enabled.DeviceID, doorledger.NoticeEnabled, t0)
	if c := on.Consent; c == nil || c.Status != doorledger.ConsentSigned || c.SignerRole != "Board president" || !c.SignedAt.Equal(t0) ||
		!c.ValidUntil.Equal(t0.AddDate(0, 12, 0)) {
		t.Errorf("consent of the enabled device: %+v", on.Consent)
	}
	if on.Vendor != "Acme Access" || on.Model != "KeyBox 2" || on.Opens != "lobby door, for couriers" {
		t.Errorf("enabled device: %+v", on)
	}
	check(recent.DeviceID, doorledger.NoticeDisabled, t0.AddDate(0, 0, -10))
	check(found.ID, doorledger.NoticeUnconsented, t0.AddDate(0, 0, -5))
	if p := check(pending.DeviceID, doorledger.NoticeDisabled, t0.AddDate(0, 0, -2)); !p.Unconfirmed {
		t.Error("a disable the device has not confirmed is not flagged")
	}
	if a := check(awaiting.DeviceID, doorledger.NoticeAwaiting, t0); a.Consent == nil || a.Consent.Status != doorledger.ConsentAwaiting {
		t.Errorf("awaiting device's consent: %+v", a.Consent)
	}

	// 91 days on, only what can open the door or awaits consent is left.
	*w.Now = t0.AddDate(0, 0, 91)
	n, err = w.residents.PublicNotice(context.Background(), w.slug)
	if err != nil {
		t.Fatal(err)
	}
	got = noticeByID(n)
	if len(n.Devices) != 3 || got[enabled.DeviceID] == nil || got[awaiting.DeviceID] == nil || got[pending.DeviceID] == nil {
		t.Errorf("91 days on: %d devices, want the enabled, the awaiting and the unconfirmed one", len(n.Devices))
	}

	for _, bad := range []string{"", "nope", strings.ToUpper(w.slug), w.slug[:31] + "g"} {
		if _, err := w.residents.PublicNotice(context.Background(), bad); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			t.Errorf("slug %q: %v, want ENOTFOUND", bad, err)
		}
	}
}

// Rotating the slug makes the old one unknown at once; only managers may,
// and the journal says it happened without keeping either address.
func TestNoticeSlugRotation(t *testing.T) {
	w := newResidentWorld(t)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(w.slug) {
		t.Fatalf("slug %q is not 128 bits of hex", w.slug)
	}
	if s := w.noticeSettings(t); s.URL != "http://portal.test/notice/"+w.slug {
		t.Errorf("URL %q", s.URL)
	}
	if _, err := w.residents.RotateNoticeSlug(as(w.Inst), w.A.ID); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer rotates: %v", err)
	}
	if _, err := w.residents.RotateNoticeSlug(as(w.Manager), w.B.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("manager of A rotates B: %v", err)
	}
	fresh, err := w.residents.RotateNoticeSlug(as(w.Manager), w.A.ID)
	if err != nil || fresh == w.slug || len(fresh) != 32 {
		t.Fatalf("rotate: %q %v", fresh, err)
	}
	if _, err := w.residents.PublicNotice(context.Background(), w.slug); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("old slug: %v", err)
	}
	if n, err := w.residents.PublicNotice(context.Background(), fresh); err != nil || n.BuildingName != "Harbor View" {
		t.Errorf("new slug: %v", err)
	}
	var detail string
	if err := w.db.Reader().QueryRow(`SELECT detail FROM audit_entries WHERE action = 'notice.rotate' AND building_id = ?`, w.A.ID).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(detail, fresh) || strings.Contains(detail, w.slug) {
		t.Errorf("the journal keeps a notice address: %s", detail)
	}
	// Every new building has a notice of its own.
	b, err := sqlite.NewBuildingService(w.db).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Third", Address: "3 St", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := w.residents.NoticeSettings(sys(), b.ID); err != nil || len(s.Slug) != 32 || s.Slug == fresh {
		t.Errorf("new building's notice: %+v %v", s, err)
	}
}

func (w *residentWorld) mailsTo(t *testing.T, addr string) []*doorledger.Message {
	t.Helper()
	msgs, err := w.Outbox.PendingMessages(context.Background(), 100, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*doorledger.Message
	for _, m := range msgs {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// A resident's report alerts the managers (and the board when the building
// says so), is resolved once, and loses its contact address then; what the
// resident sent cannot be changed or deleted, even around the service.
func TestResidentReport(t *testing.T) {
	w := newResidentWorld(t)
	board, err := sqlite.NewUserService(w.db).CreateUser(sys(), doorledger.NewUser{Email: "board@example.com", Name: "Board", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.NewBuildingService(w.db).GrantAccess(sys(), w.A.ID, board.ID); err != nil {
		t.Fatal(err)
	}
	ctx := doorledger.NewContextWithIP(context.Background(), "198.51.100.23")
	if _, err := w.residents.ReportDevice(ctx, w.slug, doorledger.ResidentReportInput{Location: " ", Contact: "not an address"}); doorledger.ErrorFields(err)["location"] == "" || doorledger.ErrorFields(err)["contact"] == "" {
		t.Fatalf("bad report: %v", err)
	}
	r, err := w.residents.ReportDevice(ctx, w.slug, doorledger.ResidentReportInput{Location: "grey box in the panel, see http://x.example", Contact: "Res@Example.net",
		Photo: &doorledger.Photo{ContentType: "image/png", Data: png}})
	if err != nil {
		t.Fatal(err)
	}
	if m := w.mailsTo(t, "manager@example.com"); len(m) != 1 || !strings.Contains(m[0].Body, "grey box in the panel, see http[:]//x.example") ||
		!strings.Contains(m[0].Body, "res@example.net") {
		t.Fatalf("manager alert: %+v", m)
	}
	if m := w.mailsTo(t, "board@example.com"); len(m) != 0 {
		t.Fatalf("board alerted without the building's alert setting: %+v", m)
	}
	var ip, detail string
	if err := w.db.Reader().QueryRow(`SELECT ip, detail FROM audit_entries WHERE action = 'resident.report' AND object_id = ?`, r.ID).Scan(&ip, &detail); err != nil {
		t.Fatal(err)
	}
	if ip != "" || strings.Contains(detail, "res@example.net") || strings.Contains(detail, "grey box") {
		t.Errorf("the journal keeps the resident's IP or words: ip %q, detail %s", ip, detail)
	}
	if _, err := w.db.Writer().Exec(`UPDATE buildings SET alert_board = 1 WHERE id = ?`, w.A.ID); err != nil {
		t.Fatal(err)
	}
	r2, err := w.residents.ReportDevice(ctx, w.slug, doorledger.ResidentReportInput{Location: "sticker on the garage door"})
	if err != nil {
		t.Fatal(err)
	}
	if m := w.mailsTo(t, "board@example.com"); len(m) != 1 {
		t.Fatalf("board not alerted with the alert setting on: %d mails", len(m))
	}

	// Resolution: managers only; the found device must be one recorded as found here.
	if err := w.residents.ResolveResidentReport(as(w.Inst), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportNotDelivery}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer resolves: %v", err)
	}
	if err := w.residents.ResolveResidentReport(as(w.Manager), w.B.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportNotDelivery}); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("resolve through another building: %v", err)
	}
	consented := w.signed(t, "SN-77")
	err = w.residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportFoundDevice, FoundDeviceID: consented.DeviceID})
	if doorledger.ErrorFields(err)["found_device"] == "" {
		t.Errorf("resolved as a consented device: %v", err)
	}
	found, err := w.devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-2", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportFoundDevice, FoundDeviceID: found.ID, Note: "relay"}); err != nil {
		t.Fatal(err)
	}
	if err := w.residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportDuplicate}); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second resolution: %v", err)
	}
	if err := w.residents.ResolveResidentReport(as(w.Manager), w.A.ID, r2.ID, doorledger.ReportResolution{Outcome: doorledger.ReportOther}); doorledger.ErrorFields(err)["note"] == "" {
		t.Errorf("other without a note: %v", err)
	}
	s := w.noticeSettings(t)
	if len(s.Reports) != 2 || s.Reports[0].ID != r2.ID || !s.Reports[0].Open() || s.Reports[1].ID != r.ID || s.Reports[1].Contact != "" ||
		s.Reports[1].Outcome != doorledger.ReportFoundDevice || s.Reports[1].FoundDeviceID != found.ID || s.Reports[1].ResolvedBy != "manager@example.com" {
		t.Fatalf("reports on the building page: %+v %+v", s.Reports[0], s.Reports[1])
	}
	if p, err := w.residents.ResidentReportPhoto(as(w.Manager), w.A.ID, r.ID); err != nil || string(p.Data) != string(png) {
		t.Errorf("photo: %v", err)
	}
	if _, err := w.residents.ResidentReportPhoto(as(w.Manager), w.A.ID, r2.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("photo of a report without one: %v", err)
	}
	for _, q := range []string{
		`UPDATE resident_reports SET note = 'changed' WHERE id = ?`,
		`UPDATE resident_reports SET location = 'elsewhere' WHERE id = ?`,
		`DELETE FROM resident_reports WHERE id = ?`,
	} {
		if _, err := w.db.Writer().Exec(q, r.ID); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
	if _, err := w.db.Writer().Exec(`UPDATE resident_reports SET location = 'elsewhere' WHERE id = ?`, r2.ID); err == nil {
		t.Error("an open report's location was changed")
	}

	// A building with many open reports takes no more until they are resolved.
	w.residents.MaxOpenReports = 1
	if _, err := w.residents.ReportDevice(ctx, w.slug, doorledger.ResidentReportInput{Location: "again"}); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Errorf("report past the open limit: %v", err)
	}
}

// Subscriptions: double opt-in, no answer that tells whether an address is
// subscribed, few confirmation mails, and an unsubscribe that forgets the
// address; unconfirmed addresses are forgotten after 48 hours.
func TestResidentSubscription(t *testing.T) {
	w := newResidentWorld(t)
	ctx := context.Background()
	if err := w.residents.Subscribe(ctx, w.slug, "not an address"); doorledger.ErrorFields(err)["email"] == "" {
		t.Fatalf("bad address: %v", err)
	}
	if err := w.residents.Subscribe(ctx, w.slug, " Rita@Example.net "); err != nil {
		t.Fatal(err)
	}
	confirm := w.LastLink(t, "rita@example.net", doorledger.ResidentConfirmPath)
	for range 4 { // three confirmation mails a day at most, and the same answer
		if err := w.residents.Subscribe(ctx, w.slug, "rita@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(w.mailsTo(t, "rita@example.net")); n != 3 {
		t.Errorf("%d confirmation mails, want 3", n)
	}
	if s := w.noticeSettings(t); s.Subscribers != 0 {
		t.Errorf("unconfirmed counted: %d", s.Subscribers)
	}
	link, err := w.residents.OpenSubscriptionLink(ctx, confirm)
	if err != nil || link.Purpose != "confirm" || link.Done || link.BuildingName != "Harbor View" || link.NoticeSlug != w.slug {
		t.Fatalf("open confirm link: %+v %v", link, err)
	}
	if link, err = w.residents.ConfirmSubscription(ctx, confirm); err != nil || link.Done {
		t.Fatalf("confirm: %+v %v", link, err)
	}
	if link, err = w.residents.ConfirmSubscription(ctx, confirm); err != nil || !link.Done {
		t.Fatalf("confirm again: %+v %v", link, err)
	}
	if s := w.noticeSettings(t); s.Subscribers != 1 {
		t.Errorf("subscribers %d, want 1", s.Subscribers)
	}
	before := len(w.mailsTo(t, "rita@example.net"))
	if err := w.residents.Subscribe(ctx, w.slug, "rita@example.net"); err != nil || len(w.mailsTo(t, "rita@example.net")) != before {
		t.Errorf("subscribing a confirmed address: %v, mailed again", err)
	}
	if _, err := w.residents.Unsubscribe(ctx, confirm); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("unsubscribe with the confirmation link: %v", err)
	}

	// A change: one notice, with an unsubscribe link that works once.
	if _, err := w.devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Model: "R1", Serial: "G-3", Location: "panel"}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.residents.NotifyResidents(ctx); err != nil || n != 1 {
		t.Fatalf("notify: %d %v", n, err)
	}
	unsubscribe := w.LastLink(t, "rita@example.net", doorledger.ResidentUnsubscribePath)
	if link, err := w.residents.OpenSubscriptionLink(ctx, unsubscribe); err != nil || link.Purpose != "unsubscribe" {
		t.Fatalf("open unsubscribe link: %+v %v", link, err)
	}
	if _, err := w.residents.Unsubscribe(ctx, unsubscribe); err != nil {
		t.Fatal(err)
	}
	if _, err := w.residents.Unsubscribe(ctx, unsubscribe); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("second unsubscribe: %v", err)
	}
	var left int
	if err := w.db.Reader().QueryRow(`SELECT (SELECT COUNT(*) FROM resident_subscribers) + (SELECT COUNT(*) FROM resident_tokens)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("after unsubscribing, %d rows keep the address or its links (%v)", left, err)
	}
	var details string
	if err := w.db.Reader().QueryRow(`SELECT group_concat(detail || ip, ' ') FROM audit_entries WHERE action LIKE 'resident.%'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(details, "rita") {
		t.Errorf("the journal keeps a subscriber's address: %s", details)
	}

	// An address never confirmed is forgotten after 48 hours (at the job's next purge).
	if err := w.residents.Subscribe(ctx, w.slug, "never@example.net"); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(49 * time.Hour)
	if _, err := w.residents.NotifyResidents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Reader().QueryRow(`SELECT COUNT(*) FROM resident_subscribers`).Scan(&left); err != nil || left != 0 {
		t.Errorf("unconfirmed subscribers after 49 hours: %d (%v)", left, err)
	}
}

// Notices come from the journal: every path that enables, disables, finds a
// device or ends its consent is told, once, to the building's confirmed
// subscribers only.
func TestNotifyResidents(t *testing.T) {
	w := newResidentWorld(t)
	ctx := context.Background()
	subscribe := func(slug, addr string) {
		t.Helper()
		if err := w.residents.Subscribe(ctx, slug, addr); err != nil {
			t.Fatal(err)
		}
		if _, err := w.residents.ConfirmSubscription(ctx, w.LastLink(t, addr, doorledger.ResidentConfirmPath)); err != nil {
			t.Fatal(err)
		}
	}
	subscribe(w.slug, "a@example.net")
	slugB := func() string {
		s, err := w.residents.NoticeSettings(sys(), w.B.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s.Slug
	}()
	subscribe(slugB, "b@example.net")
	if err := w.residents.Subscribe(ctx, w.slug, "unconfirmed@example.net"); err != nil {
		t.Fatal(err)
	}
	if n, err := w.residents.NotifyResidents(ctx); err != nil || n != 0 {
		t.Fatalf("nothing happened yet: %d notices, %v", n, err)
	}
	notices := func() []string {
		t.Helper()
		var bodies []string
		for _, m := range w.mailsTo(t, "a@example.net") {
			if m.Kind == doorledger.MailResidentNotice {
				bodies = append(bodies, m.Body)
			}
		}
		return bodies
	}
	notify := func(want int, what ...string) {
		t.Helper()
		before := len(notices())
		if n, err := w.residents.NotifyResidents(ctx); err != nil || n != want {
			t.Fatalf("%v: %d notices, %v; want %d", what, n, err, want)
		}
		if want == 0 {
			return
		}
		got := notices()
		if len(got) != before+1 {
			t.Fatalf("%v: %d new notices to a@, want 1", what, len(got)-before)
		}
		for _, s := range what {
			if !strings.Contains(got[len(got)-1], s) {
				t.Errorf("notice lacks %q:\n%s", s, got[len(got)-1])
			}
		}
		for _, leak := range []string{"Zoë", "zoe@example.com", "203.0.113.7", "SN-", "G-4", "inst@example.com"} {
			if strings.Contains(got[len(got)-1], leak) {
				t.Errorf("notice shows %q:\n%s", leak, got[len(got)-1])
			}
		}
	}

	c := w.signed(t, "SN-1")
	notify(1, "was ENABLED", "by the Board president", "http://portal.test/notice/"+w.slug, "http://portal.test/residents/unsubscribe/")
	notify(0) // once only
	if _, err := w.devices.SetDesiredState(as(w.Manager), c.DeviceID, doorledger.StateDisabled, "Mia's note"); err != nil {
		t.Fatal(err)
	}
	notify(1, "was DISABLED")
	if _, err := w.devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-4", Location: "panel"}); err != nil {
		t.Fatal(err)
	}
	notify(1, "FOUND WITHOUT CONSENT")

	w.signed(t, "SN-2")
	if _, err := w.Consents.EndByToken(ctx, w.LastLink(t, "zoe@example.com", "/consent/withdraw/"), "no"); err != nil {
		t.Fatal(err)
	}
	notify(1, "was ENABLED", "was WITHDRAWN by the Board president", "was DISABLED")
	w.signed(t, "SN-3")
	if _, err := w.Consents.EndByToken(ctx, w.LastLink(t, "zoe@example.com", "/consent/dispute/"), ""); err != nil {
		t.Fatal(err)
	}
	notify(1, "was DISPUTED: the Board president says they did not sign it")
	w.signed(t, "SN-4")
	notify(1, "was ENABLED")
	*w.Now = w.Now.AddDate(1, 0, 1)
	if n, err := w.Consents.LapseDue(ctx); err != nil || n != 2 { // SN-1's (its device disabled before) and SN-4's
		t.Fatalf("lapse: %d %v", n, err)
	}
	notify(1, "LAPSED", "was DISABLED")
	// A device that says it is enabled without consent.
	found, err := w.devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Rogue", Serial: "R-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	notify(1, "FOUND WITHOUT CONSENT")
	if err := w.devices.ReportState(ctx, doorledger.ReportedState{DeviceID: found.ID, State: doorledger.StateEnabled, Version: 0}); err != nil {
		t.Fatal(err)
	}
	notify(1, "found working WITHOUT CONSENT")

	// B's subscriber heard nothing of A; the unconfirmed address got no notice.
	for _, addr := range []string{"b@example.net", "unconfirmed@example.net"} {
		for _, m := range w.mailsTo(t, addr) {
			if m.Kind == doorledger.MailResidentNotice {
				t.Errorf("%s got a notice: %s", addr, m.Subject)
			}
		}
	}
	var journaled int
	if err := w.db.Reader().QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE action = 'resident.notify' AND building_id = ?`, w.A.ID).Scan(&journaled); err != nil || journaled != 9 {
		t.Errorf("notices journaled: %d (%v), want 9", journaled, err)
	}
}
