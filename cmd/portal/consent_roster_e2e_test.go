package main

import (
	"database/sql"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
)

// rosterWorld is a portal with a building, its manager and an invited
// installer, driven over HTTP as they would.
type rosterWorld struct {
	p                *Portal
	admin, mgr, inst *Client
	building         string // its path
}

// newRosterWorld starts a portal whose building's roster holds the signers,
// each "Name <address>".
func newRosterWorld(t *testing.T, signers ...string) *rosterWorld {
	t.Helper()
	return newRosterWorldOn(t, MustStartPortal(t, ""), signers...)
}

// newRosterWorldOn is newRosterWorld on a portal already started.
func newRosterWorldOn(t *testing.T, p *Portal, signers ...string) *rosterWorld {
	t.Helper()
	w := &rosterWorld{p: p, admin: NewClient(t, p.URL)}
	w.admin.MustLogin(testAdminEmail, p.AdminPass)
	_, w.building, _ = w.admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Harbor View"}, "address": {"1 Harbor St"}, "timezone": {"America/New_York"}})
	for _, u := range []url.Values{
		{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}},
		{"name": {"Ivan Installer"}, "email": {"ivan@example.com"}, "role": {"installer"}, "company": {"FastKey"}, "password": {"correct horse battery"}},
	} {
		w.admin.Post("/users/new", "/users", u)
		_, body := w.admin.Get("/users")
		id := regexp.MustCompile(`href="/users/(\d+)">` + regexp.QuoteMeta(u.Get("name"))).FindStringSubmatch(body)[1]
		w.admin.Post(w.building, w.building+"/grants", url.Values{"user_id": {id}})
	}
	w.mgr, w.inst = NewClient(t, p.URL), NewClient(t, p.URL)
	w.mgr.MustLogin("mia@example.com", "correct horse battery")
	w.inst.MustLogin("ivan@example.com", "correct horse battery")
	for _, s := range signers {
		name, email, _ := strings.Cut(strings.TrimSuffix(s, ">"), " <")
		if status, _, body := w.mgr.Post(w.building, w.building+"/signers", url.Values{"signer_name": {name}, "signer_title": {"Board member"}, "signer_email": {email}}); status != http.StatusSeeOther {
			t.Fatalf("add signer %s: %d\n%s", name, status, body)
		}
	}
	return w
}

// request submits a consent request to the named signer ("link" or
// "in_person") and returns the page the installer lands on.
func (w *rosterWorld) request(t *testing.T, serial, signer, mode string) string {
	t.Helper()
	newReq := w.building + "/consents/new"
	_, body := w.inst.Get(newReq)
	m := regexp.MustCompile(`<option value="(\d+)"[^>]*>` + regexp.QuoteMeta(signer)).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s among the signers:\n%s", signer, body)
	}
	status, loc, body := w.inst.PostMultipart(newReq, w.building+"/consents", url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {serial},
		"location": {"lobby panel"}, "opens": {"lobby door"}, "signer_id": {m[1]}, "mode": {mode}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("request: %d\n%s", status, body)
	}
	return loc
}

// removeSigner takes the named signer off the roster, as the manager.
func (w *rosterWorld) removeSigner(t *testing.T, name string) {
	t.Helper()
	_, body := w.mgr.Get(w.building)
	_, roster, _ := strings.Cut(body, `<section id="roster">`)
	m := regexp.MustCompile(`<tr><td>` + regexp.QuoteMeta(name) + `</td>.*?action="(/buildings/\d+/signers/\d+/remove)"`).FindStringSubmatch(roster)
	if m == nil {
		t.Fatalf("no remove button for %s:\n%s", name, body)
	}
	if status, _, body := w.mgr.Post(w.building, m[1], nil); status != http.StatusSeeOther {
		t.Fatalf("remove %s: %d\n%s", name, status, body)
	}
}

// deviceState reads a consent's device's desired state from the database.
func (w *rosterWorld) deviceState(t *testing.T, consent string) string {
	t.Helper()
	r, err := sql.Open("sqlite", "file:"+filepath.Join(w.p.DataDir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var state string
	if err := r.QueryRow(`SELECT d.desired_state FROM devices d JOIN consents c ON c.device_id = d.id WHERE c.id = ?`,
		strings.TrimPrefix(consent, "/consents/")).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

var termsRE = regexp.MustCompile(`name="terms_sha256" value="([0-9a-f]{64})"`)

// The defect as reported: the manager adds signer X, the installer asks X by link,
// the manager removes X, X opens the link and signs. Then the same with the
// in-person code.
func TestEndToEndRemovedSignerCannotSign(t *testing.T) {
	w := newRosterWorld(t, "Xavier Roe <xavier@example.com>", "Ana Owner <ana@example.com>")

	consent := strings.TrimSuffix(w.request(t, "SN-X1", "Xavier Roe", "link"), "/in-person")
	sign := outboxLink(t, w.admin, "/sign/")
	x := NewClient(t, w.p.URL)
	status, body := x.Get(sign)
	if status != http.StatusOK {
		t.Fatalf("signing page before the removal: %d", status)
	}
	terms, csrf := termsRE.FindStringSubmatch(body)[1], csrfRE.FindStringSubmatch(body)[1]
	w.removeSigner(t, "Xavier Roe")

	status, body = x.Get(sign)
	if status != http.StatusConflict || !strings.Contains(body, "can no longer be signed") || !strings.Contains(body, "Xavier Roe was removed from the roster") ||
		strings.Contains(body, `id="sign-form"`) || strings.Contains(body, "Back to your buildings") {
		t.Fatalf("signing link after the removal: %d\n%s", status, body)
	}
	status, _, body = x.Post("", sign, url.Values{"_csrf": {csrf}, "terms_sha256": {terms}, "typed_name": {"Xavier Roe"}, "agree": {"1"}, "signature": {signatureDataURL(t)}})
	if status != http.StatusConflict || !strings.Contains(body, "can no longer be signed") {
		t.Fatalf("signature after the removal: %d\n%s", status, body)
	}
	if state := w.deviceState(t, consent); state != "disabled" {
		t.Fatalf("device after the refused signature: %s", state)
	}
	_, body = w.mgr.Get(consent)
	if !strings.Contains(body, "Awaiting signature") || !strings.Contains(body, "Nobody can sign this request") || !strings.Contains(body, "Signing link and codes withdrawn") {
		t.Fatalf("manager's consent page:\n%s", body)
	}
	_, body = w.admin.Get("/outbox")
	if !strings.Contains(body, "to ivan@example.com") || !strings.Contains(body, "Consent requests at Harbor View can no longer be signed") ||
		!strings.Contains(body, "Signer removed at Harbor View") {
		t.Fatalf("installer and managers not told:\n%s", body)
	}

	// In person, with a code mailed to Ana before she is removed.
	inPerson := w.request(t, "SN-X2", "Ana Owner", "in_person")
	consent = strings.TrimSuffix(inPerson, "/in-person")
	if status, _, body := w.inst.Post(inPerson, consent+"/code", nil); status != http.StatusSeeOther {
		t.Fatalf("send code: %d\n%s", status, body)
	}
	_, mail := w.admin.Get("/outbox")
	code := regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(mail)[1]
	_, body = w.inst.Get(inPerson + "?sent=1")
	terms, csrf = termsRE.FindStringSubmatch(body)[1], csrfRE.FindStringSubmatch(body)[1]
	w.removeSigner(t, "Ana Owner")
	status, _, body = w.inst.Post("", inPerson, url.Values{"_csrf": {csrf}, "code": {code}, "terms_sha256": {terms}, "typed_name": {"Ana Owner"}, "agree": {"1"}, "signature": {signatureDataURL(t)}})
	if status != http.StatusConflict || !strings.Contains(body, "Ana Owner was removed from the roster") {
		t.Fatalf("in-person signature after the removal: %d\n%s", status, body)
	}
	if state := w.deviceState(t, consent); state != "disabled" {
		t.Fatalf("device after the refused in-person signature: %s", state)
	}
}

// A consent signed before its signer left the roster stays valid, is
// flagged, and a manager asks a current signer to renew it.
func TestEndToEndSignedBySignerSinceRemoved(t *testing.T) {
	w := newRosterWorld(t, "Xavier Roe <xavier@example.com>", "Ana Owner <ana@example.com>")
	consent := w.request(t, "SN-X3", "Xavier Roe", "link")
	sign := outboxLink(t, w.admin, "/sign/")
	x := NewClient(t, w.p.URL)
	_, body := x.Get(sign)
	if status, _, body := x.Post(sign, sign, url.Values{"terms_sha256": {termsRE.FindStringSubmatch(body)[1]}, "typed_name": {"Xavier Roe"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusOK {
		t.Fatalf("sign: %d\n%s", status, body)
	}
	w.removeSigner(t, "Xavier Roe")
	if state := w.deviceState(t, consent); state != "enabled" {
		t.Fatalf("device of a consent signed before the removal: %s", state)
	}
	if _, body := w.mgr.Get(w.building); !strings.Contains(body, "signed by a signer since removed from the roster") {
		t.Fatalf("building page does not flag it:\n%s", body)
	}
	_, body = w.mgr.Get(consent)
	ana := regexp.MustCompile(`<option value="(\d+)"[^>]*>Ana Owner`).FindStringSubmatch(body)
	if !strings.Contains(body, "Signed by a signer since removed from the roster") || ana == nil {
		t.Fatalf("consent page: no flag or no renewal to a current signer:\n%s", body)
	}
	status, _, body := w.mgr.Post(consent, consent+"/renew", url.Values{"signer_id": {""}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "Xavier Roe is no longer on the roster") {
		t.Fatalf("renewal by the removed signer: %d\n%s", status, body)
	}
	if status, loc, body := w.mgr.Post(consent, consent+"/renew", url.Values{"signer_id": {ana[1]}}); status != http.StatusSeeOther || loc == consent {
		t.Fatalf("renewal by Ana: %d %q\n%s", status, loc, body)
	}
	if _, body := w.admin.Get("/outbox"); !strings.Contains(body, "to ana@example.com") {
		t.Fatal("Ana was not mailed a signing link")
	}
}

// 10.3: a typed name that differs from the roster's is asked to be corrected
// or confirmed; confirmed, every record prints both names.
func TestEndToEndTypedNameMismatch(t *testing.T) {
	w := newRosterWorld(t, "Zoë Nuñez-Łukasz <zoe@example.com>")
	consent := w.request(t, "SN-N1", "Zoë Nuñez-Łukasz", "link")
	sign := outboxLink(t, w.admin, "/sign/")
	zoe := NewClient(t, w.p.URL)
	_, body := zoe.Get(sign)
	form := url.Values{"terms_sha256": {termsRE.FindStringSubmatch(body)[1]}, "typed_name": {"Mickey Mouse"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}
	status, _, body := zoe.Post(sign, sign, form)
	if status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), "This is not the name on the roster, “Zoë Nuñez-Łukasz”") ||
		!strings.Contains(body, `value="Mickey Mouse"`) || !strings.Contains(body, `name="name_confirm"`) || !strings.Contains(body, form.Get("signature")) {
		t.Fatalf("a differing name: %d\n%s", status, body)
	}
	form.Set("name_confirm", "1")
	if status, _, body := zoe.Post(sign, sign, form); status != http.StatusOK || !strings.Contains(body, "consent signed") {
		t.Fatalf("confirmed: %d\n%s", status, body)
	}
	_, body = w.mgr.Get(consent)
	body = html.UnescapeString(body)
	for _, want := range []string{"Mickey Mouse", "Zoë Nuñez-Łukasz", "typed name differs from the roster", "The signer's roster address, zoe@example.com, by the one-time link mailed to it. The typed name is not verified."} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if _, body := w.mgr.Get(w.building); !strings.Contains(body, "typed name differs from the roster") {
		t.Error("building page does not flag the differing name")
	}
	text := certificateText(t, w.mgr, consent)
	for _, want := range []string{"Mickey Mouse", "Zoë Nuñez-Łukasz", "typed name differs from the roster", "Verified: the signer's roster address zoe@example.com, by the one-time link mailed to it; the typed name is not verified."} {
		if !strings.Contains(text, want) {
			t.Errorf("certificate lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Signed by Mickey Mouse") || strings.Contains(text, "Verified and") {
		t.Errorf("certificate vouches for the typed name:\n%s", text)
	}

	// The same name without accents, hyphen or case: signed at once, no flag.
	consent = w.request(t, "SN-N2", "Zoë Nuñez-Łukasz", "link")
	sign = outboxLink(t, w.admin, "/sign/")
	_, body = zoe.Get(sign)
	if status, _, body := zoe.Post(sign, sign, url.Values{"terms_sha256": {termsRE.FindStringSubmatch(body)[1]}, "typed_name": {"zoe nunez lukasz"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusOK {
		t.Fatalf("a matching name: %d\n%s", status, body)
	}
	if _, body := w.mgr.Get(consent); strings.Contains(body, "typed name differs") {
		t.Error("a matching name is flagged")
	}
}

// certificateText downloads a consent's certificate and returns its text
// (pdftotext), with runs of white space made single spaces.
func certificateText(t *testing.T, c *Client, consent string) string {
	t.Helper()
	resp, err := c.http.Get(c.base + consent + "/certificate.pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("certificate: %d", resp.StatusCode)
	}
	file := filepath.Join(t.TempDir(), "certificate.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testtool.Require(t, "pdftotext"), file, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// 10.6: installers read no contact data, IP or browser of signers, and no
// broken image; a signer's links, reopened after signing, say what happened.
func TestEndToEndSignerLinksAndInstallerView(t *testing.T) {
	w := newRosterWorld(t, "Zoë Nuñez <zoe@example.com>")
	consent := w.request(t, "SN-P1", "Zoë Nuñez", "link")
	mask := html.EscapeString(doorledger.MaskedAddress)
	_, body := w.inst.Get(consent)
	if strings.Contains(body, "zoe@example.com") || !strings.Contains(body, mask) {
		t.Fatalf("installer's page before signing shows the address:\n%s", body)
	}
	sign := outboxLink(t, w.admin, "/sign/")
	zoe := NewClient(t, w.p.URL)
	_, body = zoe.Get(sign)
	if status, _, body := zoe.Post(sign, sign, url.Values{"terms_sha256": {termsRE.FindStringSubmatch(body)[1]}, "typed_name": {"Zoë Nuñez"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusOK {
		t.Fatalf("sign: %d\n%s", status, body)
	}

	_, body = w.inst.Get(consent)
	for _, unwanted := range []string{"zoe@example.com", "127.0.0.1", "Go-http-client", "IP, browser", "signature.png"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("installer's consent page shows %q", unwanted)
		}
	}
	if !strings.Contains(body, "signing link to "+mask) || strings.Count(body, mask) < 2 {
		t.Errorf("installer's page does not mask the address in the terms and the timeline:\n%s", body)
	}
	_, body = w.mgr.Get(consent)
	for _, want := range []string{"zoe@example.com", "127.0.0.1", "signature.png"} {
		if !strings.Contains(body, want) {
			t.Errorf("manager's consent page lacks %q", want)
		}
	}

	// The used signing link: what happened, and how to withdraw or report.
	status, body := zoe.Get(sign)
	if status != http.StatusOK || !strings.Contains(body, "You signed this on ") || !strings.Contains(body, "I did not sign this") ||
		!strings.Contains(body, `action="/consent/links/`) || strings.Contains(body, "Back to your buildings") || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("signing link reopened: %d\n%s", status, body)
	}
	firstWithdraw := outboxLink(t, w.admin, "/consent/withdraw/")
	links := regexp.MustCompile(`action="(/consent/links/[A-Za-z0-9_-]+)"`).FindStringSubmatch(body)[1]
	if status, _, body := zoe.Post(sign, links, nil); status != http.StatusOK || !strings.Contains(body, "Links mailed") {
		t.Fatalf("mail the links again: %d\n%s", status, body)
	}
	withdraw := outboxLink(t, w.admin, "/consent/withdraw/")
	if withdraw == firstWithdraw {
		t.Fatal("no new withdraw link mailed")
	}
	status, body = zoe.Get(withdraw)
	if status != http.StatusOK || !strings.Contains(body, "You signed this on ") || !strings.Contains(body, "Withdraw and disable the device") {
		t.Fatalf("withdraw page: %d\n%s", status, body)
	}
	if status, _, body := zoe.Post(withdraw, withdraw, url.Values{"reason": {"moved out"}}); status != http.StatusOK || !strings.Contains(body, "withdrawn") {
		t.Fatalf("withdraw: %d\n%s", status, body)
	}
	for _, link := range []string{sign, withdraw, firstWithdraw} {
		status, body := zoe.Get(link)
		if status != http.StatusOK || !strings.Contains(body, "You signed this on ") || !strings.Contains(body, "It was withdrawn on ") || strings.Contains(body, "/consent/links/") {
			t.Fatalf("%s after the withdrawal: %d\n%s", link[:20], status, body)
		}
	}

	// A link that never existed: not found, and no way "back to your buildings" for someone without an account.
	status, body = NewClient(t, w.p.URL).Get("/sign/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if status != http.StatusNotFound || strings.Contains(body, "Back to your buildings") {
		t.Fatalf("unknown link: %d\n%s", status, body)
	}
}
