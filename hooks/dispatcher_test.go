package hooks_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/hooks"
)

// The receivers are real HTTP servers (httptest); a receiver "down" is a
// closed port that refuses connections. Hours pass on the clock the
// database reads, which the test moves: no test sleeps.

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *testClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// portal is a database with the services the tests use, and a dispatcher.
type portal struct {
	db       *sqlite.DB
	webhooks *sqlite.WebhookService
	unlocks  *sqlite.UnlockService
	disp     *hooks.Dispatcher
	building int64
}

var sealKey = []byte("0123456789abcdef0123456789abcdef")

func sys() context.Context { return doorledger.NewSystemContext(context.Background(), "test") }

// openPortal opens (or, at a path used before, reopens) the database at
// path on clock, with a dispatcher that may reach loopback receivers.
func openPortal(t *testing.T, path string, clock *testClock) *portal {
	t.Helper()
	d := sqlite.NewDB(path)
	d.Now = clock.Now
	if err := d.SetSealKey(sealKey); err != nil {
		t.Fatal(err)
	}
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	p := &portal{db: d, webhooks: sqlite.NewWebhookService(d), unlocks: sqlite.NewUnlockService(d)}
	p.disp = &hooks.Dispatcher{Webhooks: p.webhooks, Client: hooks.NewClient(true), Logger: slog.New(slog.DiscardHandler)}
	bs, err := sqlite.NewBuildingService(d).FindBuildings(sys())
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) > 0 {
		p.building = bs[0].ID
		return p
	}
	b, err := sqlite.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Harbor View", Address: "1 Harbor St", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	p.building = b.ID
	return p
}

func newPortal(t *testing.T) (*portal, *testClock) {
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	return openPortal(t, filepath.Join(t.TempDir(), "portal.db"), clock), clock
}

// subscribe subscribes url to anomalies and returns the secret.
func (p *portal) subscribe(t *testing.T, url string) string {
	t.Helper()
	_, secret, err := p.webhooks.CreateWebhookSubscription(sys(), doorledger.WebhookSubscriptionInput{
		Name: "pms", URL: url, EventTypes: []string{doorledger.EventUnlockAnomaly}})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// anomaly records an unlock by a device the portal does not know, which
// makes an unlock.anomaly event.
func (p *portal) anomaly(t *testing.T, clock *testClock, id string) {
	t.Helper()
	if err := p.unlocks.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{{BuildingID: p.building, DeviceRef: "GHOST-7",
		EventID: id, OccurredAt: clock.Now().Add(-time.Minute), ReceivedAt: clock.Now(), Method: doorledger.MethodKeypad,
		ActorRef: "pkg-" + id, Result: doorledger.UnlockGranted}}); err != nil {
		t.Fatal(err)
	}
}

func (p *portal) deliveries(t *testing.T) []*doorledger.WebhookDelivery {
	t.Helper()
	list, err := p.webhooks.FindWebhookDeliveries(sys(), doorledger.WebhookDeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(list)
	return list
}

// received is one request a receiver accepted as signed.
type received struct {
	eventID, header string
	attempt         int
	at              time.Time // on the test's clock
	unlockEvent     string    // the anomaly's unlock event id, from the body
}

// receiver is a subscribed system: it verifies each request's signature with
// the vendor scheme (devicectl.VerifySignature) and answers with status.
type receiver struct {
	t      *testing.T
	clock  *testClock
	secret []byte

	mu     sync.Mutex
	status int
	body   string
	got    []received
	forged int // requests whose signature did not verify
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := devicectl.VerifySignature(req.Header.Get(devicectl.SignatureHeader), body, [][]byte{r.secret}, time.Now(), 0); err != nil {
		r.forged++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev struct {
		doorledger.Event
		Data struct {
			EventID string `json:"event_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	n, _ := strconv.Atoi(req.Header.Get(doorledger.EventAttemptHeader))
	r.got = append(r.got, received{eventID: ev.ID, header: req.Header.Get(doorledger.EventIDHeader), attempt: n, at: r.clock.Now(), unlockEvent: ev.Data.EventID})
	status := r.status
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, r.body)
}

func (r *receiver) set(status int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body = status, body
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func flush(p *portal) { p.disp.Flush(context.Background()) } // failures are read back from the deliveries

// An event reaches its receiver signed as vendor webhooks are, with its id
// in a header and in the body, and its delivery shows the answer.
func TestEventDeliveredSigned(t *testing.T) {
	p, clock := newPortal(t)
	recv := &receiver{t: t, clock: clock}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	recv.secret = []byte(p.subscribe(t, srv.URL+"/doorledger"))
	recv.set(202, "accepted")
	p.anomaly(t, clock, "u-1")
	if err := p.disp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := recv.requests()
	if len(got) != 1 || recv.forged != 0 || got[0].eventID != got[0].header || !strings.HasPrefix(got[0].eventID, "evt_") || got[0].attempt != 1 || got[0].unlockEvent != "u-1" {
		t.Fatalf("received %+v (%d forged)", got, recv.forged)
	}
	d := p.deliveries(t)[0]
	if d.State() != doorledger.DeliveryDelivered || d.ResponseStatus != 202 || d.ResponseExcerpt != "accepted" || d.EventID != got[0].eventID || !d.LastAttemptAt.Equal(clock.Now()) {
		t.Fatalf("delivery %+v", d)
	}
	// The signature is the secret's: a receiver holding another refuses it.
	recv.secret = []byte(doorledger.WebhookSecretPrefix + "someone-else")
	if err := p.webhooks.ReplayWebhookDelivery(sys(), d.ID); err != nil {
		t.Fatal(err)
	}
	flush(p)
	if recv.forged != 1 {
		t.Fatalf("a request verified with another secret (%d forged)", recv.forged)
	}
	if d := p.deliveries(t)[0]; d.State() != doorledger.DeliveryRetrying || d.ResponseStatus != 401 {
		t.Fatalf("refused by the receiver: %+v", d)
	}
}

// A receiver down for a while (its port refuses connections), then up, gets
// every event queued meanwhile, each with its one event id, and no attempt
// is made before the backoff's wait has passed on the portal's clock.
func TestReceiverDownThenUp(t *testing.T) {
	p, clock := newPortal(t)
	start := clock.Now()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections refused
	recv := &receiver{t: t, clock: clock}
	recv.secret = []byte(p.subscribe(t, "http://"+addr+"/events"))
	for _, id := range []string{"u-1", "u-2", "u-3"} {
		p.anomaly(t, clock, id)
	}
	attempts := func() []int {
		var n []int
		for _, d := range p.deliveries(t) {
			n = append(n, d.Attempts)
		}
		return n
	}
	// One pass finds the receiver down with one attempt and leaves the rest
	// for the next; three passes try each once.
	flush(p)
	if got := attempts(); !slices.Equal(got, []int{1, 0, 0}) {
		t.Fatalf("attempts after one pass: %v", got)
	}
	flush(p)
	flush(p)
	flush(p) // nothing due any more
	if got := attempts(); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("attempts after four passes: %v", got)
	}
	d := p.deliveries(t)[0]
	if !d.NextAttemptAt.Equal(start.Add(hooks.DefaultRetryDelay)) || !strings.Contains(d.LastError, "refused") || d.ResponseStatus != 0 {
		t.Fatalf("after a refused connection: %+v", d)
	}
	clock.Set(start.Add(hooks.DefaultRetryDelay - time.Second))
	flush(p)
	if got := attempts(); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("tried before the wait passed: %v", got)
	}
	clock.Set(start.Add(hooks.DefaultRetryDelay))
	for range 3 {
		flush(p)
	}
	if got := attempts(); !slices.Equal(got, []int{2, 2, 2}) {
		t.Fatalf("attempts after the first wait: %v", got)
	}
	// The second wait is twice the first.
	if d := p.deliveries(t)[0]; !d.NextAttemptAt.Equal(start.Add(3 * hooks.DefaultRetryDelay)) {
		t.Fatalf("second wait: due at %s, want %s", d.NextAttemptAt, start.Add(3*hooks.DefaultRetryDelay))
	}
	clock.Set(start.Add(3*hooks.DefaultRetryDelay - time.Second))
	flush(p)
	if got := attempts(); !slices.Equal(got, []int{2, 2, 2}) {
		t.Fatalf("tried before the second wait passed: %v", got)
	}

	// Up again, on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(recv)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	clock.Set(start.Add(3 * hooks.DefaultRetryDelay))
	flush(p)
	got := recv.requests()
	var ids, unlocks []string
	for _, r := range got {
		ids, unlocks = append(ids, r.eventID), append(unlocks, r.unlockEvent)
		if r.attempt != 3 || !r.at.Equal(clock.Now()) {
			t.Fatalf("request %+v", r)
		}
	}
	slices.Sort(unlocks)
	if !slices.Equal(unlocks, []string{"u-1", "u-2", "u-3"}) || recv.forged != 0 {
		t.Fatalf("the receiver got %v (%d forged)", unlocks, recv.forged)
	}
	for i, d := range p.deliveries(t) {
		if d.State() != doorledger.DeliveryDelivered || !slices.Contains(ids, d.EventID) {
			t.Fatalf("delivery %d: %+v (ids received %v)", i, d, ids)
		}
	}
	flush(p)
	if n := len(recv.requests()); n != 3 {
		t.Fatalf("%d requests after everything was delivered; want 3", n)
	}
}

// A receiver answering 500 forever is retried with backoff until the retry
// window ends, 24 hours after the event, then the delivery is "failed" with
// the answer (its excerpt bounded) for admins to see; replayed, it goes out
// again with the same event id.
func TestReceiverFailingForeverGivesUpAfter24h(t *testing.T) {
	p, clock := newPortal(t)
	start := clock.Now()
	recv := &receiver{t: t, clock: clock}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	recv.secret = []byte(p.subscribe(t, srv.URL))
	recv.set(500, strings.Repeat("x", 100<<10))
	p.anomaly(t, clock, "u-1")
	var d *doorledger.WebhookDelivery
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("still %s after 100 attempts: %+v", d.State(), d)
		}
		flush(p)
		d = p.deliveries(t)[0]
		if d.State() == doorledger.DeliveryFailed {
			break
		}
		if d.State() != doorledger.DeliveryRetrying || !d.NextAttemptAt.After(clock.Now()) {
			t.Fatalf("after attempt %d: %+v", i+1, d)
		}
		clock.Set(d.NextAttemptAt)
	}
	if want := start.Add(doorledger.WebhookRetryWindow); !d.FailedAt.Equal(want) {
		t.Fatalf("given up at %s; want %s (24 h after the event)", d.FailedAt, want)
	}
	got := recv.requests()
	if len(got) != d.Attempts || d.ResponseStatus != 500 || len(d.ResponseExcerpt) != doorledger.MaxResponseExcerpt || d.LastError != "HTTP 500" {
		t.Fatalf("failed delivery: %d attempts, %d requests, status %d, excerpt %d bytes, error %q", d.Attempts, len(got), d.ResponseStatus, len(d.ResponseExcerpt), d.LastError)
	}
	// The waits: 30 s doubling up to an hour, the last cut to the window's end.
	for i := 1; i < len(got); i++ {
		wait := got[i].at.Sub(got[i-1].at)
		want := hooks.DefaultRetryDelay
		for range i - 1 {
			want = min(2*want, hooks.DefaultMaxRetryDelay)
		}
		if i == len(got)-1 {
			want = min(want, start.Add(doorledger.WebhookRetryWindow).Sub(got[i-1].at))
		}
		if wait != want || got[i].eventID != got[0].eventID || got[i].attempt != i+1 {
			t.Fatalf("request %d: %+v after %s; want %s after the one before, event %s", i+1, got[i], wait, want, got[0].eventID)
		}
	}
	t.Logf("%d attempts in %s", len(got), got[len(got)-1].at.Sub(got[0].at))
	failed, err := p.webhooks.FindWebhookDeliveries(sys(), doorledger.WebhookDeliveryFilter{State: doorledger.DeliveryFailed})
	if err != nil || len(failed) != 1 || failed[0].ID != d.ID {
		t.Fatalf("failed deliveries: %+v, %v", failed, err)
	}
	// Nothing more is tried, however long it waits.
	clock.Add(72 * time.Hour)
	flush(p)
	if n := len(recv.requests()); n != len(got) {
		t.Fatalf("tried again after giving up: %d requests", n)
	}

	recv.set(200, "")
	if err := p.webhooks.ReplayWebhookDelivery(sys(), d.ID); err != nil {
		t.Fatal(err)
	}
	flush(p)
	all := recv.requests()
	if len(all) != len(got)+1 || all[len(all)-1].eventID != got[0].eventID || all[len(all)-1].attempt != 1 {
		t.Fatalf("replay: %+v", all[len(got):])
	}
	if d := p.deliveries(t)[0]; d.State() != doorledger.DeliveryDelivered {
		t.Fatalf("after the replay: %+v", d)
	}
}

// A portal restarted while a delivery waits keeps to its backoff: the time
// is the database's, not the dispatcher's.
func TestRestartKeepsBackoff(t *testing.T) {
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	start := clock.Now()
	path := filepath.Join(t.TempDir(), "portal.db")
	p := openPortal(t, path, clock)
	recv := &receiver{t: t, clock: clock}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	recv.secret = []byte(p.subscribe(t, srv.URL))
	recv.set(503, "maintenance")
	p.anomaly(t, clock, "u-1")
	flush(p)
	if n := len(recv.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
	p.db.Close()

	clock.Set(start.Add(hooks.DefaultRetryDelay / 2))
	p = openPortal(t, path, clock) // a new process: a new dispatcher, the same database
	flush(p)
	if n := len(recv.requests()); n != 1 {
		t.Fatalf("the restarted portal tried before the wait had passed (%d requests)", n)
	}
	recv.set(200, "")
	clock.Set(start.Add(hooks.DefaultRetryDelay))
	flush(p)
	got := recv.requests()
	if len(got) != 2 || got[1].eventID != got[0].eventID || got[1].attempt != 2 || p.deliveries(t)[0].State() != doorledger.DeliveryDelivered {
		t.Fatalf("after the wait: %+v", got)
	}
}

// Without the private-network flag the portal connects to no loopback,
// private or link-local address, whatever the URL says; and it never
// follows a redirect.
func TestRefusesPrivateAddressesAndRedirects(t *testing.T) {
	p, clock := newPortal(t)
	recv := &receiver{t: t, clock: clock}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	recv.secret = []byte(p.subscribe(t, srv.URL))
	p.disp.Client = hooks.NewClient(false)
	p.anomaly(t, clock, "u-1")
	flush(p)
	d := p.deliveries(t)[0]
	if n := len(recv.requests()); n != 0 || d.State() != doorledger.DeliveryRetrying || !strings.Contains(d.LastError, "refused to connect to 127.0.0.1") {
		t.Fatalf("%d requests reached a loopback receiver; delivery %+v", n, d)
	}

	p.disp.Client = hooks.NewClient(true)
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	if _, _, err := p.webhooks.CreateWebhookSubscription(sys(), doorledger.WebhookSubscriptionInput{
		Name: "moved", URL: redirect.URL, EventTypes: []string{doorledger.EventUnlockAnomaly}}); err != nil {
		t.Fatal(err)
	}
	p.anomaly(t, clock, "u-2")
	clock.Add(time.Hour)
	flush(p)
	var moved *doorledger.WebhookDelivery
	for _, d := range p.deliveries(t) {
		if d.SubscriptionName == "moved" {
			moved = d
		}
	}
	if moved == nil || moved.State() != doorledger.DeliveryRetrying || moved.ResponseStatus != 307 || !strings.Contains(moved.LastError, "redirects are not followed") {
		t.Fatalf("redirected delivery %+v", moved)
	}
	// The redirect's target is the first subscription's receiver: a followed
	// redirect would bring it the event a second time, signed with the other
	// subscription's secret.
	n := 0
	for _, r := range recv.requests() {
		if r.unlockEvent == "u-2" {
			n++
		}
	}
	if n != 1 || recv.forged != 0 {
		t.Fatalf("the receiver got u-2 %d times and %d forged requests; want once (the redirect not followed)", n, recv.forged)
	}
}
