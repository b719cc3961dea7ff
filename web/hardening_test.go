package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/web"
)

// After sign-in the portal goes only to a path of its own site,
// whatever next says. Browsers drop tabs and line breaks and read "\" as "/",
// so each hostile case below would otherwise leave for evil.example.
func TestLoginNextStaysOnSite(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ next, want string }{
		{"/devices", "/devices"},
		{"/buildings/3/unlocks?anomalies=open&before=2026-01-01T00:00:00Z", "/buildings/3/unlocks?anomalies=open&before=2026-01-01T00:00:00Z"},
		{"/reports/abc#top", "/reports/abc#top"},
		{"", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/\u0085/evil.example", "/"},
		{"/devices\t", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/\\/evil.example", "/"},
		{"/devices\\..\\..\\evil", "/"},
		{"\\\\evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{" /devices", "/"},
		{"evil.example", "/"},
		{"/\xff/evil.example", "/"},
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
	if want := `name="next" value="/"`; !strings.Contains(body, want) {
		t.Errorf("sign-in page for next=/%%09/evil.example lacks %s", want)
	}
}

// countingBody is a request body that counts the bytes the server reads of it.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// hugeMultipart is a multipart form of about size bytes: one "photo" of
// zeros, as a hostile client would post it, generated as it is read.
func hugeMultipart(size int64) (*countingBody, string) {
	const boundary = "doorledger-test-boundary"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, size-int64(len(head)+len(tail))), strings.NewReader(tail))
	return &countingBody{r: body}, "multipart/form-data; boundary=" + boundary
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// unreadBound is how much of a refused body the server may read: none, but
// a buffer's worth would not matter.
const unreadBound = 64 << 10

// A post that is not allowed is refused from its headers — the
// session, the role, Sec-Fetch-Site, the X-CSRF-Token header — before a byte
// of its body is read. Before, the CSRF check parsed the form for _csrf
// first: each anonymous 40 MB upload was read and buffered to get a 403.
func TestRefusedPostsAreNotRead(t *testing.T) {
	f := newFixture(t)
	cookies := func(email string) []*http.Cookie {
		c := f.client()
		c.login(email)
		return c.http.Jar.Cookies(c.base)
	}
	installer, board := cookies(f.instA.Email), cookies(f.boardA.Email)
	consents := fmt.Sprintf("/buildings/%d/consents", f.A.ID)
	const size = 40 << 20
	for _, tc := range []struct {
		name    string
		path    string
		cookies []*http.Cookie
		headers map[string]string
		status  int
	}{
		{"anonymous", consents, nil, nil, http.StatusSeeOther},
		{"anonymous, htmx", consents, nil, map[string]string{"HX-Request": "true"}, http.StatusUnauthorized},
		{"ended session", consents, []*http.Cookie{{Name: "dl_session", Value: "forged-or-expired"}}, nil, http.StatusSeeOther},
		{"anonymous, report check", "/reports/verify", nil, nil, http.StatusSeeOther},
		{"signed in, wrong role", consents, board, nil, http.StatusNotFound},
		{"cross-site", consents, installer, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"wrong CSRF header", consents, installer, map[string]string{"X-CSRF-Token": "forged"}, http.StatusForbidden},
	} {
		body, contentType := hugeMultipart(size)
		req := httptest.NewRequest(http.MethodPost, tc.path, body)
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
		for _, ck := range tc.cookies {
			req.AddCookie(ck)
		}
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		f.server.Handler().ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		if rec.Code != tc.status {
			t.Errorf("%s: %d, want %d\n%.300s", tc.name, rec.Code, tc.status, rec.Body.String())
		}
		if n := body.read.Load(); n > unreadBound {
			t.Errorf("%s: the server read %d bytes of a refused 40 MB body", tc.name, n)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Errorf("%s: refusing allocated %d MB", tc.name, grew>>20)
		}
	}
}

// The vendor API refuses an unknown integration and a missing,
// malformed or stale signature header before it reads the body; only a
// well-formed, fresh header for a live integration gets the body read (and
// its MAC checked).
func TestVendorAPIRefusesBeforeReadingBody(t *testing.T) {
	r := newVendorRig(t)
	now := time.Now()
	sign := func(at time.Time) string { return devicectl.Sign([]byte(r.key), at, []byte("other body")) }
	const size = 900 << 10 // under the limits of both routes (4 MB, 1 MB)
	for _, tc := range []struct {
		name, path, signature, reason string
		read                          bool
	}{
		{"unknown integration", "/api/vendors/999999/events", sign(now), "unknown_integration", false},
		{"missing signature", r.eventsPath(), "", "missing_signature", false},
		{"malformed signature", r.eventsPath(), "t=now,v1=nothex", "bad_signature", false},
		{"stale signature", r.eventsPath(), sign(now.Add(-time.Hour)), "stale_signature", false},
		{"stale callback", r.statePath(), sign(now.Add(time.Hour)), "stale_signature", false},
		{"fresh, but not this body's", r.eventsPath(), sign(now), "bad_signature", true},
	} {
		body := &countingBody{r: io.LimitReader(zeros{}, size)}
		req := httptest.NewRequest(http.MethodPost, tc.path, body)
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
		if tc.signature != "" {
			req.Header.Set(devicectl.SignatureHeader, tc.signature)
		}
		rec := httptest.NewRecorder()
		r.http.Config.Handler.ServeHTTP(rec, req)
		var got struct{ Reason string }
		_ = json.Unmarshal(rec.Body.Bytes(), &got)
		if rec.Code != http.StatusUnauthorized || got.Reason != tc.reason {
			t.Errorf("%s: %d %q, want 401 %q", tc.name, rec.Code, got.Reason, tc.reason)
		}
		if n := body.read.Load(); tc.read && n != size {
			t.Errorf("%s: read %d bytes of the body, want all %d", tc.name, n, size)
		} else if !tc.read && n > 0 {
			t.Errorf("%s: read %d bytes of a body refused by its headers", tc.name, n)
		}
	}
}

// The CSRF token counts only from the X-CSRF-Token header or the
// form body, never from the URL query, which ends up in logs and history.
func TestCSRFTokenNotTakenFromQuery(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.admin.Email)
	before := countBuildings(t, f)
	token := c.csrf()
	form := url.Values{"name": {"From the query"}, "address": {"1 Query St"}, "timezone": {"UTC"}}
	resp, body := c.post("/buildings?_csrf="+url.QueryEscape(token), form, "-")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not come from Doorledger") {
		t.Errorf("token in the query: %d, want 403\n%.300s", resp.StatusCode, body)
	}
	if got := countBuildings(t, f); got != before {
		t.Fatalf("buildings: %d, want %d: a token from the query was accepted", got, before)
	}
	// In the body (as every form sends it) it works, multipart too.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range form {
		mw.WriteField(k, v[0])
	}
	mw.WriteField("_csrf", token)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+"/buildings", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if resp, body := c.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("token in a multipart body: %d\n%.300s", resp.StatusCode, body)
	}
}

// Every form of the portal needs the CSRF token: each POST route of the
// access matrix (but the signed machine API), posted without it by a caller
// allowed there, is refused with 403 before its handler runs. A route
// registered without csrfForm at the end of its middleware fails here.
func TestEveryFormNeedsCSRFToken(t *testing.T) {
	f := newFixture(t, withSSO(t)).withVendors(t)
	emails := []string{"", f.admin.Email, f.managerA.Email, f.managerB.Email, f.boardA.Email, f.instA.Email}
	for _, row := range matrix {
		if row.method != http.MethodPost || strings.HasPrefix(row.path, "/api/") {
			continue
		}
		who := slices.Index(row.want[:], ok)
		if who < 0 {
			t.Errorf("POST %s: no role may use it", row.path)
			continue
		}
		c := f.client()
		if emails[who] != "" {
			c.login(emails[who])
		}
		path := f.concrete(t, row.path)
		c.csrf() // the browser has a token; the form does not carry it
		resp, body := c.post(path, url.Values{}, "-")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not come from Doorledger") {
			t.Errorf("POST %s as %s without a token: %d, want 403\n%.200s", path, roles[who], resp.StatusCode, body)
		}
	}
}

// Served over HTTPS the cookies are Secure and carry the __Host-
// prefix (Path=/, no Domain), so neither a sibling subdomain nor a plain-HTTP
// page can plant or overwrite them; the whole sign-in works with them.
func TestSecureCookiesHostPrefix(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewTLSServer(web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Audit: sqlite.NewAuditService(f.db), Consents: f.consents, Papers: f.consents, Policies: sqlite.NewPolicyService(f.db),
		Outbox: f.outbox, Devices: sqlite.NewDeviceService(f.db), Unlocks: sqlite.NewUnlockService(f.db), Logs: f.logs, Reports: f.reports,
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Secure:      true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Handler())
	defer srv.Close()
	c := f.client()
	c.base, _ = url.Parse(srv.URL)
	c.http.Transport = srv.Client().Transport

	check := func(resp *http.Response, name string) string {
		t.Helper()
		for _, ck := range resp.Cookies() {
			if ck.Name == name && ck.Value != "" {
				if !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" {
					t.Errorf("%s: Secure %v HttpOnly %v Path %q Domain %q; want Secure, HttpOnly, Path=/ and no Domain",
						name, ck.Secure, ck.HttpOnly, ck.Path, ck.Domain)
				}
				return ck.Value
			}
			if strings.HasPrefix(ck.Name, "dl_") {
				t.Errorf("cookie %s set without the __Host- prefix over HTTPS", ck.Name)
			}
		}
		t.Fatalf("no %s cookie set; got %v", name, resp.Header.Values("Set-Cookie"))
		return ""
	}
	resp, _ := c.get("/login")
	token := check(resp, "__Host-dl_csrf")
	resp, body := c.post("/login", url.Values{"email": {f.managerA.Email}, "password": {testPassword}}, token)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in over HTTPS: %d\n%.300s", resp.StatusCode, body)
	}
	check(resp, "__Host-dl_session")
	if resp, _ := c.get("/buildings"); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in over HTTPS: GET /buildings %d", resp.StatusCode)
	}

	// Served over plain HTTP (localhost) the names stay plain and not
	// Secure, which browsers would refuse there.
	plain := f.client()
	resp, _ = plain.get("/login")
	for _, ck := range resp.Cookies() {
		if ck.Secure || strings.HasPrefix(ck.Name, "__Host-") {
			t.Errorf("over plain HTTP: cookie %s Secure %v", ck.Name, ck.Secure)
		}
	}
}

// Parallel guesses through the sign-in form: after 8 failures, 30 wrong passwords
// posted at once get at most 2 answers of 401 (checked) and the rest 429.
func TestParallelSignInGuesses(t *testing.T) {
	f := newFixture(t)
	f.db.PasswordCost = 8 // a real cost: the time bcrypt takes is the race's window
	u := must(f.users.CreateUser(sys(), doorledger.NewUser{Email: "target@example.com", Name: "T", Role: doorledger.RoleBoard, Password: testPassword}))(t)
	f.db.PasswordCost = 4
	guess := func(c *client, pw string) int {
		resp, _ := c.post("/login", url.Values{"email": {u.Email}, "password": {pw}}, "")
		return resp.StatusCode
	}
	c := f.client()
	for i := range 8 {
		if got := guess(c, fmt.Sprintf("wrong %d", i)); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, got)
		}
	}
	clients := make([]*client, 30)
	for i := range clients {
		clients[i] = f.client()
		clients[i].csrf()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status := guess(c, fmt.Sprintf("parallel %d", i))
			mu.Lock()
			got[status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if got[http.StatusUnauthorized] > 2 || got[http.StatusUnauthorized]+got[http.StatusTooManyRequests] != 30 {
		t.Fatalf("30 guesses at once after 8 failures: %v (status: count); want at most 2 of 401, the rest 429", got)
	}
}

// A password longer than bcrypt's 72 bytes works on every path
// that sets or checks one — an admin creating the account, the account page,
// an admin's reset, an invitation for a new installer and for one who has an
// account — where each was a 500 before. Past 256 characters the field says so.
func TestLongPasswordsOnEveryPath(t *testing.T) {
	f := newFixture(t)
	long := func(s string) string { return strings.Repeat(s, 100/len([]rune(s))+1) } // 100+ characters, up to 300 bytes
	signsIn := func(email, pw string) bool {
		resp, _ := f.client().post("/login", url.Values{"email": {email}, "password": {pw}}, "")
		return resp.StatusCode == http.StatusSeeOther
	}
	admin := f.client()
	admin.login(f.admin.Email)

	// An admin creates an account with a long password.
	pw1 := long("żółw idzie ")
	resp, body := admin.post("/users", url.Values{"name": {"Long"}, "email": {"long@example.com"}, "role": {"board"}, "password": {pw1}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create with a %d-byte password: %d\n%.300s", len(pw1), resp.StatusCode, body)
	}
	if !signsIn("long@example.com", pw1) || signsIn("long@example.com", string([]rune(pw1)[:60])) {
		t.Fatal("the long password does not sign in, or its first 60 characters do")
	}
	// Its owner changes it on the account page, to another long one.
	owner := f.client()
	owner.loginWith("long@example.com", pw1)
	pw2 := long("correct horse battery staple ")
	if resp, body := owner.post("/account/password", url.Values{"current": {pw1}, "password": {pw2}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("account page, %d-byte password: %d\n%.300s", len(pw2), resp.StatusCode, body)
	}
	if !signsIn("long@example.com", pw2) {
		t.Fatal("the password set on the account page does not sign in")
	}
	// An admin resets it; past 256 characters the field says so.
	u := must(f.users.FindUserByEmail(sys(), "long@example.com"))(t)
	pw3 := strings.Repeat("ł", 256)
	if resp, body := admin.post(fmt.Sprintf("/users/%d/password", u.ID), url.Values{"password": {pw3}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin reset, %d-byte password: %d\n%.300s", len(pw3), resp.StatusCode, body)
	}
	if !signsIn("long@example.com", pw3) {
		t.Fatal("the password an admin set does not sign in")
	}
	resp, body = admin.post(fmt.Sprintf("/users/%d/password", u.ID), url.Values{"password": {pw3 + "ł"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use at most 256 characters.") {
		t.Fatalf("257 characters: %d, want 422 with the field's message\n%.300s", resp.StatusCode, body)
	}

	// A new installer accepts an invitation with a long password...
	inv := f.invite(t)
	pw4 := long("un mot de passe très long ")
	installer := f.client()
	if resp, body := installer.post("/invite/"+f.lastToken(t, "/invite/"), url.Values{"password": {pw4}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("invitation, new installer with a %d-byte password: %d\n%.300s", len(pw4), resp.StatusCode, body)
	}
	if !signsIn(inv.Email, pw4) {
		t.Fatal("the password set by accepting an invitation does not sign in")
	}
	// ...and proves it to accept the next one.
	ctx := doorledger.NewContextWithUser(context.Background(), f.managerB)
	must(sqlite.NewInvitationService(f.db, "http://portal.test").Invite(ctx, f.B.ID, inv.Email, "New Installer", "FastKey"))(t)
	if resp, body := f.client().post("/invite/"+f.lastToken(t, "/invite/"), url.Values{"password": {pw4}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("invitation, existing installer proving a %d-byte password: %d\n%.300s", len(pw4), resp.StatusCode, body)
	}
}

// loginWith signs in with a given password.
func (c *client) loginWith(email, password string) {
	c.tb.Helper()
	resp, body := c.post("/login", url.Values{"email": {email}, "password": {password}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		c.tb.Fatalf("login %s: %d\n%s", email, resp.StatusCode, body)
	}
}

// sse is a server-sent event stream read by a test: its lines arrive on a
// channel, which is closed when the server ends the stream.
type sse struct {
	lines  chan string
	cancel context.CancelFunc
}

// openStream opens path as a live stream and returns once its headers came.
func (c *client) openStream(path string) *sse {
	c.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		c.tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		c.tb.Fatalf("stream %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{lines: make(chan string, 1024), cancel: cancel}
	go func() {
		defer close(s.lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	c.tb.Cleanup(cancel)
	return s
}

// streamEndWait bounds the wait for a stream to end: ten of the server's
// one-second ticks. It is a failure bound, not a measure.
const streamEndWait = 10 * time.Second

// awaitEnd reads the stream until the server ends it and returns the data of
// its "end" event ("" if it ended without one). It fails when the stream is
// still open after streamEndWait.
func (s *sse) awaitEnd(tb testing.TB) string {
	tb.Helper()
	deadline := time.After(streamEndWait)
	var ended, data string
	for {
		select {
		case line, open := <-s.lines:
			if !open {
				return data
			}
			switch {
			case line == "event: end":
				ended = line
			case ended != "" && strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			}
		case <-deadline:
			tb.Fatalf("the stream is still open %s later", streamEndWait)
			return ""
		}
	}
}

// A live stream re-checks its session on each tick, so logging
// out, logging out everywhere and disabling the account each end it, with an
// "end" event the page turns into a reload notice. Before, a stream kept
// sending device updates for up to 10 minutes.
func TestStreamEndsWithItsSession(t *testing.T) {
	f := newFixture(t)
	admin := f.client()
	admin.login(f.admin.Email)
	for _, tc := range []struct {
		name string
		end  func(c *client)
	}{
		{"logout", func(c *client) { c.post("/logout", nil, "") }},
		{"logout everywhere, from another browser", func(*client) {
			other := f.client()
			other.login(f.managerA.Email)
			other.post("/logout/everywhere", nil, "")
		}},
		{"account disabled", func(*client) {
			resp, body := admin.post(fmt.Sprintf("/users/%d", f.managerA.ID), url.Values{"name": {"Manager A"}, "role": {"manager"}, "disabled": {"1"}}, "")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("disable: %d\n%s", resp.StatusCode, body)
			}
		}},
	} {
		c := f.client()
		c.login(f.managerA.Email)
		s := c.openStream("/devices/events")
		tc.end(c)
		if msg := s.awaitEnd(t); !strings.Contains(msg, "your session has ended") {
			t.Errorf("%s: the stream ended with %q, want the session-ended notice", tc.name, msg)
		}
	}
}

// One user keeps at most 20 streams open; the 21st closes the
// oldest with an "end" event, and the next one the then oldest.
func TestStreamsPerUserCapped(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.managerA.Email)
	streams := make([]*sse, 20)
	for i := range streams {
		streams[i] = c.openStream("/devices/events")
	}
	c.openStream("/devices/events") // the 21st
	if msg := streams[0].awaitEnd(t); !strings.Contains(msg, "more than 20 live pages") {
		t.Errorf("the oldest stream ended with %q, want the too-many notice", msg)
	}
	c.openStream("/devices/events") // the 22nd
	if msg := streams[1].awaitEnd(t); !strings.Contains(msg, "more than 20 live pages") {
		t.Errorf("the second oldest stream ended with %q, want the too-many notice", msg)
	}
}
