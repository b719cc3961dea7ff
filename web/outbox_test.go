package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/web"
)

// smtpClient is an admin's browser on a second server over the fixture's
// services, configured as a portal with SMTP.
func (f *fixture) smtpClient(t *testing.T) *client {
	t.Helper()
	f.outbox.LogOnly = false
	srv := web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Audit: sqlite.NewAuditService(f.db),
		Consents: f.consents, Papers: f.consents, Policies: sqlite.NewPolicyService(f.db), Invitations: sqlite.NewInvitationService(f.db, "http://portal.test"), Outbox: f.outbox,
		Devices: sqlite.NewDeviceService(f.db), Unlocks: sqlite.NewUnlockService(f.db), Logs: f.logs, Reports: f.reports,
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		SMTP:        true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	h := httptest.NewServer(srv.Handler())
	t.Cleanup(h.Close)
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(h.URL)
	c := &client{tb: t, base: u, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	c.login(f.admin.Email)
	return c
}

// With SMTP the Outbox lists deliveries without their bodies, which carry
// one-time links; a failed mail can be retried from there.
func TestOutboxPageWithSMTPShowsNoBodies(t *testing.T) {
	f := newFixture(t)
	f.requestConsent(t, false)
	token := f.lastToken(t, "/sign/")
	pending := must(f.outbox.PendingMessages(context.Background(), 8, 10))(t)
	id := pending[0].ID
	if err := f.outbox.MarkFailed(context.Background(), id, "smtp 127.0.0.1:25: auth: 535 authentication failed", false, time.Minute); err != nil {
		t.Fatal(err)
	}
	admin := f.smtpClient(t)
	_, page := admin.get("/outbox")
	row := regexp.MustCompile(`(?s)<tr id="mail-` + fmt.Sprint(id) + `".*?</tr>`).FindString(page)
	if !strings.Contains(row, "not sent, will retry") || strings.Contains(row, "could not deliver") {
		t.Fatalf("a mail being retried:\n%s", row)
	}
	// The dispatcher gives up on it: "could not deliver", retry offered.
	if err := f.outbox.MarkFailed(context.Background(), id, "smtp 127.0.0.1:25: auth: 535 authentication failed", true, 0); err != nil {
		t.Fatal(err)
	}
	resp, page := admin.get("/outbox")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("outbox: %d", resp.StatusCode)
	}
	if strings.Contains(page, token) || strings.Contains(page, "/sign/") || strings.Contains(page, "Review the full terms") {
		t.Fatalf("the outbox page shows a body:\n%s", page)
	}
	row = regexp.MustCompile(`(?s)<tr id="mail-` + fmt.Sprint(id) + `".*?</tr>`).FindString(page)
	for _, want := range []string{f.signer.Email, "Consent requested: delivery device at Building A", "could not deliver", "<td>2</td>",
		"535 authentication failed", fmt.Sprintf(`action="/outbox/%d/retry"`, id)} {
		if !strings.Contains(row, want) {
			t.Errorf("the delivery row lacks %q:\n%s", want, row)
		}
	}

	// Retry: back to its first attempt, the real link still in it.
	if resp, body := admin.post(fmt.Sprintf("/outbox/%d/retry", id), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d\n%s", resp.StatusCode, body)
	}
	pending = must(f.outbox.PendingMessages(context.Background(), 8, 10))(t)
	if len(pending) != 1 || pending[0].Attempts != 0 || !strings.Contains(pending[0].Body, "http://portal.test/sign/"+token) {
		t.Fatalf("after retry: %+v", pending)
	}
	// Sent, it can no longer be retried, and its body is gone.
	if err := f.outbox.MarkSent(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	_, page = admin.get("/outbox")
	if strings.Contains(page, "/outbox/") || !strings.Contains(page, "sent ") {
		t.Fatalf("a sent mail offers a retry:\n%s", page)
	}
}

// Without SMTP mail is only logged, and the Outbox shows bodies so that the
// links can be followed.
func TestOutboxPageWithoutSMTPShowsBodies(t *testing.T) {
	f := newFixture(t)
	f.outbox.LogOnly = true
	f.requestConsent(t, false)
	token := f.lastToken(t, "/sign/")
	admin := f.client()
	admin.login(f.admin.Email)
	if _, page := admin.get("/outbox"); !strings.Contains(page, "http://portal.test/sign/"+token) {
		t.Fatalf("the outbox page lacks the link:\n%s", page)
	}
}
