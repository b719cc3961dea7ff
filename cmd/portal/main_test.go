package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the portal to write while a test
// reads. It keeps the last maxKept bytes: a portal under load for an hour
// (the soak) must not be measured holding its whole log in memory.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxKept = 8 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > maxKept {
		tail := bytes.Clone(b.buf.Bytes()[b.buf.Len()/2:])
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Portal is a running portal started through run(), as an operator would.
type Portal struct {
	URL       string
	DataDir   string
	Stdout    *syncBuffer
	Stderr    *syncBuffer
	AdminPass string
	MQTT      string // the embedded broker's URL
	stop      context.CancelFunc
	done      chan error
}

const testAdminEmail = "admin@doorledger.localhost"

// MustStartPortal starts run() on a free port with a fresh data directory (or
// the given one, to test restarts), waits for /healthz, and stops it at cleanup.
func MustStartPortal(tb testing.TB, dataDir string, extraArgs ...string) *Portal {
	tb.Helper()
	return MustStartPortalEnv(tb, dataDir, nil, extraArgs...)
}

// MustStartPortalEnv is MustStartPortal with environment variables.
func MustStartPortalEnv(tb testing.TB, dataDir string, extraEnv map[string]string, extraArgs ...string) *Portal {
	tb.Helper()
	return mustStartPortalHook(tb, dataDir, nil, extraEnv, extraArgs...)
}

// mustStartPortalHook is MustStartPortalEnv with a function run() calls with
// the opened app before anything starts (appHookKey), e.g. to give the
// database a clock the test controls.
func mustStartPortalHook(tb testing.TB, dataDir string, hook func(*app), extraEnv map[string]string, extraArgs ...string) *Portal {
	tb.Helper()
	if dataDir == "" {
		dataDir = tb.TempDir()
	}
	base := context.Background()
	if hook != nil {
		base = context.WithValue(base, appHookKey{}, hook)
	}
	ctx, cancel := context.WithCancel(base)
	p := &Portal{DataDir: dataDir, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	// No disk reserve (8 MiB written and synced at each start) unless a
	// test asks for one: TestSlowDiskFull does, by flag.
	env := map[string]string{"DOORLEDGER_BCRYPT_COST": "4", "DOORLEDGER_DISK_RESERVE_MB": "0"}
	for k, v := range extraEnv {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	args := append([]string{"serve", "-addr", "127.0.0.1:0", "-mqtt-addr", "127.0.0.1:0", "-data", dataDir, "-log-level", envOr(os.Getenv, "DOORLEDGER_TEST_LOG_LEVEL", "warn")}, extraArgs...)
	go func() { p.done <- run(ctx, args, getenv, p.Stdout, p.Stderr) }()
	tb.Cleanup(func() { p.Stop(tb) })

	listening := regexp.MustCompile(`listening on (http://\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for p.URL == "" {
		if m := listening.FindStringSubmatch(p.Stdout.String()); m != nil {
			p.URL = m[1]
			break
		}
		select {
		case err := <-p.done:
			tb.Fatalf("portal exited before listening: %v\nstderr:\n%s", err, p.Stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("portal did not start in time; stdout:\n%s\nstderr:\n%s", p.Stdout.String(), p.Stderr.String())
		}
	}
	for {
		resp, err := http.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("healthz never ok: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(p.Stdout.String()); m != nil {
		p.AdminPass = m[1]
	}
	if m := regexp.MustCompile(`embedded MQTT broker on (mqtt://\S+)`).FindStringSubmatch(p.Stdout.String()); m != nil {
		p.MQTT = m[1]
	}
	return p
}

// Stop cancels run()'s context (as SIGTERM does) and waits for a clean exit.
func (p *Portal) Stop(tb testing.TB) {
	tb.Helper()
	if p.stop == nil {
		return
	}
	p.stop()
	p.stop = nil
	select {
	case err := <-p.done:
		if err != nil {
			tb.Errorf("run: %v\nstderr:\n%s", err, p.Stderr.String())
		}
	case <-time.After(15 * time.Second):
		tb.Errorf("portal did not shut down")
	}
}

// Client is a browser-like HTTP client with a cookie jar that does not follow
// redirects, so tests see each 303.
type Client struct {
	tb   testing.TB
	base string
	http *http.Client
}

func NewClient(tb testing.TB, base string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{tb: tb, base: base, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}}
}

// Get fetches path and returns the status and body.
func (c *Client) Get(path string) (int, string) {
	c.tb.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// CSRF fetches a page and returns the token its forms carry.
func (c *Client) CSRF(path string) string {
	c.tb.Helper()
	_, body := c.Get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		c.tb.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

// Post submits a form with the CSRF token of the page at from ("" for none),
// and returns the status, the Location header and the body.
func (c *Client) Post(from, path string, form url.Values) (int, string, string) {
	c.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if from != "" {
		form.Set("_csrf", c.CSRF(from))
	}
	resp, err := c.http.PostForm(c.base+path, form)
	if err != nil {
		c.tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// MustLogin signs in and fails the test unless it lands on the buildings page.
func (c *Client) MustLogin(email, password string) {
	c.tb.Helper()
	status, loc, body := c.Post("/login", "/login", url.Values{"email": {email}, "password": {password}})
	if status != http.StatusSeeOther || loc != "/" {
		c.tb.Fatalf("login %s: status %d location %q\n%s", email, status, loc, body)
	}
}

// secretRE finds a device secret on its page, where it is shown once.
var secretRE = regexp.MustCompile(`Device secret \(shown once\):</strong> <code class="hash">([A-Za-z0-9_-]+)</code>`)

// MustIssueSecret issues a new secret for the device at path (/devices/N) as
// a manager does: the POST answers 303 to the device page, whose next GET
// shows the secret once.
func (c *Client) MustIssueSecret(path string) string {
	c.tb.Helper()
	status, loc, body := c.Post(path, path+"/credential", nil)
	if status != http.StatusSeeOther || loc != path {
		c.tb.Fatalf("credential for %s: %d %q\n%s", path, status, loc, body)
	}
	_, body = c.Get(path)
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		c.tb.Fatalf("credential for %s: the device page shows no secret\n%s", path, body)
	}
	return m[1]
}

func TestEndToEnd(t *testing.T) {
	p := MustStartPortal(t, "")
	if p.AdminPass == "" {
		t.Fatalf("first start printed no admin password:\n%s", p.Stdout.String())
	}
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)

	// Create a building, with its input kept and an error beside the field when bad.
	status, _, body := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Elm Court"}, "address": {""}, "timezone": {"Mars/Olympus"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `value="Elm Court"`) ||
		!strings.Contains(body, "Enter the street address.") || !strings.Contains(body, "Use a time zone name") {
		t.Fatalf("bad building form: status %d\n%s", status, body)
	}
	status, loc, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Elm Court"}, "address": {"1 Elm St"}, "timezone": {"America/Chicago"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/buildings/") {
		t.Fatalf("create building: %d %q", status, loc)
	}
	buildingPath := loc
	if _, body := admin.Get("/buildings"); !strings.Contains(body, "Elm Court") {
		t.Fatalf("building not listed:\n%s", body)
	}

	// Create a manager and grant them the building.
	status, _, body = admin.Post("/users/new", "/users", url.Values{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create user: %d\n%s", status, body)
	}
	_, body = admin.Get("/users")
	m := regexp.MustCompile(`href="/users/(\d+)">Mia Manager`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("manager not listed:\n%s", body)
	}
	if status, _, body := admin.Post(buildingPath, buildingPath+"/grants", url.Values{"user_id": {m[1]}}); status != http.StatusSeeOther {
		t.Fatalf("grant: %d\n%s", status, body)
	}

	// The manager sees the building, edits its roster, then signs out.
	mgr := NewClient(t, p.URL)
	mgr.MustLogin("mia@example.com", "correct horse battery")
	if status, body := mgr.Get(buildingPath); status != http.StatusOK || !strings.Contains(body, "Elm Court") {
		t.Fatalf("manager building page: %d", status)
	}
	if status, _, body := mgr.Post(buildingPath, buildingPath+"/signers", url.Values{"signer_name": {"Ana <b>Board</b>"}, "signer_title": {"President"}, "signer_email": {"ana@example.com"}}); status != http.StatusSeeOther {
		t.Fatalf("add signer: %d\n%s", status, body)
	}
	if _, body := mgr.Get(buildingPath); !strings.Contains(body, "Ana &lt;b&gt;Board&lt;/b&gt;") {
		t.Fatalf("signer name not escaped or missing")
	}
	if status, loc, _ := mgr.Post(buildingPath, "/logout", nil); status != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout: %d %q", status, loc)
	}
	if status, _ := mgr.Get(buildingPath); status != http.StatusSeeOther {
		t.Fatalf("after logout building page: %d, want redirect to sign-in", status)
	}
	// Unknown routes and malformed ids are a clear 404 page.
	for _, path := range []string{"/no/such/page", "/buildings/abc", "/buildings/999999"} {
		if status, body := admin.Get(path); status != http.StatusNotFound || !strings.Contains(body, "Not found") {
			t.Errorf("GET %s: %d, want a 404 page", path, status)
		}
	}
}
