package sqlite_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// residentWorld is the suite's resident world with the database under it.
type residentWorld struct {
	*dbtest.ResidentWorld
	db *sqlite.DB
}

func newResidentWorld(t *testing.T) *residentWorld {
	t.Helper()
	w := newConsentWorld(t)
	return &residentWorld{ResidentWorld: dbtest.NewResidentWorld(t, w.ConsentWorld), db: w.db}
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
	if _, err := w.Residents.ReportDevice(ctx, w.Slug, doorledger.ResidentReportInput{Location: " ", Contact: "not an address"}); doorledger.ErrorFields(err)["location"] == "" || doorledger.ErrorFields(err)["contact"] == "" {
		t.Fatalf("bad report: %v", err)
	}
	r, err := w.Residents.ReportDevice(ctx, w.Slug, doorledger.ResidentReportInput{Location: "grey box in the panel, see http://x.example", Contact: "Res@Example.net",
		Photo: &doorledger.Photo{ContentType: "image/png", Data: png}})
	if err != nil {
		t.Fatal(err)
	}
	if m := w.MailsTo(t, "manager@example.com"); len(m) != 1 || !strings.Contains(m[0].Body, "grey box in the panel, see http[:]//x.example") ||
		!strings.Contains(m[0].Body, "res@example.net") {
		t.Fatalf("manager alert: %+v", m)
	}
	if m := w.MailsTo(t, "board@example.com"); len(m) != 0 {
		t.Fatalf("board alerted without the building's alert setting: %+v", m)
	}
	reported := w.Journal(t, 0, "resident.report")
	i := slices.IndexFunc(reported, func(e *doorledger.AuditEntry) bool { return e.ObjectID == r.ID })
	if i < 0 {
		t.Fatalf("no resident.report entry for report %d", r.ID)
	}
	ip, detail := reported[i].IP, reported[i].Detail
	if ip != "" || strings.Contains(detail, "res@example.net") || strings.Contains(detail, "grey box") {
		t.Errorf("the journal keeps the resident's IP or words: ip %q, detail %s", ip, detail)
	}
	if _, err := w.db.Writer().Exec(`UPDATE buildings SET alert_board = 1 WHERE id = ?`, w.A.ID); err != nil {
		t.Fatal(err)
	}
	r2, err := w.Residents.ReportDevice(ctx, w.Slug, doorledger.ResidentReportInput{Location: "sticker on the garage door"})
	if err != nil {
		t.Fatal(err)
	}
	if m := w.MailsTo(t, "board@example.com"); len(m) != 1 {
		t.Fatalf("board not alerted with the alert setting on: %d mails", len(m))
	}

	// Resolution: managers only; the found device must be one recorded as found here.
	if err := w.Residents.ResolveResidentReport(as(w.Inst), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportNotDelivery}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer resolves: %v", err)
	}
	if err := w.Residents.ResolveResidentReport(as(w.Manager), w.B.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportNotDelivery}); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("resolve through another building: %v", err)
	}
	consented := w.Signed(t, "SN-77")
	err = w.Residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportFoundDevice, FoundDeviceID: consented.DeviceID})
	if doorledger.ErrorFields(err)["found_device"] == "" {
		t.Errorf("resolved as a consented device: %v", err)
	}
	found, err := w.Devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-2", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportFoundDevice, FoundDeviceID: found.ID, Note: "relay"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Residents.ResolveResidentReport(as(w.Manager), w.A.ID, r.ID, doorledger.ReportResolution{Outcome: doorledger.ReportDuplicate}); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second resolution: %v", err)
	}
	if err := w.Residents.ResolveResidentReport(as(w.Manager), w.A.ID, r2.ID, doorledger.ReportResolution{Outcome: doorledger.ReportOther}); doorledger.ErrorFields(err)["note"] == "" {
		t.Errorf("other without a note: %v", err)
	}
	s := w.NoticeSettings(t)
	if len(s.Reports) != 2 || s.Reports[0].ID != r2.ID || !s.Reports[0].Open() || s.Reports[1].ID != r.ID || s.Reports[1].Contact != "" ||
		s.Reports[1].Outcome != doorledger.ReportFoundDevice || s.Reports[1].FoundDeviceID != found.ID || s.Reports[1].ResolvedBy != "manager@example.com" {
		t.Fatalf("reports on the building page: %+v %+v", s.Reports[0], s.Reports[1])
	}
	if p, err := w.Residents.ResidentReportPhoto(as(w.Manager), w.A.ID, r.ID); err != nil || string(p.Data) != string(png) {
		t.Errorf("photo: %v", err)
	}
	if _, err := w.Residents.ResidentReportPhoto(as(w.Manager), w.A.ID, r2.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
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
	w.Residents.(*sqlite.ResidentService).MaxOpenReports = 1
	if _, err := w.Residents.ReportDevice(ctx, w.Slug, doorledger.ResidentReportInput{Location: "again"}); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Errorf("report past the open limit: %v", err)
	}
}

// Subscriptions: double opt-in, no answer that tells whether an address is
// subscribed, few confirmation mails, and an unsubscribe that forgets the
// address; unconfirmed addresses are forgotten after 48 hours.
func TestResidentSubscription(t *testing.T) {
	w := newResidentWorld(t)
	ctx := context.Background()
	if err := w.Residents.Subscribe(ctx, w.Slug, "not an address"); doorledger.ErrorFields(err)["email"] == "" {
		t.Fatalf("bad address: %v", err)
	}
	if err := w.Residents.Subscribe(ctx, w.Slug, " Rita@Example.net "); err != nil {
		t.Fatal(err)
	}
	confirm := w.LastLink(t, "rita@example.net", doorledger.ResidentConfirmPath)
	for range 4 { // three confirmation mails a day at most, and the same answer
		if err := w.Residents.Subscribe(ctx, w.Slug, "rita@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(w.MailsTo(t, "rita@example.net")); n != 3 {
		t.Errorf("%d confirmation mails, want 3", n)
	}
	if s := w.NoticeSettings(t); s.Subscribers != 0 {
		t.Errorf("unconfirmed counted: %d", s.Subscribers)
	}
	link, err := w.Residents.OpenSubscriptionLink(ctx, confirm)
	if err != nil || link.Purpose != "confirm" || link.Done || link.BuildingName != "Harbor View" || link.NoticeSlug != w.Slug {
		t.Fatalf("open confirm link: %+v %v", link, err)
	}
	if link, err = w.Residents.ConfirmSubscription(ctx, confirm); err != nil || link.Done {
		t.Fatalf("confirm: %+v %v", link, err)
	}
	if link, err = w.Residents.ConfirmSubscription(ctx, confirm); err != nil || !link.Done {
		t.Fatalf("confirm again: %+v %v", link, err)
	}
	if s := w.NoticeSettings(t); s.Subscribers != 1 {
		t.Errorf("subscribers %d, want 1", s.Subscribers)
	}
	before := len(w.MailsTo(t, "rita@example.net"))
	if err := w.Residents.Subscribe(ctx, w.Slug, "rita@example.net"); err != nil || len(w.MailsTo(t, "rita@example.net")) != before {
		t.Errorf("subscribing a confirmed address: %v, mailed again", err)
	}
	if _, err := w.Residents.Unsubscribe(ctx, confirm); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("unsubscribe with the confirmation link: %v", err)
	}

	// A change: one notice, with an unsubscribe link that works once.
	if _, err := w.Devices.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Model: "R1", Serial: "G-3", Location: "panel"}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Residents.NotifyResidents(ctx); err != nil || n != 1 {
		t.Fatalf("notify: %d %v", n, err)
	}
	unsubscribe := w.LastLink(t, "rita@example.net", doorledger.ResidentUnsubscribePath)
	if link, err := w.Residents.OpenSubscriptionLink(ctx, unsubscribe); err != nil || link.Purpose != "unsubscribe" {
		t.Fatalf("open unsubscribe link: %+v %v", link, err)
	}
	if _, err := w.Residents.Unsubscribe(ctx, unsubscribe); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Residents.Unsubscribe(ctx, unsubscribe); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("second unsubscribe: %v", err)
	}
	var left int
	if err := w.db.Reader().QueryRow(`SELECT (SELECT COUNT(*) FROM resident_subscribers) + (SELECT COUNT(*) FROM resident_tokens)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("after unsubscribing, %d rows keep the address or its links (%v)", left, err)
	}
	entries, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var details string
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "resident.") {
			details += e.Detail + e.IP + " "
		}
	}
	if strings.Contains(details, "rita") {
		t.Errorf("the journal keeps a subscriber's address: %s", details)
	}

	// An address never confirmed is forgotten after 48 hours (at the job's next purge).
	if err := w.Residents.Subscribe(ctx, w.Slug, "never@example.net"); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(49 * time.Hour)
	if _, err := w.Residents.NotifyResidents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Reader().QueryRow(`SELECT COUNT(*) FROM resident_subscribers`).Scan(&left); err != nil || left != 0 {
		t.Errorf("unconfirmed subscribers after 49 hours: %d (%v)", left, err)
	}
}
