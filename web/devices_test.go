package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
