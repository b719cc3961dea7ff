package main

import (
	"context"
	"database/sql"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a clock the test moves; the portal's database reads it
// (db.DB.Now) instead of the machine's, which nobody moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// boardWorld is a roster world whose building has a board: Paula Prez
// (President), Tom Trent (Treasurer) and Sam Sec (Secretary).
type boardWorld struct {
	*rosterWorld
	app   *app
	clock *testClock
}

func newBoardWorld(t *testing.T) *boardWorld {
	t.Helper()
	b := &boardWorld{clock: &testClock{now: time.Now().UTC()}}
	p := mustStartPortalHook(t, "", func(a *app) { a.sqliteDB().Now, b.app = b.clock.Now, a }, nil)
	b.rosterWorld = newRosterWorldOn(t, p)
	for _, s := range [][3]string{{"Paula Prez", "President", "paula@example.com"}, {"Tom Trent", "Treasurer", "tom@example.com"}, {"Sam Sec", "Secretary", "sam@example.com"}} {
		if status, _, body := b.mgr.Post(b.building, b.building+"/signers", url.Values{"signer_name": {s[0]}, "signer_title": {s[1]}, "signer_email": {s[2]}}); status != http.StatusSeeOther {
			t.Fatalf("add signer %s: %d\n%s", s[0], status, body)
		}
	}
	return b
}

// setPolicy posts the policy form as the manager and returns the status and body.
func (w *boardWorld) setPolicy(t *testing.T, form url.Values) (int, string) {
	t.Helper()
	status, _, body := w.mgr.Post(w.building+"/policy", w.building+"/policy", form)
	return status, body
}

// ask submits a request naming the signers, in order, by name.
func (w *boardWorld) ask(t *testing.T, serial string, names ...string) (int, string, string) {
	t.Helper()
	newReq := w.building + "/consents/new"
	_, page := w.inst.Get(newReq)
	form := url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {serial}, "location": {"lobby panel"}, "opens": {"lobby door"}, "mode": {"link"}}
	for _, n := range names {
		m := regexp.MustCompile(`name="signer_id" value="(\d+)"[^>]*>\s*` + regexp.QuoteMeta(n)).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no checkbox for %s:\n%s", n, page)
		}
		form.Add("signer_id", m[1])
	}
	return w.inst.PostMultipart(newReq, w.building+"/consents", form, nil)
}

// linkTo reads the newest link with the prefix mailed to addr, from the
// admin's outbox page.
func (w *boardWorld) linkTo(t *testing.T, addr, prefix string) string {
	t.Helper()
	status, body := w.admin.Get("/outbox")
	if status != http.StatusOK { // the clock moved past the session's life
		w.admin.MustLogin(testAdminEmail, w.p.AdminPass)
		_, body = w.admin.Get("/outbox")
	}
	for _, mail := range strings.Split(html.UnescapeString(body), `<article class="mail"`)[1:] {
		if !strings.Contains(mail, "to "+addr+" ") {
			continue
		}
		if m := regexp.MustCompile(`https?://[^/\s]+(` + regexp.QuoteMeta(prefix) + `[A-Za-z0-9_-]+)`).FindStringSubmatch(mail); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s link mailed to %s", prefix, addr)
	return ""
}

// sign opens a signing link as its signer would and signs with name.
func (w *boardWorld) sign(t *testing.T, link, name string) (int, string) {
	t.Helper()
	c := NewClient(t, w.p.URL)
	_, page := c.Get(link)
	m := termsRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no signing form on %s:\n%s", link, page)
	}
	status, _, body := c.Post(link, link, url.Values{"terms_sha256": {m[1]}, "typed_name": {name}, "agree": {"1"}, "signature": {signatureDataURL(t)}})
	return status, body
}

// count runs a COUNT query on a read-only copy of the portal's database.
func (w *boardWorld) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	r, err := sql.Open("sqlite", "file:"+filepath.Join(w.p.DataDir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// 2 of 3: the device stays disabled after one signature and is enabled
// after the second; the certificate prints both signatures with their own
// evidence and the hash of the same terms.
func TestEndToEndPolicyTwoOfThree(t *testing.T) {
	w := newBoardWorld(t)
	// A policy the roster cannot satisfy is refused beside its field.
	status, body := w.setPolicy(t, url.Values{"required": {"4"}, "reminder_days": {"2, 5"}, "expiry_days": {"14"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="required-error"`) || !strings.Contains(body, "fewer than the 4 required") {
		t.Fatalf("policy of 4 on a roster of 3: %d\n%s", status, body)
	}
	if status, body := w.setPolicy(t, url.Values{"required": {"2"}, "reminder_days": {"2, 5"}, "expiry_days": {"14"}}); status != http.StatusSeeOther {
		t.Fatalf("policy of 2: %d\n%s", status, body)
	}
	status, loc, body := w.ask(t, "SN-2OF3", "Paula Prez", "Tom Trent", "Sam Sec")
	if status != http.StatusSeeOther {
		t.Fatalf("request: %d\n%s", status, body)
	}
	consent := loc
	paula := w.linkTo(t, "paula@example.com", "/sign/")
	_, page := NewClient(t, w.p.URL).Get(paula)
	for _, want := range []string{"Tom Trent", "Treasurer", "Sam Sec", "Secretary", "2 different people of the roster"} {
		if !strings.Contains(page, want) {
			t.Fatalf("Paula's signing page does not show %q:\n%s", want, page)
		}
	}
	if status, body := w.sign(t, paula, "Paula Prez"); status != http.StatusOK || !strings.Contains(body, "your signature is recorded") {
		t.Fatalf("first signature: %d\n%s", status, body)
	}
	if state := w.deviceState(t, consent); state != "disabled" {
		t.Fatalf("device %s after one of two signatures", state)
	}
	// The same person again, by the same link: refused, nothing changes.
	c := NewClient(t, w.p.URL)
	_, page = c.Get(paula)
	if !strings.Contains(page, "You signed this on") || strings.Contains(page, `id="sign-form"`) {
		t.Fatalf("Paula's link after she signed:\n%s", page)
	}
	if status, _, _ := c.Post(paula, paula, url.Values{"terms_sha256": {strings.Repeat("0", 64)}, "typed_name": {"Paula Prez"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status == http.StatusOK {
		t.Fatal("a second signature by the same person was taken")
	}
	if n := w.count(t, `SELECT COUNT(*) FROM consent_signatures WHERE consent_id = ?`, strings.TrimPrefix(consent, "/consents/")); n != 1 {
		t.Fatalf("%d signatures after the same person signed twice", n)
	}
	_, page = w.mgr.Get(w.building)
	if !strings.Contains(page, `id="waiting"`) || !strings.Contains(page, "1 of 2") || !strings.Contains(page, "1 more signature") {
		t.Fatalf("the building page does not list the request waiting:\n%s", page)
	}
	if status, body := w.sign(t, w.linkTo(t, "tom@example.com", "/sign/"), "Tom Trent"); status != http.StatusOK || !strings.Contains(body, "consent signed") {
		t.Fatalf("second signature: %d\n%s", status, body)
	}
	if state := w.deviceState(t, consent); state != "enabled" {
		t.Fatalf("device %s after two of two signatures", state)
	}
	_, page = w.mgr.Get(consent)
	if !strings.Contains(page, `id="signature-`) || strings.Count(page, `class="signature-evidence"`) != 2 {
		t.Fatalf("the consent page does not show each signature's evidence:\n%s", page)
	}
	// The certificate: both signatures, each with its evidence and the hash of the same terms.
	resp, err := w.mgr.http.Get(w.p.URL + consent + "/certificate.pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	qpdfCheck(t, pdf)
	text := certificateText(t, w.mgr, consent)
	hash := regexp.MustCompile(`Terms SHA-256 ([0-9a-f]{64})`).FindStringSubmatch(text)
	if hash == nil {
		t.Fatalf("no terms hash in the certificate:\n%s", text)
	}
	for _, want := range []string{"SIGNED", "Signature 1 of 2: Paula Prez, President", "Signature 2 of 2: Tom Trent, Treasurer", "Paula Prez Paula Prez typed name matches", "Tom Trent Tom Trent typed name matches", "(link): paula@example.com", "(link): tom@example.com",
		"doorledger-consent-terms/2", "Sam Sec <sam@example.com> — did not sign (not needed)"} {
		if !strings.Contains(text, want) {
			t.Fatalf("certificate lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, hash[1]); n != 3 || strings.Count(text, "The terms printed above hash to this SHA-256.") != 2 {
		t.Fatalf("the terms hash is printed %d times (want the terms' and each signature's, 3), checks %d:\n%s", n, strings.Count(text, "The terms printed above hash"), text)
	}
}

// The same person cannot be asked twice: a second roster entry with the
// same address (here "+board") is one person, for the policy and for a
// request.
func TestEndToEndPolicySamePerson(t *testing.T) {
	w := newBoardWorld(t)
	if status, _, body := w.mgr.Post(w.building, w.building+"/signers", url.Values{"signer_name": {"Paula Prez"}, "signer_title": {"Board member"}, "signer_email": {"paula+board@example.com"}}); status != http.StatusSeeOther {
		t.Fatalf("add alias: %d\n%s", status, body)
	}
	if status, body := w.setPolicy(t, url.Values{"required": {"4"}, "expiry_days": {"14"}}); status != http.StatusUnprocessableEntity || !strings.Contains(body, "3 different people") {
		t.Fatalf("4 of 4 entries, 3 people: %d\n%s", status, body)
	}
	if status, body := w.setPolicy(t, url.Values{"required": {"2"}, "expiry_days": {"14"}}); status != http.StatusSeeOther {
		t.Fatalf("policy: %d\n%s", status, body)
	}
	_, page := w.inst.Get(w.building + "/consents/new")
	paulas := regexp.MustCompile(`name="signer_id" value="(\d+)"[^>]*>\s*Paula Prez`).FindAllStringSubmatch(page, -1)
	if len(paulas) != 2 {
		t.Fatalf("the two Paula entries: %v\n%s", paulas, page)
	}
	form := url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {"SN-TWICE"}, "location": {"lobby"}, "opens": {"lobby door"}, "mode": {"link"},
		"signer_id": {paulas[0][1], paulas[1][1]}}
	status, _, body := w.inst.PostMultipart(w.building+"/consents/new", w.building+"/consents", form, nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="signer_id-error"`) || !strings.Contains(html.UnescapeString(body), "one person cannot sign twice") {
		t.Fatalf("a request naming one person twice: %d\n%s", status, body)
	}
}

// Ordered signing: the Treasurer's link says it is waiting for the
// President until she signs; then he is mailed it is his turn and signs.
func TestEndToEndPolicyOrdered(t *testing.T) {
	w := newBoardWorld(t)
	if status, body := w.setPolicy(t, url.Values{"required": {"2"}, "roles": {"President", "Treasurer"}, "ordered": {"1"}, "reminder_days": {"2, 5"}, "expiry_days": {"14"}}); status != http.StatusSeeOther {
		t.Fatalf("policy: %d\n%s", status, body)
	}
	_, consent, _ := w.ask(t, "SN-ORD", "Paula Prez", "Tom Trent")
	tom := w.linkTo(t, "tom@example.com", "/sign/")
	c := NewClient(t, w.p.URL)
	_, page := c.Get(tom)
	if !strings.Contains(strings.ToLower(page), "waiting for the president") || strings.Contains(page, `id="sign-form"`) {
		t.Fatalf("Tom's page before Paula signed:\n%s", page)
	}
	m := regexp.MustCompile(`class="hash">([0-9a-f]{64})<`).FindStringSubmatch(page)
	if status, _, _ := c.Post(tom, tom, url.Values{"terms_sha256": {m[1]}, "typed_name": {"Tom Trent"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusConflict {
		t.Fatalf("Tom signing before his turn: %d", status)
	}
	if status, body := w.sign(t, w.linkTo(t, "paula@example.com", "/sign/"), "Paula Prez"); status != http.StatusOK {
		t.Fatalf("Paula: %d\n%s", status, body)
	}
	_, outbox := w.admin.Get("/outbox")
	if !strings.Contains(outbox, "Your turn to sign") {
		t.Fatal("Tom was not mailed that it is his turn")
	}
	_, page = c.Get(tom)
	if strings.Contains(strings.ToLower(page), "waiting for the president") || !strings.Contains(page, `id="sign-form"`) {
		t.Fatalf("Tom's page after Paula signed:\n%s", page)
	}
	if status, body := w.sign(t, tom, "Tom Trent"); status != http.StatusOK || w.deviceState(t, consent) != "enabled" {
		t.Fatalf("Tom in turn: %d\n%s", status, body)
	}
}

// Reminders on the building's schedule (days 2 and 5), through the outbox,
// to the signers who have not signed; none after the request expires; the
// installer and managers are told of the expiry, and the installer sends it
// again. The job runs at the database's clock, which the test moves.
func TestEndToEndPolicyRemindersAndExpiry(t *testing.T) {
	w := newBoardWorld(t)
	if status, body := w.setPolicy(t, url.Values{"required": {"2"}, "reminder_days": {"2, 5"}, "expiry_days": {"14"}}); status != http.StatusSeeOther {
		t.Fatalf("policy: %d\n%s", status, body)
	}
	start := w.clock.Now()
	_, consent, _ := w.ask(t, "SN-REM", "Paula Prez", "Tom Trent")
	if status, _ := w.sign(t, w.linkTo(t, "paula@example.com", "/sign/"), "Paula Prez"); status != http.StatusOK {
		t.Fatal("Paula did not sign")
	}
	reminders := func(addr string) int {
		return w.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'reminder' AND to_addr = ?`, addr)
	}
	at := func(days float64) {
		t.Helper()
		w.clock.Set(start.Add(time.Duration(days * float64(24*time.Hour))))
		if err := w.app.remindJob(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		days float64
		tom  int
	}{{1, 0}, {2.01, 1}, {4, 1}, {5.01, 2}, {13, 2}, {14.01, 2}, {20, 2}} {
		at(step.days)
		if got := reminders("tom@example.com"); got != step.tom {
			t.Fatalf("day %.2f: %d reminders to Tom, want %d", step.days, got, step.tom)
		}
	}
	if n := reminders("paula@example.com") + reminders("sam@example.com"); n != 0 {
		t.Fatalf("%d reminders to a signer who signed or was not asked", n)
	}
	for _, to := range []string{"ivan@example.com", "mia@example.com"} {
		if n := w.count(t, `SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND subject LIKE '%expired unsigned%'`, to); n != 1 {
			t.Fatalf("%s told of the expiry %d times", to, n)
		}
	}
	w.inst.MustLogin("ivan@example.com", "correct horse battery") // 20 days later
	_, page := w.inst.Get(consent)
	if !strings.Contains(page, `id="expired"`) || !strings.Contains(page, `id="resend"`) {
		t.Fatalf("the expired request's page:\n%s", page)
	}
	status, loc, body := w.inst.Post(consent, consent+"/resend", nil)
	if status != http.StatusSeeOther || loc == consent {
		t.Fatalf("send again: %d %s\n%s", status, loc, body)
	}
	_, page = w.inst.Get(loc)
	if !strings.Contains(page, "Awaiting signature") {
		t.Fatalf("the new request:\n%s", page)
	}
}
