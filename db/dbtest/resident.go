package dbtest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var residentTests = []test{
	{"PublicNoticeDevices", testPublicNoticeDevices},
	{"NoticeSlugRotation", testNoticeSlugRotation},
	{"NotifyResidents", testNotifyResidents},
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
func testPublicNoticeDevices(t *testing.T, newServices NewServices) {
	w := NewResidentWorld(t, NewConsentWorld(t, newServices(t)))
	t0 := *w.Now
	mgr := as(w.Manager)
	at := func(days int) { *w.Now = t0.AddDate(0, 0, days) }

	at(-120)
	old := w.Signed(t, "OLD-1")       // disabled 91 days ago: off the notice
	recent := w.Signed(t, "RECENT-1") // disabled 10 days ago
	pending := w.Signed(t, "PENDING-1")
	at(-91)
	if _, err := w.Devices.SetDesiredState(mgr, old.DeviceID, doorledger.StateDisabled, "removed"); err != nil {
		t.Fatal(err)
	}
	at(-10)
	if _, err := w.Devices.SetDesiredState(mgr, recent.DeviceID, doorledger.StateDisabled, "removed"); err != nil {
		t.Fatal(err)
	}
	at(-5)
	found, err := w.Devices.RecordFoundDevice(mgr, w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	at(-2)
	// Told to disable, but the device's last report says it is enabled.
	if err := w.DeviceReports.ReportState(context.Background(), doorledger.ReportedState{DeviceID: pending.DeviceID, State: doorledger.StateEnabled, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Devices.SetDesiredState(mgr, pending.DeviceID, doorledger.StateDisabled, "revoke"); err != nil {
		t.Fatal(err)
	}
	at(0)
	enabled := w.Signed(t, "ON-1")
	awaiting, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("WAIT-1", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	// Another building's device is not on A's notice.
	if _, err := w.Devices.RecordFoundDevice(sys(), w.B.ID, doorledger.DeviceDetails{Vendor: "Elsewhere", Serial: "B-1", Location: "panel"}); err != nil {
		t.Fatal(err)
	}

	n, err := w.Residents.PublicNotice(context.Background(), w.Slug)
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
	n, err = w.Residents.PublicNotice(context.Background(), w.Slug)
	if err != nil {
		t.Fatal(err)
	}
	got = noticeByID(n)
	if len(n.Devices) != 3 || got[enabled.DeviceID] == nil || got[awaiting.DeviceID] == nil || got[pending.DeviceID] == nil {
		t.Errorf("91 days on: %d devices, want the enabled, the awaiting and the unconfirmed one", len(n.Devices))
	}

	for _, bad := range []string{"", "nope", strings.ToUpper(w.Slug), w.Slug[:31] + "g"} {
		if _, err := w.Residents.PublicNotice(context.Background(), bad); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			t.Errorf("slug %q: %v, want ENOTFOUND", bad, err)
		}
	}
}

// Rotating the slug makes the old one unknown at once; only managers may,
// and the journal says it happened without keeping either address.
func testNoticeSlugRotation(t *testing.T, newServices NewServices) {
	w := NewResidentWorld(t, NewConsentWorld(t, newServices(t)))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(w.Slug) {
		t.Fatalf("slug %q is not 128 bits of hex", w.Slug)
	}
	if s := w.NoticeSettings(t); s.URL != "http://portal.test/notice/"+w.Slug {
		t.Errorf("URL %q", s.URL)
	}
	if _, err := w.Residents.RotateNoticeSlug(as(w.Inst), w.A.ID); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer rotates: %v", err)
	}
	if _, err := w.Residents.RotateNoticeSlug(as(w.Manager), w.B.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("manager of A rotates B: %v", err)
	}
	fresh, err := w.Residents.RotateNoticeSlug(as(w.Manager), w.A.ID)
	if err != nil || fresh == w.Slug || len(fresh) != 32 {
		t.Fatalf("rotate: %q %v", fresh, err)
	}
	if _, err := w.Residents.PublicNotice(context.Background(), w.Slug); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("old slug: %v", err)
	}
	if n, err := w.Residents.PublicNotice(context.Background(), fresh); err != nil || n.BuildingName != "Harbor View" {
		t.Errorf("new slug: %v", err)
	}
	rotated := w.Journal(t, w.A.ID, "notice.rotate")
	if len(rotated) != 1 {
		t.Fatalf("%d notice.rotate entries, want 1", len(rotated))
	}
	detail := rotated[0].Detail
	if strings.Contains(detail, fresh) || strings.Contains(detail, w.Slug) {
		t.Errorf("the journal keeps a notice address: %s", detail)
	}
	// Every new building has a notice of its own.
	b, err := w.Buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: "Third", Address: "3 St", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := w.Residents.NoticeSettings(sys(), b.ID); err != nil || len(s.Slug) != 32 || s.Slug == fresh {
		t.Errorf("new building's notice: %+v %v", s, err)
	}
}

// Notices come from the journal: every path that enables, disables, finds a
// device or ends its consent is told, once, to the building's confirmed
// subscribers only.
func testNotifyResidents(t *testing.T, newServices NewServices) {
	w := NewResidentWorld(t, NewConsentWorld(t, newServices(t)))
	ctx := context.Background()
	subscribe := func(slug, addr string) {
		t.Helper()
		if err := w.Residents.Subscribe(ctx, slug, addr); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Residents.ConfirmSubscription(ctx, w.LastLink(t, addr, doorledger.ResidentConfirmPath)); err != nil {
			t.Fatal(err)
		}
	}
	subscribe(w.Slug, "a@example.net")
	slugB := func() string {
		s, err := w.Residents.NoticeSettings(sys(), w.B.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s.Slug
	}()
	subscribe(slugB, "b@example.net")
	if err := w.Residents.Subscribe(ctx, w.Slug, "unconfirmed@example.net"); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Residents.NotifyResidents(ctx); err != nil || n != 0 {
		t.Fatalf("nothing happened yet: %d notices, %v", n, err)
	}
	notices := func() []string {
		t.Helper()
		var bodies []string
		for _, m := range w.MailsTo(t, "a@example.net") {
			if m.Kind == doorledger.MailResidentNotice {
				bodies = append(bodies, m.Body)
			}
		}
		return bodies
	}
	notify := func(want int, what ...string) {
		t.Helper()
		before := len(notices())
		if n, err := w.Residents.NotifyResidents(ctx); err != nil || n != want {
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

	c := w.Signed(t, "SN-1")
	notify(1, "was ENABLED", "by the Board president", "http://portal.test/notice/"+w.Slug, "http://portal.test/residents/unsubscribe/")
	notify(0) // once only
	if _, err := w.Devices.SetDesiredState(as(w.Manager), c.DeviceID, doorledger.StateDisabled, "Mia's note"); err != nil {
		t.Fatal(err)
	}
	notify(1, "was DISABLED")
	if _, err := w.Devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-4", Location: "panel"}); err != nil {
		t.Fatal(err)
	}
	notify(1, "FOUND WITHOUT CONSENT")

	w.Signed(t, "SN-2")
	if _, err := w.Consents.EndByToken(ctx, w.LastLink(t, "zoe@example.com", "/consent/withdraw/"), "no"); err != nil {
		t.Fatal(err)
	}
	notify(1, "was ENABLED", "was WITHDRAWN by the Board president", "was DISABLED")
	w.Signed(t, "SN-3")
	if _, err := w.Consents.EndByToken(ctx, w.LastLink(t, "zoe@example.com", "/consent/dispute/"), ""); err != nil {
		t.Fatal(err)
	}
	notify(1, "was DISPUTED: the Board president says they did not sign it")
	w.Signed(t, "SN-4")
	notify(1, "was ENABLED")
	*w.Now = w.Now.AddDate(1, 0, 1)
	if n, err := w.Consents.LapseDue(ctx); err != nil || n != 2 { // SN-1's (its device disabled before) and SN-4's
		t.Fatalf("lapse: %d %v", n, err)
	}
	notify(1, "LAPSED", "was DISABLED")
	// A device that says it is enabled without consent.
	found, err := w.Devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Rogue", Serial: "R-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	notify(1, "FOUND WITHOUT CONSENT")
	if err := w.DeviceReports.ReportState(ctx, doorledger.ReportedState{DeviceID: found.ID, State: doorledger.StateEnabled, Version: 0}); err != nil {
		t.Fatal(err)
	}
	notify(1, "found working WITHOUT CONSENT")

	// B's subscriber heard nothing of A; the unconfirmed address got no notice.
	for _, addr := range []string{"b@example.net", "unconfirmed@example.net"} {
		for _, m := range w.MailsTo(t, addr) {
			if m.Kind == doorledger.MailResidentNotice {
				t.Errorf("%s got a notice: %s", addr, m.Subject)
			}
		}
	}
	if journaled := len(w.Journal(t, w.A.ID, "resident.notify")); journaled != 9 {
		t.Errorf("notices journaled: %d, want 9", journaled)
	}
}
