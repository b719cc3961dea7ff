package web_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/pdftest"
	"github.com/doorledger/doorledger/web"
)

const testPassword = "correct horse battery"

// fixture is a portal on a real SQLite file with two buildings and a user of
// each kind: the cast of the access tests.
type fixture struct {
	tb        testing.TB
	db        *sqlite.DB
	users     *sqlite.UserService
	buildings *sqlite.BuildingService
	consents  *sqlite.ConsentService
	outbox    *sqlite.OutboxService
	reports   *sqlite.ReportService
	logs      *sqlite.LogService
	residents *sqlite.ResidentService
	privacy   *sqlite.PrivacyService
	witnesses *sqlite.WitnessService
	factors   *sqlite.SecondFactorService
	signer    *doorledger.Signer
	server    *web.Server
	http      *httptest.Server

	A, B                                     *doorledger.Building
	admin, managerA, managerB, boardA, instA *doorledger.User
}

func sys() context.Context { return doorledger.NewSystemContext(context.Background(), "test") }

// must turns a (value, error) result into the value, failing tb on error:
// must(f())(tb).
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// newFixture builds the portal; each option may change its configuration
// (it knows the portal's address already: f.http.URL).
func newFixture(tb testing.TB, options ...func(f *fixture, cfg *web.Config)) *fixture {
	tb.Helper()
	d := sqlite.NewDB(filepath.Join(tb.TempDir(), "test.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	logs := sqlite.NewLogService(d, testLogKey(tb))
	f := &fixture{tb: tb, db: d, users: sqlite.NewUserService(d), buildings: sqlite.NewBuildingService(d),
		consents: sqlite.NewConsentService(d, "http://portal.test"), outbox: sqlite.NewOutboxService(d),
		reports: sqlite.NewReportService(d, logs, "http://portal.test"), logs: logs, residents: sqlite.NewResidentService(d, "http://portal.test"),
		privacy: sqlite.NewPrivacyService(d), witnesses: sqlite.NewWitnessService(d), factors: sqlite.NewSecondFactorService(d)}
	// The listener first, so that an option can give the portal its own address.
	f.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.server.Handler().ServeHTTP(w, r) }))
	tb.Cleanup(f.http.Close)
	cfg := web.Config{
		Users: f.users, Buildings: f.buildings, Audit: sqlite.NewAuditService(d),
		Consents: f.consents, Papers: f.consents, Policies: sqlite.NewPolicyService(d), Invitations: sqlite.NewInvitationService(d, "http://portal.test"), Outbox: f.outbox,
		Devices:       sqlite.NewDeviceService(d),
		Unlocks:       sqlite.NewUnlockService(d),
		Logs:          logs,
		Witnesses:     f.witnesses,
		Reports:       f.reports,
		Residents:     f.residents,
		Privacy:       f.privacy,
		Attention:     sqlite.NewAttentionService(d),
		Webhooks:      sqlite.NewWebhookService(d),
		SecondFactors: f.factors,
		PublicURL:     "http://localhost",                  // a host name: passkeys are offered
		Now:           func() time.Time { return d.Now() }, // the portal's one clock, as cmd/portal wires it
		DiskFull:      d.Space().Full,
		SessionKeys:   [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		SSOAccounts:   sqlite.NewSSOService(d),
	}
	for _, o := range options {
		o(f, &cfg)
	}
	f.server = web.NewServer(cfg)

	ctx := sys()
	f.A = must(f.buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Building A", Address: "1 A St", Timezone: "America/New_York"}))(tb)
	f.B = must(f.buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Building B", Address: "2 B St", Timezone: "Europe/Warsaw"}))(tb)
	user := func(email string, role doorledger.Role, grants ...*doorledger.Building) *doorledger.User {
		u := must(f.users.CreateUser(ctx, doorledger.NewUser{Email: email, Name: email, Role: role, Password: testPassword}))(tb)
		for _, b := range grants {
			if err := f.buildings.GrantAccess(ctx, b.ID, u.ID); err != nil {
				tb.Fatal(err)
			}
		}
		return u
	}
	f.admin = user("admin@example.com", doorledger.RoleAdmin)
	f.managerA = user("manager.a@example.com", doorledger.RoleManager, f.A)
	f.managerB = user("manager.b@example.com", doorledger.RoleManager, f.B)
	f.boardA = user("board.a@example.com", doorledger.RoleBoard, f.A)
	f.instA = user("installer.a@example.com", doorledger.RoleInstaller, f.A)
	f.signer = must(f.buildings.AddSigner(ctx, f.A.ID, doorledger.SignerInput{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe@example.com"}))(tb)
	return f
}

var serial int

// requestConsent submits a consent request as installer A, with one photo.
func (f *fixture) requestConsent(tb testing.TB, inPerson bool) *doorledger.Consent {
	tb.Helper()
	serial++
	ctx := doorledger.NewContextWithUser(context.Background(), f.instA)
	return must(f.consents.RequestConsent(ctx, f.A.ID, doorledger.ConsentRequest{
		SignerID: f.signer.ID, InPerson: inPerson,
		Device: doorledger.DeviceDetails{Vendor: "Acme", Model: "K2", Serial: fmt.Sprintf("SN-%d", serial), Location: "lobby panel", Opens: "lobby door"},
		Photos: []doorledger.Photo{{ContentType: "image/png", Data: signaturePNG(tb)}},
	}))(tb)
}

// paperConsent requests a consent carrying a signed paper form (a one-page
// PDF) said to be signed by the roster's signer.
func (f *fixture) paperConsent(tb testing.TB) *doorledger.Consent {
	tb.Helper()
	serial++
	ctx := doorledger.NewContextWithUser(context.Background(), f.instA)
	return must(f.consents.RequestConsent(ctx, f.A.ID, doorledger.ConsentRequest{
		SignerID: f.signer.ID,
		Device:   doorledger.DeviceDetails{Vendor: "Acme", Model: "K2", Serial: fmt.Sprintf("SN-%d", serial), Location: "lobby panel", Opens: "lobby door"},
		Paper: &doorledger.PaperFormInput{Kind: doorledger.PaperPDF, SignedByIDs: []int64{f.signer.ID}, DateWritten: "2026-11-20",
			Files: []doorledger.PaperFile{{ContentType: "application/pdf", Data: pdftest.Pages(1), Pages: 1}}},
	}))(tb)
}

// signedConsent requests a consent and signs it by its link.
func (f *fixture) signedConsent(tb testing.TB) (*doorledger.Consent, string) {
	tb.Helper()
	f.requestConsent(tb, false)
	token := f.lastToken(tb, "/sign/")
	sess := must(f.consents.OpenSigning(context.Background(), token))(tb)
	c := must(f.consents.Sign(context.Background(), token, doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true,
		SignaturePNG: signaturePNG(tb), TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "127.0.0.1", UserAgent: "test"}))(tb)
	return c, token
}

func (f *fixture) invite(tb testing.TB) *doorledger.Invitation {
	tb.Helper()
	serial++
	ctx := doorledger.NewContextWithUser(context.Background(), f.managerA)
	return must(sqlite.NewInvitationService(f.db, "http://portal.test").Invite(ctx, f.A.ID, fmt.Sprintf("new%d@example.com", serial), "New Installer", "FastKey"))(tb)
}

// lastToken returns the token of the newest mailed link with the path prefix.
func (f *fixture) lastToken(tb testing.TB, prefix string) string {
	tb.Helper()
	msgs := must(f.outbox.PendingMessages(context.Background(), 100, 10000))(tb)
	re := regexp.MustCompile(regexp.QuoteMeta("http://portal.test"+prefix) + `([A-Za-z0-9_-]+)`)
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := re.FindStringSubmatch(msgs[i].Body); m != nil {
			return m[1]
		}
	}
	tb.Fatalf("no %s link in the outbox", prefix)
	return ""
}

// signaturePNG draws a small signature-like stroke.
func signaturePNG(tb testing.TB) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 200, 80))
	for x := 20; x < 180; x++ {
		img.Set(x, 40+(x%20)-10, color.NRGBA{0, 0, 80, 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// client is a browser-like client: a cookie jar, no redirect following.
type client struct {
	tb   testing.TB
	base *url.URL
	http *http.Client
}

func (f *fixture) client() *client {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(f.http.URL)
	return &client{tb: f.tb, base: u, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.tb.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base.String()+path, nil)
	return c.do(req)
}

// cookie returns the value of the named cookie in the jar.
func (c *client) cookie(name string) string {
	for _, ck := range c.http.Jar.Cookies(c.base) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// csrf makes sure the jar holds a CSRF cookie and returns its token.
func (c *client) csrf() string {
	c.tb.Helper()
	if tok := c.cookie("dl_csrf"); tok != "" {
		return tok
	}
	c.get("/login")
	tok := c.cookie("dl_csrf")
	if tok == "" {
		c.tb.Fatal("no CSRF cookie after GET /login")
	}
	return tok
}

// post submits a form with the CSRF token (unless token is "-": none).
func (c *client) post(path string, form url.Values, token string) (*http.Response, string) {
	c.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if token == "" {
		token = c.csrf()
	}
	if token != "-" {
		form.Set("_csrf", token)
	}
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) login(email string) {
	c.tb.Helper()
	resp, body := c.post("/login", url.Values{"email": {email}, "password": {testPassword}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		c.tb.Fatalf("login %s: %d %q\n%s", email, resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

func (f *fixture) audit() *sqlite.AuditService { return sqlite.NewAuditService(f.db) }

// stream opens a server-sent event stream and returns its response as soon as
// the headers arrive, closing the stream.
func (c *client) stream(path string) *http.Response {
	c.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func testLogKey(tb testing.TB) *auditlog.Key {
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), "doorledger-test")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
