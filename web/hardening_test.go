package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Issue 11.7: after sign-in the portal goes only to a path of its own site,
// whatever next says. Browsers drop tabs and line breaks and read "\" as "/",
// so each hostile case below would otherwise leave for evil.example.
func TestLoginNextStaysOnSite(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ next, want string }{
		{"/devices", "/devices"},
		{"/buildings/3/unlocks?anomalies=open&before=2026-01-01T00:00:00Z", "/buildings/3/unlocks?anomalies=open&before=2026-01-01T00:00:00Z"},
		{"/reports/abc#top", "/reports/abc#top"},
		{"", "/buildings"},
		{"/\t/evil.example", "/buildings"},
		{"/\n/evil.example", "/buildings"},
		{"/\r\n/evil.example", "/buildings"},
		{"/\x00/evil.example", "/buildings"},
		{"/\u0085/evil.example", "/buildings"},
		{"/devices\t", "/buildings"},
		{"//evil.example", "/buildings"},
		{"///evil.example", "/buildings"},
		{"/\\evil.example", "/buildings"},
		{"/\\/evil.example", "/buildings"},
		{"/devices\\..\\..\\evil", "/buildings"},
		{"\\\\evil.example", "/buildings"},
		{"/%2F/evil.example", "/buildings"},
		{"https://evil.example/", "/buildings"},
		{"http:/evil.example", "/buildings"},
		{"javascript:alert(1)", "/buildings"},
		{" /devices", "/buildings"},
		{"evil.example", "/buildings"},
		{"/\xff/evil.example", "/buildings"},
	} {
		c := f.client()
		resp, body := c.post("/login", url.Values{"email": {f.boardA.Email}, "password": {testPassword}, "next": {tc.next}}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
			t.Errorf("next %q: %d to %q, want 303 to %q\n%.200s", tc.next, resp.StatusCode, resp.Header.Get("Location"), tc.want, body)
		}
	}
	// The form's hidden field carries the same answer: the sign-in page shows
	// /login?next=/%09/evil.example's target as the default page.
	c := f.client()
	_, body := c.get("/login?next=/%09/evil.example")
	if want := `name="next" value="/buildings"`; !strings.Contains(body, want) {
		t.Errorf("sign-in page for next=/%%09/evil.example lacks %s", want)
	}
}
