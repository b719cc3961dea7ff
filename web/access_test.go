package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/witness"
)

// Outcomes of a request in the access matrix.
const (
	ok    = "ok"    // served (2xx, a redirect elsewhere than sign-in, or a form re-rendered with errors)
	login = "login" // redirected to sign in
	nf    = "404"   // not found: the object, or the page, does not exist for this user
	// unsigned: a JSON 401 from the machine API. Its requests carry an HMAC
	// signature, never a session: a signed-in user without one is refused too.
	unsigned = "401"
)

// roles are the callers of the matrix, each against building A's objects.
var roles = []string{"anonymous", "admin", "manager A", "manager B", "board A", "installer A"}

// accessRow is one route and what each role gets from it.
type accessRow struct {
	method, path string
	want         [6]string // in the order of roles
}

// matrix has one row per route. A route added without a row fails
// TestAccessMatrixCoversEveryRoute.
var matrix = []accessRow{
	{"GET", "/healthz", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/readyz", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/static*", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/login", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/login", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/logout", [6]string{ok, ok, ok, ok, ok, ok}},
	// The second factor at sign-in: only for the browser that just proved
	// a password (none here), so everyone is sent back to the sign-in form.
	{"GET", "/login/second-factor", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/login/second-factor", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/login/enrol", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/login/enrol/start", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/login/enrol", [6]string{ok, ok, ok, ok, ok, ok}},
	// Passkeys sign in anyone who has one (none here: refused, the form again).
	{"POST", "/login/passkey/options", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/login/passkey", [6]string{ok, ok, ok, ok, ok, ok}},
	// Single sign-on (the matrix's portal has a provider): anyone may start
	// it; the callback without a flow shows the sign-in page with why.
	{"POST", "/login/sso", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/login/sso/callback", [6]string{ok, ok, ok, ok, ok, ok}},
	// The domains allowed to sign up by SSO are the admins'.
	{"GET", "/sso", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/sso/domains", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/sso/domains/:domain/remove", [6]string{login, ok, nf, nf, nf, nf}},
	// The first screen: the attention list for managers, admins
	// and boards (manager B: of their own buildings); installers are sent to
	// their buildings, and their stream is not found.
	{"GET", "/", [6]string{login, ok, ok, ok, ok, ok}},
	{"GET", "/attention/events", [6]string{login, ok, ok, ok, ok, nf}},
	{"POST", "/logout/everywhere", [6]string{login, ok, ok, ok, ok, ok}},
	{"GET", "/account", [6]string{login, ok, ok, ok, ok, ok}},
	{"POST", "/account/password", [6]string{login, ok, ok, ok, ok, ok}},
	// A second factor is for managers and admins.
	{"GET", "/account/second-factor", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/second-factor/totp", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/second-factor/totp/confirm", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/second-factor/recovery-codes", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/second-factor/totp/remove", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/passkeys/options", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/account/passkeys", [6]string{login, ok, ok, ok, nf, nf}},
	// Manager A's passkey: theirs alone to remove.
	{"POST", "/account/passkeys/:passkey/remove", [6]string{login, nf, ok, nf, nf, nf}},
	{"POST", "/users/:user/second-factor/reset", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/second-factor", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/second-factor", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/buildings", [6]string{login, ok, ok, ok, ok, ok}},
	{"GET", "/buildings/new", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/buildings", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/buildings/:id", [6]string{login, ok, ok, nf, ok, ok}},
	{"GET", "/buildings/:id/edit", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/signers", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/signers/:signer/remove", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/grants", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/buildings/:id/grants/:user/remove", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/buildings/:id/audit", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/users", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/users/new", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/users", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/users/:user", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/users/:user", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/users/:user/password", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/audit", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/audit/verify", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/witnesses", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/witnesses", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/witnesses/policy", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/witnesses/:witness/remove", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/outbox", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/outbox/:mail/retry", [6]string{login, ok, nf, nf, nf, nf}},
	{"GET", "/webhooks", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/webhooks", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/webhooks/:subscription/disable", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/webhooks/deliveries/:delivery/replay", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/buildings/:id/invitations", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/invitations/:invitation/withdraw", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/buildings/:id/consents/new", [6]string{login, nf, nf, nf, nf, ok}},
	{"POST", "/buildings/:id/consents", [6]string{login, nf, nf, nf, nf, ok}},
	{"GET", "/submissions", [6]string{login, nf, nf, nf, nf, ok}},
	{"GET", "/consents/:consent", [6]string{login, ok, ok, nf, ok, ok}},
	{"GET", "/consents/:consent/photos/:photo", [6]string{login, ok, ok, nf, ok, ok}},
	{"GET", "/consents/:consent/signature.png", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/consents/:consent/certificate.pdf", [6]string{login, ok, ok, nf, ok, nf}},
	{"POST", "/consents/:consent/renew", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/consents/:consent/resend", [6]string{login, ok, ok, nf, nf, ok}},
	{"GET", "/buildings/:id/policy", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/policy", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/consents/:consent/in-person", [6]string{login, nf, nf, nf, nf, ok}},
	{"GET", "/consents/:consent/paper/:file", [6]string{login, ok, ok, nf, ok, ok}},
	{"POST", "/consents/:consent/paper", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/consents/:consent/code", [6]string{login, nf, nf, nf, nf, ok}},
	{"POST", "/consents/:consent/in-person", [6]string{login, nf, nf, nf, nf, ok}},
	{"POST", "/buildings/:id/devices/found", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/devices/:device", [6]string{login, ok, ok, nf, ok, nf}},
	{"POST", "/devices/:device/revoke", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/devices/:device/enable", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/devices/:device/credential", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/devices", [6]string{login, ok, ok, ok, nf, nf}},
	{"POST", "/devices/disable", [6]string{login, ok, ok, ok, nf, nf}},
	{"GET", "/devices/events", [6]string{login, ok, ok, ok, nf, nf}},
	{"GET", "/buildings/:id/lockdown", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/lockdown", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/buildings/:id/lockdown/events", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/devices/:device/events", [6]string{login, ok, ok, nf, ok, nf}},
	// Unlock history: readers read, managers set and import.
	{"GET", "/buildings/:id/unlocks", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/buildings/:id/unlocks/events", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/buildings/:id/unlocks.csv", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/buildings/:id/unlock-settings", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/unlock-settings", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/buildings/:id/unlocks/import", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/unlocks/import/preview", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/unlocks/import", [6]string{login, ok, ok, nf, nf, nf}},
	// Managers acknowledge anomalies (the board reads what was done).
	{"POST", "/buildings/:id/anomalies/:event/ack", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/anomalies/ack", [6]string{login, ok, ok, nf, nf, nf}},
	// Audit reports: the building's readers request, follow and
	// download, take the monthly report and verify a file.
	{"GET", "/buildings/:id/reports", [6]string{login, ok, ok, nf, ok, nf}},
	{"POST", "/buildings/:id/reports", [6]string{login, ok, ok, nf, ok, nf}},
	{"POST", "/buildings/:id/reports/subscription", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/reports/verify", [6]string{login, ok, ok, ok, ok, nf}},
	{"POST", "/reports/verify", [6]string{login, ok, ok, ok, ok, nf}},
	{"GET", "/reports/:report", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/reports/:report/status", [6]string{login, ok, ok, nf, ok, nf}},
	{"GET", "/reports/:report/download", [6]string{login, ok, ok, nf, ok, nf}},
	// Vendor integrations (admins) and their machine API (signed requests only).
	{"GET", "/vendors", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/vendors", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/vendors/:vendor/rotate", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/vendors/:vendor/previous-key/remove", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/vendors/:vendor/retire", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/devices/:device/vendor", [6]string{login, ok, nf, nf, nf, nf}},
	{"POST", "/api/vendors/:vendor/events", [6]string{unsigned, unsigned, unsigned, unsigned, unsigned, unsigned}},
	{"POST", "/api/vendors/:vendor/state", [6]string{unsigned, unsigned, unsigned, unsigned, unsigned, unsigned}},
	// Reached by one-time links: the token is the credential, whoever holds it.
	{"GET", "/sign/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/sign/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/sign/:token/decline", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/sign/:token/paper/:file", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/sign/:token/paper/dispute", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/consent/withdraw/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/consent/withdraw/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/consent/dispute/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/consent/dispute/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/consent/links/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/invite/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/invite/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	// Residents: the public notice by its slug and the links
	// mailed to subscribers, for anyone; the notice's settings, poster and
	// residents' reports for the building's managers.
	{"GET", "/notice/:slug", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/notice/:slug/report", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/notice/:slug/report", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/notice/:slug/subscribe", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/residents/confirm/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/residents/confirm/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/residents/unsubscribe/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/residents/unsubscribe/:token", [6]string{ok, ok, ok, ok, ok, ok}},
	{"POST", "/buildings/:id/notice/rotate", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/notice/contact", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/buildings/:id/notice/poster.pdf", [6]string{login, ok, ok, nf, nf, nf}},
	// The privacy profile: the tenant privacy notice is public
	// (building A is put under the profile for these rows), the building's
	// privacy page is its managers' and board's, its forms its managers'.
	{"GET", "/notice/:slug/privacy", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/notice/:slug/privacy.pdf", [6]string{ok, ok, ok, ok, ok, ok}},
	{"GET", "/buildings/:id/privacy", [6]string{login, ok, ok, nf, ok, nf}},
	{"POST", "/buildings/:id/privacy/profile", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/privacy/disclosures", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/privacy/disclosures/:disclosure", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/privacy/devices/:device", [6]string{login, ok, ok, nf, nf, nf}},
	{"GET", "/buildings/:id/resident-reports/:report/photo", [6]string{login, ok, ok, nf, nf, nf}},
	{"POST", "/buildings/:id/resident-reports/:report/resolve", [6]string{login, ok, ok, nf, nf, nf}},
}

func TestAccessMatrixCoversEveryRoute(t *testing.T) {
	f := newFixture(t)
	have := map[string]bool{}
	for _, r := range matrix {
		have[r.method+" "+r.path] = true
	}
	var missing []string
	for _, r := range f.server.Echo().Routes() {
		key := r.Method + " " + r.Path
		if !have[key] {
			missing = append(missing, key)
		}
		delete(have, key)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes without a row in the access matrix:\n  %s", strings.Join(missing, "\n  "))
	}
	for k := range have {
		t.Errorf("matrix row for a route that does not exist: %s", k)
	}
}

// concrete fills a route's parameters with building A's objects, made fresh
// for each request so that one role's change cannot decide another's outcome.
func (f *fixture) concrete(t *testing.T, path string) string {
	t.Helper()
	ctx := sys()
	r := strings.NewReplacer(":id", fmt.Sprint(f.A.ID), "/static*", "/static/app.css")
	if strings.Contains(path, ":signer") {
		s := must(f.buildings.AddSigner(ctx, f.A.ID, doorledger.SignerInput{
			Name: "Fresh Signer", Title: "Owner", Email: fmt.Sprintf("s%d@example.com", len(path)+int(nextID()))}))(t)
		path = strings.Replace(path, ":signer", fmt.Sprint(s.ID), 1)
	}
	if strings.Contains(path, "/grants/:user") {
		u := must(f.users.CreateUser(ctx, doorledger.NewUser{Email: fmt.Sprintf("g%d@example.com", nextID()), Name: "G", Role: doorledger.RoleBoard, Password: testPassword}))(t)
		if err := f.buildings.GrantAccess(ctx, f.A.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		path = strings.Replace(path, ":user", fmt.Sprint(u.ID), 1)
	}
	path = strings.Replace(path, ":user", fmt.Sprint(f.managerA.ID), 1)
	if strings.Contains(path, ":domain") {
		d := must(sqlite.NewSSOService(f.db).AllowSSODomain(ctx, doorledger.SSODomain{Domain: fmt.Sprintf("d%d.example.com", nextID()), Role: doorledger.RoleBoard}))(t)
		path = strings.Replace(path, ":domain", d.Domain, 1)
	}
	if strings.Contains(path, ":passkey") {
		k := must(f.factors.AddPasskey(doorledger.NewContextWithUser(context.Background(), f.managerA), "key",
			[]byte(fmt.Sprintf("cred-%d", nextID())), []byte("{}")))(t)
		path = strings.Replace(path, ":passkey", fmt.Sprint(k.ID), 1)
		// Gone after the request: manager A signs in with a password alone in every other row.
		t.Cleanup(func() { _ = f.factors.ResetSecondFactor(sys(), f.managerA.ID) })
	}
	if strings.Contains(path, "/privacy") {
		if err := f.privacy.SetPrivacyProfile(doorledger.NewContextWithUser(context.Background(), f.admin), f.A.ID, doorledger.PrivacyProfileTDPA); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(path, ":disclosure") {
		d := must(f.privacy.SaveVendorDisclosure(doorledger.NewContextWithUser(context.Background(), f.admin), f.A.ID, 0, doorledger.VendorDisclosureInput{
			LegalName: "Acme LLC", DataCollected: "door openings", Purpose: "deliveries", Retention: "1 year", PolicyURL: "https://acme.example/privacy"}))(t)
		path = strings.Replace(path, ":disclosure", fmt.Sprint(d.ID), 1)
	}
	switch {
	case strings.Contains(path, ":subscription"):
		path = strings.Replace(path, ":subscription", fmt.Sprint(f.subscribe(t).ID), 1)
	case strings.Contains(path, ":delivery"):
		f.subscribe(t)
		must(sqlite.NewUnlockService(f.db).RecordUnlocksResult(ctx, []doorledger.UnlockEvent{{BuildingID: f.A.ID, DeviceRef: "GHOST-9",
			EventID: fmt.Sprintf("matrix-%d", nextID()), OccurredAt: time.Now(), Method: "keypad", Result: doorledger.UnlockGranted}}))(t)
		var id int64
		if err := f.db.Reader().QueryRow(`SELECT MAX(id) FROM webhook_deliveries`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		path = strings.Replace(path, ":delivery", fmt.Sprint(id), 1)
	case strings.Contains(path, ":slug"):
		path = strings.Replace(path, ":slug", f.noticeSlug(t), 1)
	case strings.HasPrefix(path, "/residents/confirm/"):
		path = strings.Replace(path, ":token", f.residentToken(t, "/residents/confirm/"), 1)
	case strings.HasPrefix(path, "/residents/unsubscribe/"):
		path = strings.Replace(path, ":token", f.residentToken(t, "/residents/unsubscribe/"), 1)
	case strings.Contains(path, ":report") && strings.Contains(path, "/resident-reports/"):
		r := must(f.residents.ReportDevice(context.Background(), f.noticeSlug(t), doorledger.ResidentReportInput{
			Location: "a grey box in the intercom", Photo: &doorledger.Photo{ContentType: "image/png", Data: signaturePNG(t)}}))(t)
		path = strings.Replace(path, ":report", fmt.Sprint(r.ID), 1)
	case strings.Contains(path, "/paper"): // a request with a paper form, by its id or its signing link
		c := f.paperConsent(t)
		path = strings.NewReplacer(":consent", fmt.Sprint(c.ID), ":file", fmt.Sprint(c.Paper.Files[0].ID), ":token", f.lastToken(t, "/sign/")).Replace(path)
	case strings.HasPrefix(path, "/consents/:consent/in-person"), strings.HasPrefix(path, "/consents/:consent/code"):
		c := f.requestConsent(t, true)
		path = strings.Replace(path, ":consent", fmt.Sprint(c.ID), 1)
	case strings.Contains(path, ":consent"):
		c, _ := f.signedConsent(t)
		path = strings.Replace(path, ":consent", fmt.Sprint(c.ID), 1)
		photos, err := f.consents.ConsentPhotos(doorledger.NewContextWithUser(context.Background(), f.admin), c.ID)
		if err != nil || len(photos) == 0 {
			t.Fatalf("photos: %v", err)
		}
		path = strings.Replace(path, ":photo", fmt.Sprint(photos[0].ID), 1)
	case strings.HasPrefix(path, "/sign/:token"):
		f.requestConsent(t, false)
		path = strings.Replace(path, ":token", f.lastToken(t, "/sign/"), 1)
	case strings.HasPrefix(path, "/consent/links/"): // any link mailed for the consent: here the used signing link
		_, token := f.signedConsent(t)
		path = strings.Replace(path, ":token", token, 1)
	case strings.HasPrefix(path, "/consent/withdraw/"), strings.HasPrefix(path, "/consent/dispute/"):
		f.signedConsent(t)
		path = strings.Replace(path, ":token", f.lastToken(t, strings.TrimSuffix(path, ":token")), 1)
	case strings.HasPrefix(path, "/invite/"):
		f.invite(t)
		path = strings.Replace(path, ":token", f.lastToken(t, "/invite/"), 1)
	case strings.Contains(path, ":mail"):
		f.invite(t)
		var id int64
		if err := f.db.Reader().QueryRow(`SELECT MAX(id) FROM outbox`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		path = strings.Replace(path, ":mail", fmt.Sprint(id), 1)
	case strings.Contains(path, ":device"):
		c, _ := f.signedConsent(t)
		path = strings.Replace(path, ":device", fmt.Sprint(c.DeviceID), 1)
	case strings.Contains(path, ":witness"):
		w, err := witness.Open(t.TempDir(), "access-witness", nil)
		if err != nil {
			t.Fatal(err)
		}
		wi := must(f.witnesses.AddWitness(ctx, doorledger.WitnessInput{Name: fmt.Sprintf("W%d", nextID()), URL: "https://w.example", VerifierKey: w.VerifierKey()}))(t)
		path = strings.Replace(path, ":witness", fmt.Sprint(wi.ID), 1)
	case strings.Contains(path, ":vendor"):
		v, _, err := f.vendorService(t).CreateVendorIntegration(ctx, doorledger.VendorIntegrationInput{
			Name: fmt.Sprintf("Vendor %d", nextID()), WebhookURL: "https://vendor.example/hook", BuildingIDs: []int64{f.A.ID}})
		if err != nil {
			t.Fatal(err)
		}
		path = strings.Replace(path, ":vendor", fmt.Sprint(v.ID), 1)
	case strings.Contains(path, ":report"):
		rec := must(f.reports.RequestReport(doorledger.NewContextWithUser(context.Background(), f.managerA), doorledger.ReportRequest{
			BuildingID: f.A.ID, Format: doorledger.ReportCSV, From: "2026-01-01", To: "2026-01-31"}))(t)
		path = strings.Replace(path, ":report", rec.ID, 1)
	case strings.Contains(path, ":event"):
		// An unlock in building A from a device it does not know: an open anomaly.
		res := must(sqlite.NewUnlockService(f.db).RecordUnlocksResult(ctx, []doorledger.UnlockEvent{{BuildingID: f.A.ID, DeviceRef: "GHOST-9",
			EventID: fmt.Sprintf("matrix-%d", nextID()), OccurredAt: time.Now(), Method: "keypad", Result: doorledger.UnlockGranted}}))(t)
		if res.Anomalous != 1 {
			t.Fatalf("the matrix's event is not flagged: %+v", res)
		}
		var id int64
		if err := f.db.Reader().QueryRow(`SELECT MAX(id) FROM unlock_events`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		path = strings.Replace(path, ":event", fmt.Sprint(id), 1)
	case strings.Contains(path, ":invitation"):
		inv := f.invite(t)
		path = strings.Replace(path, ":invitation", fmt.Sprint(inv.ID), 1)
	}
	return r.Replace(path)
}

var idSeq int64

func nextID() int64 { idSeq++; return idSeq }

func outcome(resp *http.Response) string {
	loc := resp.Header.Get("Location")
	switch {
	case resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
		return unsigned
	case resp.StatusCode == http.StatusNotFound:
		return nf
	case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/login?"):
		return login
	case resp.StatusCode >= 500:
		return fmt.Sprintf("server error %d", resp.StatusCode)
	case resp.StatusCode == http.StatusForbidden:
		return "403"
	}
	return ok
}

func TestAccessMatrix(t *testing.T) {
	f := newFixture(t, withSSO(t)).withVendors(t)
	emails := []string{"", f.admin.Email, f.managerA.Email, f.managerB.Email, f.boardA.Email, f.instA.Email}
	for _, row := range matrix {
		for i, role := range roles {
			t.Run(fmt.Sprintf("%s %s as %s", row.method, row.path, role), func(t *testing.T) {
				c := f.client()
				c.tb = t
				if emails[i] != "" {
					c.login(emails[i])
				}
				path := f.concrete(t, row.path)
				var resp *http.Response
				var body string
				if row.method == http.MethodGet && strings.HasSuffix(row.path, "/events") {
					resp = c.stream(path)
				} else if row.method == http.MethodGet {
					resp, body = c.get(path)
				} else {
					resp, body = c.post(path, url.Values{}, "")
				}
				if got := outcome(resp); got != row.want[i] {
					t.Errorf("%s %s as %s: got %s (status %d, location %q), want %s\n%.400s",
						row.method, path, role, got, resp.StatusCode, resp.Header.Get("Location"), row.want[i], body)
				}
			})
		}
	}
}

// Another building's objects are 404 for everything under them, whatever the id.
func TestOtherBuildingIsNotFound(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.managerA.Email)
	for _, path := range []string{
		fmt.Sprintf("/buildings/%d", f.B.ID),
		fmt.Sprintf("/buildings/%d/edit", f.B.ID),
		fmt.Sprintf("/buildings/%d/audit", f.B.ID),
		fmt.Sprintf("/buildings/%d/reports", f.B.ID),
		"/buildings/999999",
	} {
		if resp, _ := c.get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := c.post(fmt.Sprintf("/buildings/%d/signers", f.B.ID), url.Values{"signer_name": {"X"}, "signer_title": {"Y"}, "signer_email": {"x@example.com"}}, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST signer to B: %d, want 404", resp.StatusCode)
	}
	b, err := f.buildings.FindBuildingByID(sys(), f.B.ID)
	if err != nil || len(b.Signers) != 0 {
		t.Fatalf("building B's roster changed: %v %v", b, err)
	}
}
