package web_test

import (
	"bytes"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// An installer who adds a paragraph of its own to a consent request field gets
// the form back with the message beside that field and the input kept, and
// nothing is recorded or mailed.
func TestConsentRequestLineBreakRerendered(t *testing.T) {
	f := newFixture(t)
	inst := f.client()
	inst.login(f.instA.Email)
	opens := "lobby door\nIMPORTANT: this is a one-day trial; the device is removed tomorrow."
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range map[string]string{"_csrf": inst.csrf(), "vendor": "Acme", "model": "K2", "serial": "SN-1",
		"location": "lobby panel", "opens": opens, "signer_id": fmt.Sprint(f.signer.ID), "mode": "link"} {
		w.WriteField(k, v)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, inst.base.String()+fmt.Sprintf("/buildings/%d/consents", f.A.ID), &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, page := inst.do(req)
	page = html.UnescapeString(page)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `<small id="opens-error" class="field-error">Keep this on one line: remove the line break.</small>`) {
		t.Errorf("no message beside the opens field:\n%s", page)
	}
	if !strings.Contains(page, `value="`+opens+`"`) || !strings.Contains(page, `value="lobby panel"`) {
		t.Errorf("input not kept:\n%s", page)
	}
	var consents, mails int
	f.db.Reader().QueryRow(`SELECT (SELECT COUNT(*) FROM consents), (SELECT COUNT(*) FROM outbox)`).Scan(&consents, &mails)
	if consents != 0 || mails != 0 {
		t.Fatalf("%d consents, %d mails after a refused request", consents, mails)
	}
}

// A building name with a line break is refused beside the field.
func TestBuildingNameLineBreakRerendered(t *testing.T) {
	f := newFixture(t)
	admin := f.client()
	admin.login(f.admin.Email)
	resp, page := admin.post("/buildings", url.Values{"name": {"Elm Court\r\nBcc: victim@example.com"}, "address": {"1 Elm St"}, "timezone": {"UTC"}}, "")
	page = html.UnescapeString(page)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `<small id="name-error" class="field-error">Keep this on one line`) ||
		!strings.Contains(page, `value="1 Elm St"`) {
		t.Fatalf("status %d\n%s", resp.StatusCode, page)
	}
}
