package mail

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/emersion/go-smtp"
)

// Issue 19, "mail server down or refusing for hours": the SMTP server is
// really stopped (its port refuses connections) or really refuses (4xx and
// 5xx replies); the hours pass on the clock the dispatcher and the database
// read, never the machine's.

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

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// attemptLog is the real SMTP mailer, observed: when (on the test clock) each
// message was tried, and with what outcome.
type attemptLog struct {
	doorledger.Mailer
	clock *testClock

	mu       sync.Mutex
	attempts map[int64][]time.Time
}

func (a *attemptLog) Send(ctx context.Context, m *doorledger.Message) error {
	a.mu.Lock()
	if a.attempts == nil {
		a.attempts = make(map[int64][]time.Time)
	}
	a.attempts[m.ID] = append(a.attempts[m.ID], a.clock.Now())
	a.mu.Unlock()
	return a.Mailer.Send(ctx, m)
}

func (a *attemptLog) times(id int64) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.attempts[id]...)
}

// outageWorld is an outboxWorld whose database and dispatcher read one test
// clock, with an admin, its mail sent by the real SMTP mailer.
type outageWorld struct {
	*outboxWorld
	clock *testClock
	log   *attemptLog
	disp  *Dispatcher
	admin context.Context
}

func newOutageWorld(t *testing.T) *outageWorld {
	t.Helper()
	w := &outageWorld{outboxWorld: newOutboxWorld(t), clock: &testClock{t: time.Now().UTC().Truncate(time.Second)}}
	w.d.Now = w.clock.Now
	w.log = &attemptLog{Mailer: w.srv.MustMailer(t, w.srv.Config(TLSNone)), clock: w.clock}
	w.disp = &Dispatcher{Outbox: w.outbox, Mailer: w.log, Logger: discardLogger()}
	sys := doorledger.NewSystemContext(context.Background(), "test")
	admin, err := sqlite.NewUserService(w.d).CreateUser(sys, doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	w.admin = doorledger.NewContextWithUser(context.Background(), admin)
	return w
}

// run lets d pass over the outbox every step of the test clock for span, as
// Run would (due retries only), without waiting for that time.
func (w *outageWorld) run(span, step time.Duration) {
	for end := w.clock.Now().Add(span); w.clock.Now().Before(end); {
		w.clock.Add(step)
		w.disp.pass(context.Background())
	}
}

// messages lists the outbox as admins see it, by id.
func (w *outageWorld) messages(t *testing.T) map[int64]*doorledger.Message {
	t.Helper()
	list, err := w.outbox.FindMessages(w.admin, 500)
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[int64]*doorledger.Message, len(list))
	for _, m := range list {
		byID[m.ID] = m
	}
	return byID
}

// newest is the id of the newest mail to addr.
func (w *outageWorld) newest(t *testing.T, addr string) int64 {
	t.Helper()
	var id int64
	if err := w.d.Reader().QueryRow(`SELECT MAX(id) FROM outbox WHERE to_addr = ?`, addr).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// retryFailed is an admin pressing Retry on every mail the dispatcher gave up on.
func (w *outageWorld) retryFailed(t *testing.T) int {
	t.Helper()
	n := 0
	for id, m := range w.messages(t) {
		if !m.FailedAt.IsZero() {
			if err := w.outbox.RetryMessage(w.admin, id); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

// messageIDs counts what srv received by Message-ID.
func messageIDs(t *testing.T, srv *testServer) map[string]int {
	t.Helper()
	ids := make(map[string]int)
	for _, r := range srv.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Header.Get("Message-ID")]++
	}
	return ids
}

func (w *outageWorld) sign(t *testing.T, token string) {
	t.Helper()
	sess, err := w.consents.OpenSigning(context.Background(), token)
	if err != nil {
		t.Fatalf("the signing link does not open: %v", err)
	}
	if sess.Done {
		t.Fatal("the signing link opens as already used")
	}
	if _, err := w.consents.Sign(context.Background(), token, doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true,
		SignaturePNG: []byte("\x89PNG\r\n\x1a\n-validated-by-the-caller"), TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "203.0.113.7", UserAgent: "test"}); err != nil {
		t.Fatalf("signing: %v", err)
	}
}

// wantGaps checks that the attempts at times are spaced by want.
func wantGaps(t *testing.T, what string, times []time.Time, want []time.Duration) {
	t.Helper()
	var got []time.Duration
	for i := 1; i < len(times); i++ {
		got = append(got, times[i].Sub(times[i-1]))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: attempts %d, spaced %v; want spaced %v", what, len(times), got, want)
	}
}

// The dispatcher's default schedule: 10 attempts, 30 s doubling to an hour.
var defaultGaps = []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
	16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}

// The SMTP server is stopped for four hours. Mail queued before and during
// the outage is retried with backoff (30 s doubling, at most an hour apart)
// until its budget of 10 attempts is spent (3 h 3.5 min after the first),
// then shows as "could not deliver" with the refused connection as its
// error; transactions that queue mail commit while the server is down; a
// signing link mailed before the outage still opens and signs after it; and
// once the server is back an admin's retry delivers each mail exactly once.
func TestMailServerDownForHours(t *testing.T) {
	w := newOutageWorld(t)
	ctx := context.Background()

	// Before the outage: consent SN-0 requested, signed, its withdraw link
	// mailed; consent SN-1 requested, its signing link mailed.
	w.request(t, "SN-0", false)
	w.disp.pass(ctx)
	w.sign(t, linkTokens(w.received(t), "/sign/")[0])
	w.request(t, "SN-1", false)
	w.disp.pass(ctx)
	got := w.received(t)
	withdraw, sign := linkTokens(got, "/consent/withdraw/"), linkTokens(got, "/sign/")
	if len(withdraw) != 1 || len(sign) != 2 {
		t.Fatalf("before the outage, delivered withdraw links %v, signing links %v", withdraw, sign)
	}
	beforeOutage := len(w.srv.Messages())

	// The server goes away: its port refuses connections.
	addr := net.JoinHostPort(w.srv.Host, strconv.Itoa(w.srv.Port))
	w.srv.Stop()
	start := w.clock.Now()

	// Transactions that queue mail commit at once: a consent request, and a
	// signed consent withdrawn (its device revoked, managers alerted).
	w.request(t, "SN-2", false)
	requestMail := w.newest(t, w.signer.Email)
	ended, err := w.consents.EndByToken(ctx, withdraw[0], "moved out")
	if err != nil {
		t.Fatalf("withdrawing while the mail server is down: %v", err)
	}
	if ended.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("withdrawn consent is %s", ended.Status)
	}
	alertMail := w.newest(t, "manager@example.com")
	if alertMail < requestMail {
		t.Fatal("the withdrawal queued no alert")
	}

	// Four hours pass, the dispatcher passing every 15 s.
	w.run(4*time.Hour, 15*time.Second)
	for _, id := range []int64{requestMail, alertMail} {
		times := w.log.times(id)
		wantGaps(t, fmt.Sprintf("mail %d", id), times, defaultGaps)
		if len(times) > 0 {
			t.Logf("mail %d: attempts at %v after the outage began; given up after %v", id, offsets(start, times), times[len(times)-1].Sub(start))
		}
	}
	msgs := w.messages(t)
	for _, id := range []int64{requestMail, alertMail} {
		m := msgs[id]
		if m.FailedAt.IsZero() || !m.SentAt.IsZero() || m.Attempts != DefaultMaxAttempts || !strings.Contains(m.LastError, "connection refused") {
			t.Fatalf("mail %d after 4 hours down: failed %v, sent %v, %d attempts, last error %q", id, m.FailedAt, m.SentAt, m.Attempts, m.LastError)
		}
		t.Logf("mail %d: could not deliver at %s, %d attempts, last error %q", id, m.FailedAt.Format(time.RFC3339), m.Attempts, m.LastError)
	}

	// The signing link mailed before the outage still opens and signs: its
	// validity does not depend on mail.
	w.sign(t, sign[1])
	signedMail := w.newest(t, w.signer.Email)
	if signedMail <= alertMail {
		t.Fatal("signing queued no mail")
	}

	// The server is back where it was; an admin retries what could not be
	// delivered. Each unsent mail is delivered exactly once.
	w.srv = mustTestServerAt(t, addr, TLSNone, "portal", "s3cret", nil)
	retried := w.retryFailed(t)
	w.run(10*time.Minute, 15*time.Second)
	var unsent int
	for id, m := range w.messages(t) {
		if m.SentAt.IsZero() {
			unsent++
			t.Errorf("mail %d unsent after the retry: %+v", id, m)
		}
	}
	ids := messageIDs(t, w.srv)
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	queuedDuring := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox`)
	var total int
	if err := queuedDuring.Scan(&total); err != nil {
		t.Fatal(err)
	}
	if len(ids) != total-beforeOutage || retried == 0 {
		t.Errorf("after the outage %d distinct mails delivered (%d retried by the admin), want the %d queued during it", len(ids), retried, total-beforeOutage)
	}
	if got := w.received(t); !strings.Contains(got, "/consent/withdraw/") || len(linkTokens(got, "/sign/")) != 1 {
		t.Errorf("after the outage, delivered:\n%s", got)
	}
}

// The portal is restarted again and again during an outage: a new
// Dispatcher on the same database before every pass. The backoff survives,
// since when each mail is next due is stored with it: no restart resends a
// mail before its next attempt is due, and the attempts keep the schedule of
// a portal that ran throughout. (With the wait kept in the dispatcher's
// memory, every restart tried every pending mail at once.)
func TestMailServerDownDispatcherRestarts(t *testing.T) {
	w := newOutageWorld(t)
	w.srv.Stop()
	start := w.clock.Now()
	w.request(t, "SN-0", false)
	id := w.newest(t, w.signer.Email)

	for end := start.Add(4 * time.Hour); w.clock.Now().Before(end); {
		w.clock.Add(15 * time.Second)
		w.disp = &Dispatcher{Outbox: w.outbox, Mailer: w.log, Logger: discardLogger()}
		w.disp.pass(context.Background())
	}
	times := w.log.times(id)
	wantGaps(t, "mail restarted on", times, defaultGaps)
	t.Logf("attempts at %v after the outage began, the dispatcher new before every pass", offsets(start, times))
	if m := w.messages(t)[id]; m.FailedAt.IsZero() || m.Attempts != DefaultMaxAttempts {
		t.Fatalf("after 4 hours down: failed %v, %d attempts", m.FailedAt, m.Attempts)
	}

	// An admin's Retry makes it due at once, for a new dispatcher too.
	w.srv = mustTestServerAt(t, net.JoinHostPort(w.srv.Host, strconv.Itoa(w.srv.Port)), TLSNone, "portal", "s3cret", nil)
	if err := w.outbox.RetryMessage(w.admin, id); err != nil {
		t.Fatal(err)
	}
	w.disp = &Dispatcher{Outbox: w.outbox, Mailer: w.log, Logger: discardLogger()}
	if err := w.disp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := w.messages(t)[id]; m.SentAt.IsZero() || len(w.srv.Messages()) != 1 {
		t.Fatalf("after the retry: sent %v, the server received %d", m.SentAt, len(w.srv.Messages()))
	}
}

// The SMTP server answers, but refuses. A temporary refusal (4xx, to RCPT or
// after DATA) is retried like an outage; a permanent one (5xx) is given up on
// at its first attempt and never tried again on its own, whatever the time;
// an admin's retry once the server accepts delivers it exactly once.
func TestMailServerRefuses(t *testing.T) {
	w := newOutageWorld(t)
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	busy := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	noUser := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	rejected := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected"}

	// 4xx to RCPT, then 4xx after DATA: retried on the schedule, not given up.
	w.srv.Refuse(temp, nil)
	w.request(t, "SN-1", false)
	first := w.newest(t, w.signer.Email)
	w.run(30*time.Second, 15*time.Second)
	w.srv.Refuse(nil, busy)
	w.run(45*time.Second, 15*time.Second) // the second attempt is due at 45 s, the third at 1 min 45 s
	m := w.messages(t)[first]
	if m.Attempts != 2 || !m.FailedAt.IsZero() || !strings.Contains(m.LastError, "452") {
		t.Fatalf("after two temporary refusals: %d attempts, failed %v, last error %q", m.Attempts, m.FailedAt, m.LastError)
	}
	wantGaps(t, "temporary refusals", w.log.times(first), defaultGaps[:1])

	// 5xx to RCPT: given up on at this attempt, and for the hours after.
	w.srv.Refuse(noUser, nil)
	w.run(3*time.Minute, 15*time.Second)
	// 5xx after DATA, for a second mail: given up on at its first attempt.
	w.srv.Refuse(nil, rejected)
	w.request(t, "SN-2", false)
	second := w.newest(t, w.signer.Email)
	w.run(4*time.Hour, 15*time.Second)
	msgs := w.messages(t)
	for id, want := range map[int64]struct {
		attempts int
		code     string
	}{first: {3, "550"}, second: {1, "554"}} {
		m := msgs[id]
		if m.FailedAt.IsZero() || !m.SentAt.IsZero() || m.Attempts != want.attempts || !strings.Contains(m.LastError, want.code) {
			t.Errorf("mail %d refused for good: failed %v, sent %v, %d attempts (want %d), last error %q (want %s)",
				id, m.FailedAt, m.SentAt, m.Attempts, want.attempts, m.LastError, want.code)
		}
		if n := len(w.log.times(id)); n != want.attempts {
			t.Errorf("mail %d tried %d times in four hours, want %d", id, n, want.attempts)
		}
		t.Logf("mail %d: could not deliver after %d attempts, last error %q", id, m.Attempts, m.LastError)
	}
	if n := len(w.srv.Messages()); n != 0 {
		t.Fatalf("the refusing server kept %d messages", n)
	}

	// The server accepts again; an admin retries both: each delivered once.
	w.srv.Refuse(nil, nil)
	if n := w.retryFailed(t); n != 2 {
		t.Fatalf("retried %d mails, want 2", n)
	}
	w.run(time.Hour, 15*time.Second)
	ids := messageIDs(t, w.srv)
	if len(ids) != 2 {
		t.Errorf("delivered %v, want the 2 retried mails", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// A mail server that accepts the connection and then hangs holds the
// dispatcher, never a transaction: requests and withdrawals commit while a
// delivery is stuck mid-session.
func TestMailServerHangingBlocksNoTransaction(t *testing.T) {
	w := newOutboxWorld(t)
	mailer := w.srv.MustMailer(t, w.srv.Config(TLSNone))
	w.request(t, "SN-0", false)
	stalled := w.srv.StallAtMail(t)
	d := &Dispatcher{Outbox: w.outbox, Mailer: mailer, Logger: discardLogger(), Interval: time.Hour}
	MustRun(t, d)
	<-stalled // the dispatcher is inside an SMTP session that does not answer
	for _, serial := range []string{"SN-1", "SN-2", "SN-3"} {
		w.request(t, serial, false)
	}
	var queued int
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 4 {
		t.Fatalf("%d mails queued while the server hangs, want 4", queued)
	}
}

func offsets(start time.Time, times []time.Time) []time.Duration {
	out := make([]time.Duration, len(times))
	for i, at := range times {
		out[i] = at.Sub(start)
	}
	return out
}
