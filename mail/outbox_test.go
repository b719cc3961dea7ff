package mail

import (
	"bytes"
	"context"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// outboxWorld is a building with a signer, a manager and an installer on a
// real SQLite file, whose mail goes to an in-process SMTP server.
type outboxWorld struct {
	d           *sqlite.DB
	consents    *sqlite.ConsentService
	invitations *sqlite.InvitationService
	outbox      *sqlite.OutboxService
	srv         *testServer
	b           *doorledger.Building
	signer      *doorledger.Signer
	mgr, inst   context.Context
}

func newOutboxWorld(t *testing.T) *outboxWorld {
	t.Helper()
	d := sqlite.NewDB(filepath.Join(t.TempDir(), "doorledger.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w := &outboxWorld{d: d, consents: sqlite.NewConsentService(d, "https://portal.example"),
		invitations: sqlite.NewInvitationService(d, "https://portal.example"), outbox: sqlite.NewOutboxService(d)}
	w.srv = MustTestServer(t, TLSNone, "portal", "s3cret")
	sys := doorledger.NewSystemContext(context.Background(), "test")
	users, buildings := sqlite.NewUserService(d), sqlite.NewBuildingService(d)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	w.b, err = buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: "Harbor View", Address: "1 Harbor St", Timezone: "America/New_York"})
	must(err)
	w.signer, err = buildings.AddSigner(sys, w.b.ID, doorledger.SignerInput{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe@example.com"})
	must(err)
	for _, u := range []struct {
		role doorledger.Role
		ctx  *context.Context
	}{{doorledger.RoleManager, &w.mgr}, {doorledger.RoleInstaller, &w.inst}} {
		user, err := users.CreateUser(sys, doorledger.NewUser{Email: string(u.role) + "@example.com", Name: string(u.role), Role: u.role, Company: "FastKey", Password: "correct horse battery"})
		must(err)
		must(buildings.GrantAccess(sys, w.b.ID, user.ID))
		*u.ctx = doorledger.NewContextWithUser(context.Background(), user)
	}
	return w
}

func (w *outboxWorld) request(t *testing.T, serial string, inPerson bool) *doorledger.Consent {
	t.Helper()
	c, err := w.consents.RequestConsent(w.inst, w.b.ID, doorledger.ConsentRequest{SignerID: w.signer.ID, InPerson: inPerson, Device: doorledger.DeviceDetails{
		Vendor: "Acme", Model: "K2", Serial: serial, Location: "lobby panel", Opens: "lobby door"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// flush delivers the outbox with mailer and fails the test on an error unless failing.
func (w *outboxWorld) flush(t *testing.T, mailer doorledger.Mailer, failing bool) {
	t.Helper()
	disp := &Dispatcher{Outbox: w.outbox, Mailer: mailer, Logger: discardLogger()}
	if err := disp.Flush(context.Background()); (err != nil) != failing {
		t.Fatalf("flush: %v (want an error: %v)", err, failing)
	}
}

// received returns the decoded bodies of everything the server received.
func (w *outboxWorld) received(t *testing.T) string {
	t.Helper()
	var all strings.Builder
	for _, r := range w.srv.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		all.Write(body)
		all.WriteString("\n")
	}
	return all.String()
}

func linkTokens(s, prefix string) []string {
	var out []string
	for _, m := range regexp.MustCompile(regexp.QuoteMeta("https://portal.example"+prefix)+`([A-Za-z0-9_-]+)`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// works reports whether token opens any one-time link.
func (w *outboxWorld) works(token string) bool {
	ctx := context.Background()
	// A used link still opens a page that says what happened (Done): that page
	// can sign, withdraw or dispute nothing, so it does not count as working.
	if sess, err := w.consents.OpenSigning(ctx, token); err == nil && !sess.Done {
		return true
	}
	if sess, _, err := w.consents.OpenAfterSigning(ctx, token); err == nil && !sess.Done {
		return true
	}
	if _, _, _, err := w.invitations.OpenInvitation(ctx, token); err == nil {
		return true
	}
	return false
}

// tokenShaped finds every run of base64url (which includes hex) characters
// long enough to be a one-time token or a prefix of one.
var tokenShaped = regexp.MustCompile(`[A-Za-z0-9_-]{16,}`)

// After the consent flow's mail is delivered over SMTP, nothing in the
// database opens a one-time link: every token-shaped string of every column of
// every table is tried, while the links the recipients got do work. A mail
// that failed is retried with its real link.
func TestOutboxKeepsNoUsableTokenAtRest(t *testing.T) {
	w := newOutboxWorld(t)
	good := w.srv.MustMailer(t, w.srv.Config(TLSNone))
	badCfg := w.srv.Config(TLSNone)
	badCfg.Password = "wrong"
	bad := w.srv.MustMailer(t, badCfg)

	// Every kind of mail that carries a secret: an invitation link, a
	// signing link, an in-person code, and (once signed) withdraw and
	// dispute links.
	if _, err := w.invitations.Invite(w.mgr, w.b.ID, "new@example.com", "New Installer", "FastKey"); err != nil {
		t.Fatal(err)
	}
	w.request(t, "SN-1", false)
	inPerson := w.request(t, "SN-2", true)
	if err := w.consents.SendCode(w.inst, inPerson.ID, 0); err != nil {
		t.Fatal(err)
	}
	w.flush(t, good, false)
	sign := linkTokens(w.received(t), "/sign/")
	if len(sign) != 1 {
		t.Fatalf("signing links received: %v\n%s", sign, w.received(t))
	}
	sess, err := w.consents.OpenSigning(context.Background(), sign[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.Sign(context.Background(), sign[0], doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true,
		SignaturePNG: []byte("\x89PNG\r\n\x1a\n-validated-by-the-caller"), TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "203.0.113.7", UserAgent: "test"}); err != nil {
		t.Fatal(err)
	}
	// A mail that fails (the relay refuses the portal's login) stays queued,
	// sealed; retried once the relay accepts, it carries the real link.
	w.request(t, "SN-3", false)
	w.flush(t, bad, true)
	w.scan(t)                                                               // with a live link waiting in the outbox
	w.d.Now = func() time.Time { return time.Now().Add(DefaultRetryDelay) } // its retry due
	w.flush(t, good, false)

	got := w.received(t)
	codes := regexp.MustCompile(`Your code is: (\d{6})`).FindAllStringSubmatch(got, -1)
	var live []string
	for _, prefix := range []string{"/sign/", "/consent/withdraw/", "/consent/dispute/", "/invite/"} {
		toks := linkTokens(got, prefix)
		if len(toks) == 0 {
			t.Fatalf("no %s link was delivered:\n%s", prefix, got)
		}
		live = append(live, toks...)
	}
	if len(codes) != 1 || len(live) != 5 {
		t.Fatalf("delivered %d codes and links %v", len(codes), live)
	}
	opened := 0
	for _, tok := range live {
		if w.works(tok) {
			opened++
		}
	}
	if opened != 4 { // all but the signing link used to sign
		t.Fatalf("%d of the delivered links work, want 4 (every one but the signing link used)", opened)
	}
	var pending int
	w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d mails unsent", pending)
	}

	// The database, read as sqlite3 would: no candidate opens anything.
	w.scan(t)
	// Nor do its files hold a delivered link, a code or any mail text.
	files := testtool.DatabaseFiles(t, w.d.Path)
	for _, s := range append(live, "Your code is: "+codes[0][1], "Review the full terms", "To withdraw this consent", "Accept the invitation") {
		if bytes.Contains(files, []byte(s)) {
			t.Errorf("the database's files hold %q", s)
		}
	}
}

// scan tries every token-shaped string of the database as a one-time link.
func (w *outboxWorld) scan(t *testing.T) {
	t.Helper()
	candidates := tokenShaped.FindAllString(testtool.TableText(t, w.d.Reader()), -1)
	if len(candidates) < 10 {
		t.Fatalf("only %d token-shaped strings in the database: is the scan reading it?", len(candidates))
	}
	for _, c := range candidates {
		if w.works(c) {
			t.Errorf("the database holds a working one-time token: %s", c)
		}
	}
}
