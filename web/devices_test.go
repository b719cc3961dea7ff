package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/db/sqlite"
)

// The htmx revoke answers with the buttons only: the page's state beside
// them belongs to its stream, which says "pending" once the command is
// committed.
func TestRevokeHTMXAnswersTheButtons(t *testing.T) {
	f := newFixture(t)
	c, _ := f.signedConsent(t)
	mgr := f.client()
	mgr.login(f.managerA.Email)
	path := fmt.Sprintf("/devices/%d", c.DeviceID)

	req, _ := http.NewRequest(http.MethodPost, mgr.base.String()+path+"/revoke", strings.NewReader(url.Values{"_csrf": {mgr.csrf()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	resp, body := mgr.do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("htmx revoke: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `id="device-actions"`) || !strings.Contains(body, `id="enable"`) {
		t.Errorf("htmx revoke answered without the enable button:\n%s", body)
	}
	for _, not := range []string{`id="revoke"`, `id="device-state"`, `<html`, `id="commands"`} {
		if strings.Contains(body, not) {
			t.Errorf("htmx revoke answered with %s:\n%s", not, body)
		}
	}
	// The device page shows the disable as pending (no device answers here).
	if _, page := mgr.get(path); !strings.Contains(page, `data-status="pending"`) || !strings.Contains(page, "version 2") {
		t.Errorf("device page after the revoke:\n%s", page)
	}
}

// TestCredentialPostRedirectGet: issuing a device secret answers 303 to the
// device page, which shows the secret once; a reload shows it no more and
// rotates nothing, and the secret shown authenticates the device.
func TestCredentialPostRedirectGet(t *testing.T) {
	f := newFixture(t)
	c, _ := f.signedConsent(t)
	mgr := f.client()
	mgr.login(f.managerA.Email)
	path := fmt.Sprintf("/devices/%d", c.DeviceID)
	rotations := func() int {
		var n int
		if err := f.db.Reader().QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE action = 'device.credential' AND object_id = ?`, c.DeviceID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	resp, body := mgr.post(path+"/credential", nil, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path {
		t.Fatalf("POST credential: %d %q, want 303 to %s\n%s", resp.StatusCode, resp.Header.Get("Location"), path, body)
	}
	if strings.Contains(body, "shown once") {
		t.Error("the redirect carries the secret")
	}
	resp, page := mgr.get(path)
	m := secretRE.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET after the POST: %d, no secret shown\n%s", resp.StatusCode, page)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the page with the secret is cacheable: Cache-Control %q", cc)
	}
	// Reloads show it no more, and rotate nothing.
	for i := 0; i < 2; i++ {
		if _, again := mgr.get(path); strings.Contains(again, m[1]) || secretRE.MatchString(again) {
			t.Fatalf("reload %d shows the secret again", i+1)
		}
	}
	if n := rotations(); n != 1 {
		t.Errorf("%d credentials issued, want 1", n)
	}
	if err := sqlite.NewDeviceService(f.db).AuthenticateDevice(sys(), c.DeviceID, m[1]); err != nil {
		t.Errorf("the secret shown does not authenticate the device: %v", err)
	}

	// Another account signing in on the same browser never sees a secret
	// the previous one left unseen.
	if resp, _ := mgr.post(path+"/credential", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second POST: %d", resp.StatusCode)
	}
	mgr.post("/logout", nil, "")
	admin := mgr // the same browser, the same cookie jar
	admin.login(f.admin.Email)
	if _, page := admin.get(path); secretRE.MatchString(page) {
		t.Error("another account saw the secret issued by the manager")
	}
}

var secretRE = regexp.MustCompile(`Device secret \(shown once\):</strong> <code class="hash">([A-Za-z0-9_-]+)</code>`)

// TestLockdownCountsAgree: the lockdown page says how many devices it
// disables and how many of them are enabled, with the same total in the
// sentence and on the button ("3 are enabled" beside "disable all 5" was
// read as a contradiction).
func TestLockdownCountsAgree(t *testing.T) {
	f := newFixture(t)
	f.signedConsent(t)
	c, _ := f.signedConsent(t)
	mgr := f.client()
	mgr.login(f.managerA.Email)
	dev := fmt.Sprintf("/devices/%d", c.DeviceID)
	if resp, body := mgr.post(dev+"/revoke", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, body)
	}
	_, body := mgr.get(fmt.Sprintf("/buildings/%d/lockdown", f.A.ID))
	text := regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(body, ""), " ")
	for _, want := range []string{"tells all 2 delivery devices in Building A", "1 of the 2 are enabled", "Yes, disable all 2 devices"} {
		if !strings.Contains(text, want) {
			t.Errorf("lockdown page lacks %q:\n%s", want, text)
		}
	}
}
