package dbtest

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// ConsentWorld is a building with a roster, its manager, two installers and
// a second building, built through the services.
type ConsentWorld struct {
	Services
	A, B                        *doorledger.Building
	Signer, SignerB             *doorledger.Signer
	Manager, Inst, Inst2, InstB *doorledger.User
}

// NewConsentWorld builds the consent world on s.
func NewConsentWorld(t *testing.T, s Services) *ConsentWorld {
	t.Helper()
	w := &ConsentWorld{Services: s}
	ctx := sys()
	buildings, users := s.Buildings, s.Users
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	w.A, err = buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Harbor View", Address: "1 Harbor St", Timezone: "America/New_York"})
	must(err)
	w.B, err = buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Elm Court", Address: "2 Elm St", Timezone: "Europe/Warsaw"})
	must(err)
	w.Signer, err = buildings.AddSigner(ctx, w.A.ID, doorledger.SignerInput{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe@example.com"})
	must(err)
	w.SignerB, err = buildings.AddSigner(ctx, w.B.ID, doorledger.SignerInput{Name: "Łukasz Wróbel", Title: "Owner", Email: "lukasz@example.com"})
	must(err)
	user := func(email string, role doorledger.Role, b *doorledger.Building) *doorledger.User {
		u, err := users.CreateUser(ctx, doorledger.NewUser{Email: email, Name: email, Role: role, Company: "FastKey", Password: "correct horse battery"})
		must(err)
		must(buildings.GrantAccess(ctx, b.ID, u.ID))
		return u
	}
	w.Manager = user("manager@example.com", doorledger.RoleManager, w.A)
	w.Inst = user("inst@example.com", doorledger.RoleInstaller, w.A)
	w.Inst2 = user("inst2@example.com", doorledger.RoleInstaller, w.A)
	w.InstB = user("instb@example.com", doorledger.RoleInstaller, w.B)
	return w
}

// Request is a consent request for a device with the given serial, to signer.
func Request(serial string, signer int64) doorledger.ConsentRequest {
	return doorledger.ConsentRequest{SignerID: signer, Device: doorledger.DeviceDetails{
		Vendor: "Acme Access", Model: "KeyBox 2", Serial: serial, Location: "main lobby intercom panel", Opens: "lobby door, for couriers"}}
}

var request = Request

// LastLink returns the token of the newest link with the given path prefix
// mailed to addr.
func (w *ConsentWorld) LastLink(t *testing.T, addr, prefix string) string {
	t.Helper()
	return lastLink(t, w.Outbox, addr, prefix)
}

func lastLink(tb testing.TB, outbox doorledger.OutboxService, addr, prefix string) string {
	tb.Helper()
	msgs, err := outbox.PendingMessages(context.Background(), 100, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta(BaseURL+prefix) + `([A-Za-z0-9_-]+)`)
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := re.FindStringSubmatch(msgs[i].Body); msgs[i].To == addr && m != nil {
			return m[1]
		}
	}
	tb.Fatalf("no %s link mailed to %s", prefix, addr)
	return ""
}

// SignaturePNG is the signature image the suite signs with.
var SignaturePNG = []byte("\x89PNG\r\n\x1a\n-a-validated-signature")

// SignInput is what Zoë enters on the signing page of token.
func (w *ConsentWorld) SignInput(t *testing.T, token string) doorledger.SignInput {
	sess, err := w.Consents.OpenSigning(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: SignaturePNG, IP: "203.0.113.7", UserAgent: "test", TermsSHA256: doorledger.TermsSHA256(sess.Terms)}
}

// Device returns a device's desired state and consent (0: none).
func (w *ConsentWorld) Device(t *testing.T, id int64) (state string, consentID int64) {
	t.Helper()
	d, err := w.Devices.FindDeviceByID(sys(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(d.DesiredState), d.ConsentID
}

// Mail returns the queued messages to addr whose subject contains subject.
func (w *ConsentWorld) Mail(t *testing.T, addr, subject string) []*doorledger.Message {
	t.Helper()
	msgs, err := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*doorledger.Message
	for _, m := range msgs {
		if m.To == addr && strings.Contains(m.Subject, subject) {
			out = append(out, m)
		}
	}
	return out
}

// Timeline is a consent's timeline as u sees it, one "kind: note" a line.
func (w *ConsentWorld) Timeline(t *testing.T, u *doorledger.User, id int64) string {
	t.Helper()
	events, err := w.Consents.ConsentTimeline(as(u), id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Kind + ": " + e.Note + "\n")
	}
	return b.String()
}

// MustCode mails a code for an in-person consent and returns it.
func (w *ConsentWorld) MustCode(t *testing.T, id int64) string {
	t.Helper()
	if err := w.Consents.SendCode(as(w.Inst), id, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	return regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)[1]
}

// PolicyWorld is a consent world whose building A has a board of four:
// Paula (President), Tom (Treasurer), Sam (Secretary), and "Paula's other
// address", a second roster entry that reaches Paula's mailbox.
type PolicyWorld struct {
	*ConsentWorld
	Paula, Tom, Sam *doorledger.Signer
}

// NewPolicyWorld builds the policy world on a consent world.
func NewPolicyWorld(t *testing.T, cw *ConsentWorld) *PolicyWorld {
	t.Helper()
	w := &PolicyWorld{ConsentWorld: cw}
	bs := w.Buildings
	// The consent world's Zoë leaves the roster: the board below signs.
	if err := bs.RemoveSigner(as(w.Manager), w.A.ID, w.Signer.ID); err != nil {
		t.Fatal(err)
	}
	add := func(name, title, email string) *doorledger.Signer {
		s, err := bs.AddSigner(as(w.Manager), w.A.ID, doorledger.SignerInput{Name: name, Title: title, Email: email})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	w.Paula = add("Paula Prez", "President", "paula@example.com")
	w.Tom = add("Tom Trent", "Treasurer", "tom@example.com")
	w.Sam = add("Sam Sec", "Secretary", "sam@example.com")
	return w
}

func (w *PolicyWorld) SetPolicy(t *testing.T, in doorledger.PolicyInput) *doorledger.ConsentPolicy {
	t.Helper()
	if in.ExpiryDays == 0 {
		in.ExpiryDays = 14
	}
	p, err := w.Policies.SetConsentPolicy(as(w.Manager), w.A.ID, in)
	if err != nil {
		t.Fatalf("set policy %+v: %v", in, err)
	}
	return p
}

func (w *PolicyWorld) Ask(t *testing.T, serial string, signers ...*doorledger.Signer) *doorledger.Consent {
	t.Helper()
	r := request(serial, 0)
	for _, s := range signers {
		r.SignerIDs = append(r.SignerIDs, s.ID)
	}
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	if err != nil {
		t.Fatalf("request %s: %v", serial, err)
	}
	return c
}

// SignAs signs with the newest link mailed to s, with s's name.
func (w *PolicyWorld) SignAs(t *testing.T, s *doorledger.Signer) (*doorledger.Consent, error) {
	t.Helper()
	token := w.LastLink(t, s.Email, "/sign/")
	in := w.SignInput(t, token)
	in.TypedName = s.Name
	return w.Consents.Sign(context.Background(), token, in)
}

// LastMail returns the newest message queued to addr.
func (w *ConsentWorld) LastMail(t *testing.T, addr string) doorledger.Message {
	t.Helper()
	msgs, err := w.Outbox.PendingMessages(context.Background(), 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To == addr {
			return *msgs[i]
		}
	}
	t.Fatalf("no mail to %s", addr)
	return doorledger.Message{}
}

// ResidentWorld is the consent world with building A's notice slug.
type ResidentWorld struct {
	*ConsentWorld
	Slug string
}

// NewResidentWorld builds the resident world on a consent world.
func NewResidentWorld(t *testing.T, cw *ConsentWorld) *ResidentWorld {
	t.Helper()
	w := &ResidentWorld{ConsentWorld: cw}
	w.Slug = w.NoticeSettings(t).Slug
	return w
}

// NoticeSettings are building A's notice settings, as its manager sees them.
func (w *ResidentWorld) NoticeSettings(t *testing.T) *doorledger.NoticeSettings {
	t.Helper()
	n, err := w.Residents.NoticeSettings(as(w.Manager), w.A.ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Signed requests and signs a consent for a device of building A, now.
func (w *ConsentWorld) Signed(t *testing.T, serial string) *doorledger.Consent {
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

// Journal returns the journal entries of a building (0: every building) with the given action,
// oldest first.
func (w Services) Journal(t testing.TB, buildingID int64, action string) []*doorledger.AuditEntry {
	t.Helper()
	all, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{BuildingID: buildingID, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*doorledger.AuditEntry
	for _, e := range slices.Backward(all) {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// MailsTo returns the queued messages to addr.
func (w Services) MailsTo(t testing.TB, addr string) []*doorledger.Message {
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

// WantCode reports an error unless err has the code.
func WantCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if got := doorledger.ErrorCode(err); got != code {
		t.Errorf("%s: err = %v (code %q), want %s", what, err, got, code)
	}
}

// JournalEntry returns the oldest journal entry of a building (0: every
// building) with the given action, and fails the test when there is none.
func (w Services) JournalEntry(t testing.TB, buildingID int64, action string) *doorledger.AuditEntry {
	t.Helper()
	entries := w.Journal(t, buildingID, action)
	if len(entries) == 0 {
		t.Fatalf("no %s entry in the journal", action)
	}
	return entries[0]
}

// Alerts returns the subjects of the alerts queued to addr, in order.
func (w Services) Alerts(t testing.TB, addr string) []string {
	t.Helper()
	var list []string
	for _, m := range w.MailsTo(t, addr) {
		if m.Kind == "alert" {
			list = append(list, m.Subject)
		}
	}
	return list
}
