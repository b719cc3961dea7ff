package web_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/web"
)

// secondInstance starts another portal instance on the fixture's database
// file, as a second process on the same data directory would: its own
// database handle and services, the same cookie keys (the shared directory's
// session.keys). It returns a client factory for it.
func (f *fixture) secondInstance(tb testing.TB) func() *client {
	tb.Helper()
	d := sqlite.NewDB(f.db.Path)
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	logs := sqlite.NewLogService(d, testLogKey(tb))
	consents := sqlite.NewConsentService(d, "http://portal.test")
	srv := web.NewServer(web.Config{
		Users: sqlite.NewUserService(d), Buildings: sqlite.NewBuildingService(d), Audit: sqlite.NewAuditService(d),
		Consents: consents, Papers: consents, Policies: sqlite.NewPolicyService(d), Invitations: sqlite.NewInvitationService(d, "http://portal.test"),
		Outbox: sqlite.NewOutboxService(d), Devices: sqlite.NewDeviceService(d), Unlocks: sqlite.NewUnlockService(d), Logs: logs,
		Reports: sqlite.NewReportService(d, logs, "http://portal.test"), Residents: sqlite.NewResidentService(d, "http://portal.test"),
		Privacy: sqlite.NewPrivacyService(d), Attention: sqlite.NewAttentionService(d),
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)
	base, _ := url.Parse(hs.URL)
	return func() *client {
		c := f.client()
		c.base = base
		return c
	}
}

// on returns a client of the instance behind newClient carrying only the
// given session cookie (a browser's, sent to another instance by the load
// balancer).
func on(newClient func() *client, session string) *client {
	c := newClient()
	c.http.Jar.SetCookies(c.base, []*http.Cookie{{Name: "dl_session", Value: session, Path: "/"}})
	return c
}

// Two instances on one database: a browser signed in through one is signed
// in on the other; signed out through either, or replaced by a new sign-in,
// its session is refused by both.
func TestSessionSharedAcrossInstances(t *testing.T) {
	f := newFixture(t)
	onA, onB := f.client, f.secondInstance(t)

	browser := onA()
	browser.login(f.managerA.Email)
	first := browser.cookie("dl_session")
	if !signedIn(on(onA, first)) || !signedIn(on(onB, first)) {
		t.Fatal("a session started on instance A is not signed in on both instances")
	}

	// Signing in again on B replaces the session: the old one is refused by both.
	second := on(onB, first)
	second.login(f.managerA.Email)
	renewed := second.cookie("dl_session")
	if renewed == "" || renewed == first {
		t.Fatalf("no new session at sign-in on B: %q then %q", first, renewed)
	}
	if signedIn(on(onA, first)) || signedIn(on(onB, first)) {
		t.Fatal("the session replaced at sign-in on B still works on an instance")
	}
	if !signedIn(on(onA, renewed)) || !signedIn(on(onB, renewed)) {
		t.Fatal("the session started on B is not signed in on both instances")
	}

	// Signing out on A ends it on B too.
	if resp, _ := on(onA, renewed).post("/logout", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on A: %d", resp.StatusCode)
	}
	if signedIn(on(onA, renewed)) || signedIn(on(onB, renewed)) {
		t.Fatal("a session signed out on A still works on an instance")
	}

	// Signing out everywhere on B ends the sessions started on A.
	laptop, phone := onA(), onA()
	laptop.login(f.boardA.Email)
	phone.login(f.boardA.Email)
	if resp, _ := on(onB, laptop.cookie("dl_session")).post("/logout/everywhere", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout everywhere on B: %d", resp.StatusCode)
	}
	if signedIn(laptop) || signedIn(phone) || signedIn(on(onB, phone.cookie("dl_session"))) {
		t.Fatal("a session started on A survives logout everywhere on B")
	}
}
