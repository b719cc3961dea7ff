package main

import (
	"bytes"
	"encoding/base64"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func signatureDataURL(tb testing.TB) string {
	img := image.NewNRGBA(image.Rect(0, 0, 300, 100))
	for x := 20; x < 280; x++ {
		for w := 0; w < 3; w++ {
			img.Set(x, 50+(x%40)-20+w, color.NRGBA{20, 20, 120, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// PostMultipart submits a multipart form with files (name → file name → bytes).
func (c *Client) PostMultipart(from, path string, fields url.Values, files map[string]map[string][]byte) (int, string, string) {
	c.tb.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fields.Set("_csrf", c.CSRF(from))
	for k, vs := range fields {
		for _, v := range vs {
			w.WriteField(k, v)
		}
	}
	for field, byName := range files {
		for name, data := range byName {
			fw, _ := w.CreateFormFile(field, name)
			fw.Write(data)
		}
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// outboxLink reads the newest link with the prefix from the admin's outbox page.
func outboxLink(tb testing.TB, admin *Client, prefix string) string {
	tb.Helper()
	_, body := admin.Get("/outbox")
	m := regexp.MustCompile(`https?://[^/\s]+(` + regexp.QuoteMeta(prefix) + `[A-Za-z0-9_-]+)`).FindStringSubmatch(html.UnescapeString(body))
	if m == nil {
		tb.Fatalf("no %s link in the outbox", prefix)
	}
	return m[1]
}

func TestEndToEndConsent(t *testing.T) {
	p := MustStartPortal(t, "")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)

	// Admin: a building with a roster and a manager.
	_, loc, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Harbor View"}, "address": {"1 Harbor St"}, "timezone": {"America/New_York"}})
	building := loc
	admin.Post(building, building+"/signers", url.Values{"signer_name": {"Zoë Nuñez"}, "signer_title": {"Board president"}, "signer_email": {"zoe@example.com"}})
	admin.Post("/users/new", "/users", url.Values{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}})
	_, body := admin.Get("/users")
	mgrID := regexp.MustCompile(`href="/users/(\d+)">Mia Manager`).FindStringSubmatch(body)[1]
	admin.Post(building, building+"/grants", url.Values{"user_id": {mgrID}})

	// Manager invites an installer; the installer sets a password through the link.
	mgr := NewClient(t, p.URL)
	mgr.MustLogin("mia@example.com", "correct horse battery")
	if status, _, body := mgr.Post(building, building+"/invitations", url.Values{"invite_name": {"Łukasz Wróbel"}, "invite_company": {"FastKey"}, "invite_email": {"lukasz@fastkey.example"}}); status != http.StatusSeeOther {
		t.Fatalf("invite: %d\n%s", status, body)
	}
	invite := outboxLink(t, admin, "/invite/")
	inst := NewClient(t, p.URL)
	if status, _, body := inst.Post(invite, invite, url.Values{"password": {"short"}}); status != http.StatusUnprocessableEntity || !strings.Contains(body, "at least 12") {
		t.Fatalf("short password: %d", status)
	}
	if status, loc, body := inst.Post(invite, invite, url.Values{"password": {"installer passphrase"}}); status != http.StatusSeeOther || loc != "/buildings" {
		t.Fatalf("accept invitation: %d %q\n%s", status, loc, body)
	}
	if status, _ := NewClient(t, p.URL).Get(invite); status != http.StatusNotFound {
		t.Fatalf("reused invitation link: %d", status)
	}

	// The installer submits a request: bad input first, kept and explained.
	newReq := building + "/consents/new"
	_, body = inst.Get(newReq)
	signerID := regexp.MustCompile(`<option value="(\d+)"[^>]*>Zoë Nuñez`).FindStringSubmatch(body)[1]
	fields := url.Values{"vendor": {"Acme <b>Access</b>"}, "model": {"KeyBox 2"}, "serial": {"SN-42"}, "location": {""}, "opens": {"lobby door"}, "signer_id": {signerID}, "mode": {"link"}}
	status, _, body := inst.PostMultipart(newReq, building+"/consents", fields, map[string]map[string][]byte{"photos": {"panel.jpg": []byte("this is not a jpeg")}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "Enter where it is installed.") ||
		!strings.Contains(body, "must be a JPEG or PNG") || !strings.Contains(body, `value="SN-42"`) || !strings.Contains(body, "Acme &lt;b&gt;Access&lt;/b&gt;") {
		t.Fatalf("bad request: %d\n%s", status, body)
	}
	fields.Set("location", "main lobby intercom panel")
	photo, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(signatureDataURL(t), "data:image/png;base64,"))
	status, loc, body = inst.PostMultipart(newReq, building+"/consents", fields, map[string]map[string][]byte{"photos": {"panel.png": photo}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/consents/") {
		t.Fatalf("request: %d %q\n%s", status, loc, body)
	}
	consent := loc
	if _, body := inst.Get("/submissions"); !strings.Contains(body, "SN-42") || !strings.Contains(body, "Awaiting signature") {
		t.Fatal("submission not listed as awaiting")
	}

	// The signer opens the link from the outbox and signs.
	sign := outboxLink(t, admin, "/sign/")
	signer := NewClient(t, p.URL)
	status, body = signer.Get(sign)
	if status != http.StatusOK || !strings.Contains(body, "SN-42") || !strings.Contains(body, "How to withdraw") {
		t.Fatalf("signing page: %d", status)
	}
	terms := regexp.MustCompile(`name="terms_sha256" value="([0-9a-f]{64})"`).FindStringSubmatch(body)[1]
	status, _, body = signer.Post(sign, sign, url.Values{"terms_sha256": {terms}, "typed_name": {"Zoë Nuñez"}, "agree": {"1"}, "signature": {"data:image/png;base64,bm90IGEgcG5n"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "The signature must be a PNG image.") || !strings.Contains(body, `value="Zoë Nuñez"`) {
		t.Fatalf("bad signature: %d\n%s", status, body)
	}
	status, _, body = signer.Post(sign, sign, url.Values{"terms_sha256": {terms}, "typed_name": {"Zoë Nuñez"}, "agree": {"1"}, "signature": {signatureDataURL(t)}})
	if status != http.StatusOK || !strings.Contains(body, "consent signed") {
		t.Fatalf("sign: %d\n%s", status, body)
	}
	// Reopened, the link says what happened; it cannot sign again.
	if status, body := signer.Get(sign); status != http.StatusOK || !strings.Contains(body, "You signed this on") || strings.Contains(body, `id="sign-form"`) {
		t.Fatalf("reused signing link: %d\n%s", status, body)
	}

	// The manager sees it signed, with the evidence, and downloads the certificate.
	_, body = mgr.Get(consent)
	if !strings.Contains(body, "Signed") || !strings.Contains(body, terms) || !strings.Contains(body, "one-time link mailed") {
		t.Fatalf("consent page lacks the evidence:\n%s", body)
	}
	text := certificateText(t, mgr, consent)
	for _, want := range []string{"Zoë Nuñez", "SN-42", terms[:32]} {
		if !strings.Contains(strings.ReplaceAll(text, " ", ""), strings.ReplaceAll(want, " ", "")) {
			t.Errorf("certificate text lacks %q:\n%s", want, text)
		}
	}
}
