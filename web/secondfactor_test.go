package web_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/twofactor"
)

// clock fixes the portal's clock (the database's, which the server reads)
// at a time the test moves.
func (f *fixture) clock() *time.Time {
	now := time.Now().UTC().Truncate(time.Second)
	f.db.Now = func() time.Time { return now }
	return &now
}

var (
	secretRe   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`)
	qrRe       = regexp.MustCompile(`src="data:image/png;base64,([A-Za-z0-9+/=]+)"`)
	recoveryRe = regexp.MustCompile(`<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>`)
)

// totpCode is the authenticator app's code for secret at t.
func totpCode(tb testing.TB, secret string, t time.Time) string {
	tb.Helper()
	c, err := twofactor.CodeAt(secret, t)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// enrolTOTP sets up an authenticator app for the signed-in client through
// the account pages at *now, and returns its secret and recovery codes.
func enrolTOTP(t *testing.T, c *client, now *time.Time) (string, []string) {
	t.Helper()
	resp, body := c.post("/account/second-factor/totp", nil, "")
	m := secretRe.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("start: %d, no key on the page\n%.600s", resp.StatusCode, body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	resp, body = c.post("/account/second-factor/totp/confirm", url.Values{"code": {totpCode(t, secret, *now)}}, "")
	codes := recoveryRe.FindAllStringSubmatch(body, -1)
	if resp.StatusCode != http.StatusOK || len(codes) != doorledger.RecoveryCodeCount {
		t.Fatalf("confirm: %d, %d recovery codes\n%.600s", resp.StatusCode, len(codes), body)
	}
	var out []string
	for _, c := range codes {
		out = append(out, c[1])
	}
	*now = now.Add(30 * time.Second) // the confirming code is used
	return secret, out
}

// withApp fixes f's clock, signs a new client in as email and sets up an
// authenticator app through it; it returns the clock, the client and the
// app's secret.
func (f *fixture) withApp(t *testing.T, email string) (*time.Time, *client, string) {
	t.Helper()
	now := f.clock()
	c := f.client()
	c.login(email)
	secret, _ := enrolTOTP(t, c, now)
	return now, c, secret
}

// signInWithCode signs c in as email with the password then code, and
// returns the second step's answer.
func signInWithCode(t *testing.T, c *client, email, code string) (*http.Response, string) {
	t.Helper()
	resp, body := c.post("/login", url.Values{"email": {email}, "password": {testPassword}, "next": {"/buildings"}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/second-factor" {
		t.Fatalf("password: %d %q, want the second-factor step\n%.400s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return c.post("/login/second-factor", url.Values{"code": {code}}, "")
}

// A manager sets up an authenticator app (QR code and key, confirmed by a
// code); from then on the sign-in asks for a code after the password, and a
// recovery code stands in for it once.
func TestSecondFactorEnrolAndSignIn(t *testing.T) {
	f := newFixture(t)
	now := f.clock()
	c := f.client()
	c.login(f.managerA.Email)

	// The setup page: a QR code of the otpauth URL and the key by hand.
	resp, body := c.post("/account/second-factor/totp", nil, "")
	m, qr := secretRe.FindStringSubmatch(body), qrRe.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || qr == nil {
		t.Fatalf("setup page: %d, key %v, QR %v\n%.600s", resp.StatusCode, m != nil, qr != nil, body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	if got := decodeQR(t, qr[1]); got != "" && (!strings.HasPrefix(got, "otpauth://totp/") || !strings.Contains(got, "secret="+secret)) {
		t.Fatalf("the QR code reads %q, want the otpauth URL of %s", got, secret)
	}
	// A wrong code: the message beside the field, the QR code still there.
	resp, body = c.post("/account/second-factor/totp/confirm", url.Values{"code": {"000000"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="code-error"`) || !strings.Contains(body, m[0]) {
		t.Fatalf("wrong code: %d\n%.800s", resp.StatusCode, body)
	}
	resp, body = c.post("/account/second-factor/totp/confirm", url.Values{"code": {totpCode(t, secret, *now)}}, "")
	codes := recoveryRe.FindAllStringSubmatch(body, -1)
	if resp.StatusCode != http.StatusOK || len(codes) != doorledger.RecoveryCodeCount {
		t.Fatalf("confirm: %d, %d codes\n%.600s", resp.StatusCode, len(codes), body)
	}
	if _, body := c.get("/account/second-factor"); !strings.Contains(body, "10 recovery codes left") {
		t.Fatalf("the account page after setup:\n%.800s", body)
	}
	*now = now.Add(30 * time.Second)

	// Sign-in: the password alone does not sign in.
	b := f.client()
	resp, _ = b.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}}, "")
	if resp.Header.Get("Location") != "/login/second-factor" || signedIn(b) {
		t.Fatalf("after the password: %d %q, signed in %v", resp.StatusCode, resp.Header.Get("Location"), signedIn(b))
	}
	resp, body = b.post("/login/second-factor", url.Values{"code": {"123 456"}}, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="code-error"`) || signedIn(b) {
		t.Fatalf("a wrong code: %d\n%.600s", resp.StatusCode, body)
	}
	resp, _ = b.post("/login/second-factor", url.Values{"code": {totpCode(t, secret, *now)}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || !signedIn(b) {
		t.Fatalf("the right code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A proved password waits ten minutes for its code, no more.
	late := f.client()
	late.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}}, "")
	*now = now.Add(11 * time.Minute)
	if resp, _ := late.post("/login/second-factor", url.Values{"code": {totpCode(t, secret, *now)}}, ""); resp.Header.Get("Location") != "/login" || signedIn(late) {
		t.Fatalf("the code 11 minutes after the password: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A recovery code, once.
	r := f.client()
	resp, _ = signInWithCode(t, r, f.managerA.Email, strings.ToUpper(codes[0][1]))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a recovery code: %d", resp.StatusCode)
	}
	if resp, body := r.get(resp.Header.Get("Location")); resp.StatusCode != http.StatusOK || !strings.Contains(body, "You signed in with a recovery code") {
		t.Fatalf("signed in with a recovery code: %d, no word of it\n%.600s", resp.StatusCode, body)
	}
	again := f.client()
	if resp, _ := signInWithCode(t, again, f.managerA.Email, codes[0][1]); resp.StatusCode != http.StatusUnauthorized || signedIn(again) {
		t.Fatalf("the same recovery code again: %d", resp.StatusCode)
	}

	// The journal has each step, never the secret or a code.
	entries, err := f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Action]++
		if strings.Contains(e.Detail, secret) || strings.Contains(e.Detail, codes[0][1]) {
			t.Errorf("%s holds a secret: %s", e.Action, e.Detail)
		}
	}
	for action, n := range map[string]int{"user.2fa_enrolled": 1, "user.2fa_used": 1, "user.2fa_recovery": 1, "user.2fa_failed": 3} {
		if seen[action] != n {
			t.Errorf("journal: %d %s, want %d (%v)", seen[action], action, n, seen)
		}
	}
}

// decodeQR reads a base64 PNG's QR code with zbarimg; "" when the tool is
// missing (and DOORLEDGER_REQUIRE_TOOLS is not set).
func decodeQR(t *testing.T, b64 string) string {
	t.Helper()
	if _, err := exec.LookPath("zbarimg"); err != nil {
		if os.Getenv("DOORLEDGER_REQUIRE_TOOLS") != "" {
			t.Fatal("zbarimg is required")
		}
		t.Log("zbarimg missing: the QR code is not read back")
		return ""
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("zbarimg", "-q", path).Output() // stdout only: it prints a harmless D-Bus warning on stderr
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "QR-Code:"))
}

// Once an admin requires a second factor of managers, a manager without
// one sets it up at sign-in before reaching any page; boards sign in as before.
func TestSecondFactorRequiredAtSignIn(t *testing.T) {
	f := newFixture(t)
	now := f.clock()
	a := f.client()
	a.login(f.admin.Email)
	if resp, body := a.post("/second-factor", url.Values{"role": {"board"}}, ""); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "field-error") {
		t.Fatalf("requiring it of boards: %d\n%.400s", resp.StatusCode, body)
	}
	if resp, _ := a.post("/second-factor", url.Values{"role": {"manager"}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("requiring it of managers: %d", resp.StatusCode)
	}

	m := f.client()
	resp, _ := m.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}, "next": {"/buildings"}}, "")
	if resp.Header.Get("Location") != "/login/enrol" || signedIn(m) {
		t.Fatalf("a manager without one: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := m.get("/login/enrol"); !strings.Contains(body, `action="/login/enrol/start"`) {
		t.Fatalf("the enrolment's first page:\n%.600s", body)
	}
	_, body := m.post("/login/enrol/start", nil, "")
	sm := secretRe.FindStringSubmatch(body)
	if sm == nil || !strings.Contains(body, "Your role needs a second factor") {
		t.Fatalf("the setup page:\n%.600s", body)
	}
	secret := strings.ReplaceAll(sm[1], " ", "")
	// Reloaded, the page shows the same key.
	if _, body := m.get("/login/enrol"); !strings.Contains(body, sm[0]) {
		t.Fatalf("the setup page again: a different key\n%.600s", body)
	}
	resp, body = m.post("/login/enrol", url.Values{"code": {"999999"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="code-error"`) || signedIn(m) {
		t.Fatalf("a wrong code: %d\n%.600s", resp.StatusCode, body)
	}
	resp, body = m.post("/login/enrol", url.Values{"code": {totpCode(t, secret, *now)}}, "")
	if resp.StatusCode != http.StatusOK || len(recoveryRe.FindAllString(body, -1)) != doorledger.RecoveryCodeCount || !strings.Contains(body, `href="/buildings"`) || !signedIn(m) {
		t.Fatalf("confirmed: %d, signed in %v\n%.600s", resp.StatusCode, signedIn(m), body)
	}
	// Boards are not asked.
	b := f.client()
	b.login(f.boardA.Email)

	// An admin resets the manager's second factor: the journal says so, and
	// the next sign-in sets one up again.
	if resp, _ := a.post(fmt.Sprintf("/users/%d/second-factor/reset", f.managerA.ID), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: %d", resp.StatusCode)
	}
	if _, body := a.get(fmt.Sprintf("/users/%d", f.managerA.ID)); !strings.Contains(body, `<p id="user-factor-summary">None.</p>`) {
		t.Fatalf("the user page after the reset:\n%.2000s", body)
	}
	again := f.client()
	if resp, _ := again.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}}, ""); resp.Header.Get("Location") != "/login/enrol" {
		t.Fatalf("after the reset: %q, want the enrolment", resp.Header.Get("Location"))
	}
	entries, err := f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var reset bool
	for _, e := range entries {
		reset = reset || (e.Action == "user.2fa_reset" && e.ObjectID == f.managerA.ID && e.ActorID == f.admin.ID)
	}
	if !reset {
		t.Fatal("the reset is not journaled")
	}
}

// Changing a roster asks for the second factor again once the last is
// older than 15 minutes: the page keeps the form's input, a wrong code is
// refused beside its field, and the right one carries the change through.
// Revoking stays one click.
func TestStepUp(t *testing.T) {
	f := newFixture(t)
	now, _, secret := f.withApp(t, f.managerA.Email)
	c := f.client()
	if resp, _ := signInWithCode(t, c, f.managerA.Email, totpCode(t, secret, *now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	signers := fmt.Sprintf("/buildings/%d/signers", f.A.ID)
	add := func(name string) url.Values {
		return url.Values{"signer_name": {name}, "signer_title": {"Owner"}, "signer_email": {strings.ToLower(name) + "@example.com"}}
	}
	// Within 15 minutes of the code: no question.
	*now = now.Add(14 * time.Minute)
	if resp, body := c.post(signers, add("Ada"), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("within 15 minutes: %d\n%.400s", resp.StatusCode, body)
	}
	*now = now.Add(2 * time.Minute)
	resp, body := c.post(signers, add("Bea"), "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Confirm it is you") ||
		!strings.Contains(body, `name="signer_name" value="Bea"`) || !strings.Contains(body, `action="`+signers+`"`) {
		t.Fatalf("after 16 minutes: %d\n%.1200s", resp.StatusCode, body)
	}
	if roster(t, f) != "Ada" {
		t.Fatalf("the roster changed before the code: %s", roster(t, f))
	}
	form := add("Bea")
	form.Set("_second_factor", "000000")
	resp, body = c.post(signers, form, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="_second_factor-error"`) || !strings.Contains(body, `name="signer_name" value="Bea"`) {
		t.Fatalf("a wrong code: %d\n%.1200s", resp.StatusCode, body)
	}
	form.Set("_second_factor", totpCode(t, secret, *now))
	if resp, body := c.post(signers, form, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right code: %d\n%.600s", resp.StatusCode, body)
	}
	if got := roster(t, f); got != "Ada, Bea" {
		t.Fatalf("roster %s, want Ada, Bea", got)
	}
	// The code counts for the next 15 minutes too.
	*now = now.Add(10 * time.Minute)
	if resp, _ := c.post(signers, add("Cy"), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("10 minutes after the code: %d", resp.StatusCode)
	}

	// An hour later: revoking is one click; enabling asks, and an htmx
	// post is told to show the page in the whole window.
	*now = now.Add(time.Hour)
	cons, _ := f.signedConsent(t)
	device := fmt.Sprintf("/devices/%d", cons.DeviceID)
	if resp, body := c.post(device+"/revoke", nil, ""); resp.StatusCode >= 400 || strings.Contains(body, "Confirm it is you") {
		t.Fatalf("revoke: %d, asked for the code\n%.400s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+device+"/enable", strings.NewReader(url.Values{"_csrf": {c.csrf()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	resp, body = c.do(req)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("HX-Retarget") != "body" || !strings.Contains(body, "Enabling a device needs your second factor") {
		t.Fatalf("enable by htmx: %d %q\n%.600s", resp.StatusCode, resp.Header.Get("HX-Retarget"), body)
	}
	for _, path := range []string{device + "/credential", fmt.Sprintf("/buildings/%d/grants", f.A.ID)} {
		a := c
		if path != device+"/credential" {
			a = f.client()
			a.login(f.admin.Email) // admins without a second factor are not asked
			if resp, body := a.post(path, url.Values{}, ""); strings.Contains(body, "Confirm it is you") {
				t.Fatalf("%s: an admin without a second factor asked for it (%d)", path, resp.StatusCode)
			}
			continue
		}
		if resp, body := a.post(path, nil, ""); !strings.Contains(body, "Issuing a device secret needs your second factor") {
			t.Fatalf("%s: %d, not asked\n%.400s", path, resp.StatusCode, body)
		}
	}
}

// roster lists building A's signers' names.
func roster(t *testing.T, f *fixture) string {
	t.Helper()
	b, err := f.buildings.FindBuildingByID(sys(), f.A.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range b.Signers {
		if s.Name != "Zoë Nuñez" {
			names = append(names, s.Name)
		}
	}
	return strings.Join(names, ", ")
}

// A manager removes their own authenticator app: asked for the second
// factor again when the last was more than 15 minutes ago, refused with a
// clear message while their role requires a second factor and it is their
// last, never without the form's CSRF token; journaled.
func TestRemoveOwnSecondFactor(t *testing.T) {
	f := newFixture(t)
	now, c, secret := f.withApp(t, f.managerA.Email)
	a := f.client()
	a.login(f.admin.Email)
	if resp, _ := a.post("/second-factor", url.Values{"role": {"manager"}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("requiring it of managers: %d", resp.StatusCode)
	}
	const remove = "/account/second-factor/totp/remove"
	hasApp := func() bool {
		t.Helper()
		sf, err := f.factors.SecondFactors(sys(), f.managerA.ID)
		if err != nil {
			t.Fatal(err)
		}
		return sf.TOTP
	}

	// Required, and the last: refused, and said why.
	resp, body := c.post(remove, nil, "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `id="factor-refused"`) || !strings.Contains(body, "Your role requires a second factor") || !hasApp() {
		t.Fatalf("the last required factor removed: %d, app kept %v\n%.1200s", resp.StatusCode, hasApp(), body)
	}
	if resp, _ := a.post("/second-factor", url.Values{}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("requiring none: %d", resp.StatusCode)
	}
	// Without the CSRF token: refused.
	if resp, _ := c.post(remove, nil, "-"); resp.StatusCode != http.StatusForbidden || !hasApp() {
		t.Fatalf("without the token: %d, app kept %v", resp.StatusCode, hasApp())
	}
	// Sixteen minutes after the code: asked again, a wrong code refused.
	*now = now.Add(16 * time.Minute)
	resp, body = c.post(remove, nil, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Removing your authenticator app needs your second factor") || !hasApp() {
		t.Fatalf("16 minutes on: %d, app kept %v\n%.800s", resp.StatusCode, hasApp(), body)
	}
	if resp, _ := c.post(remove, url.Values{"_second_factor": {"000000"}}, ""); resp.StatusCode != http.StatusUnauthorized || !hasApp() {
		t.Fatalf("a wrong code: %d, app kept %v", resp.StatusCode, hasApp())
	}
	resp, _ = c.post(remove, url.Values{"_second_factor": {totpCode(t, secret, *now)}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/second-factor" || hasApp() {
		t.Fatalf("the right code: %d %q, app kept %v", resp.StatusCode, resp.Header.Get("Location"), hasApp())
	}
	if _, body := c.get("/account/second-factor"); !strings.Contains(body, "Authenticator app removed.") || !strings.Contains(body, `id="totp-start"`) {
		t.Fatalf("the account page after the removal:\n%.1200s", body)
	}
	// Signing in again takes the password alone.
	b := f.client()
	b.login(f.managerA.Email)
	entries, err := f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var removed int
	for _, e := range entries {
		if e.Action == "user.2fa_removed" && e.ActorID == f.managerA.ID && strings.Contains(e.Detail, `"totp"`) {
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("journal: %d removals of the app, want 1", removed)
	}
}
