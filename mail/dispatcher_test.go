package mail

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// fakeOutbox is an in-memory OutboxService with the db package's semantics.
type fakeOutbox struct {
	mu     sync.Mutex
	msgs   map[int64]*doorledger.Message
	due    map[int64]time.Time // next attempt of a failed message
	nextID int64
	polls  int // calls of PendingMessages
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{msgs: make(map[int64]*doorledger.Message), due: make(map[int64]time.Time)}
}

func (o *fakeOutbox) Add(to, subject string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nextID++
	o.msgs[o.nextID] = &doorledger.Message{ID: o.nextID, CreatedAt: time.Now(), To: to, Subject: subject, Body: "body", Kind: "alert"}
	return o.nextID
}

func (o *fakeOutbox) Get(id int64) doorledger.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.msgs[id]
}

func (o *fakeOutbox) Polls() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.polls
}

func (o *fakeOutbox) FindMessages(ctx context.Context, limit int) ([]*doorledger.Message, error) {
	return nil, errors.New("not used")
}

func (o *fakeOutbox) PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*doorledger.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.polls++
	var list []*doorledger.Message
	for _, m := range o.msgs {
		if m.SentAt.IsZero() && m.FailedAt.IsZero() && m.Attempts < maxAttempts && !time.Now().Before(o.due[m.ID]) {
			c := *m
			list = append(list, &c)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	if len(list) > limit {
		list = list[:limit]
	}
	return list, nil
}

func (o *fakeOutbox) MarkSent(ctx context.Context, id int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.msgs[id]
	m.SentAt, m.LastError = time.Now(), ""
	m.Attempts++
	return nil
}

func (o *fakeOutbox) MarkFailed(ctx context.Context, id int64, reason string, final bool, retryAfter time.Duration) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.msgs[id]
	m.Attempts++
	m.LastError = reason
	if final {
		m.FailedAt = time.Now()
	} else {
		o.due[id] = time.Now().Add(retryAfter)
	}
	return nil
}

func (o *fakeOutbox) RetryMessage(ctx context.Context, id int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs[id].Attempts = 0
	o.msgs[id].FailedAt = time.Time{}
	delete(o.due, id)
	return nil
}

// fakeMailer fails while fail returns true, and counts every call.
type fakeMailer struct {
	mu    sync.Mutex
	calls map[int64]int
	fail  func(m *doorledger.Message, call int) bool
}

func (f *fakeMailer) Send(ctx context.Context, m *doorledger.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[int64]int)
	}
	f.calls[m.ID]++
	if f.fail != nil && f.fail(m, f.calls[m.ID]) {
		return errors.New("452 mailbox busy")
	}
	return nil
}

func (f *fakeMailer) Calls(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// MustRun starts d.Run and stops it when the test ends, failing if Run does
// not return promptly once its context is cancelled.
func MustRun(tb testing.TB, d *Dispatcher) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			tb.Error("Run did not stop after cancel")
		}
	})
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDispatcher_RetriesThenSucceeds(t *testing.T) {
	out := newFakeOutbox()
	id := out.Add("a@example.com", "Hi")
	mailer := &fakeMailer{fail: func(m *doorledger.Message, call int) bool { return call <= 2 }}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), Interval: time.Millisecond, RetryDelay: time.Millisecond}
	MustRun(t, d)

	waitFor(t, "message sent", func() bool { return !out.Get(id).SentAt.IsZero() })
	m := out.Get(id)
	if got, want := m.Attempts, 3; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if m.LastError != "" {
		t.Errorf("last error %q after success", m.LastError)
	}
	if got, want := mailer.Calls(id), 3; got != want {
		t.Errorf("mailer called %d times, want %d", got, want)
	}
}

func TestDispatcher_StopsAtMaxAttempts(t *testing.T) {
	out := newFakeOutbox()
	id := out.Add("a@example.com", "Hi")
	mailer := &fakeMailer{fail: func(*doorledger.Message, int) bool { return true }}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), Interval: time.Millisecond, RetryDelay: time.Millisecond, MaxAttempts: 3}
	MustRun(t, d)

	waitFor(t, "three attempts", func() bool { return out.Get(id).Attempts >= 3 })
	// Let several more passes run: none may try the message again.
	polls := out.Polls()
	waitFor(t, "more passes", func() bool { return out.Polls() >= polls+5 })
	m := out.Get(id)
	if got, want := m.Attempts, 3; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if got, want := mailer.Calls(id), 3; got != want {
		t.Errorf("mailer called %d times, want %d", got, want)
	}
	if got, want := m.LastError, "send mail 1: 452 mailbox busy"; got != want {
		t.Errorf("last error %q, want %q", got, want)
	}
	if !m.SentAt.IsZero() {
		t.Error("message marked sent")
	}
}

// A failed message waits RetryDelay even though passes keep running.
func TestDispatcher_BacksOff(t *testing.T) {
	out := newFakeOutbox()
	id := out.Add("a@example.com", "Hi")
	mailer := &fakeMailer{fail: func(*doorledger.Message, int) bool { return true }}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), Interval: time.Millisecond, RetryDelay: time.Hour}
	MustRun(t, d)

	waitFor(t, "first attempt", func() bool { return out.Get(id).Attempts >= 1 })
	id2 := out.Add("b@example.com", "Hi")
	waitFor(t, "second message tried", func() bool { return mailer.Calls(id2) >= 1 })
	polls := out.Polls()
	waitFor(t, "more passes", func() bool { return out.Polls() >= polls+5 })
	if got, want := mailer.Calls(id), 1; got != want {
		t.Errorf("mailer called %d times during back-off, want %d", got, want)
	}
}

func TestDispatcher_NotifyWakesBeforeInterval(t *testing.T) {
	out := newFakeOutbox()
	mailer := &fakeMailer{}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), Interval: time.Hour}
	MustRun(t, d)

	// The first pass has read the (empty) outbox; the next would be in an hour.
	waitFor(t, "first pass", func() bool { return out.Polls() >= 1 })
	id := out.Add("a@example.com", "Hi")
	d.Notify()
	waitFor(t, "message sent after Notify", func() bool { return !out.Get(id).SentAt.IsZero() })
}

// Notify is DB.OnMail, which is set before Run starts and called on every
// commit that queues mail: it must never block.
func TestDispatcher_NotifyNeverBlocks(t *testing.T) {
	out := newFakeOutbox()
	id := out.Add("a@example.com", "Hi")
	d := &Dispatcher{Outbox: out, Mailer: &fakeMailer{}, Logger: discardLogger(), Interval: time.Hour}
	for range 100 {
		d.Notify()
	}
	MustRun(t, d)
	waitFor(t, "message sent", func() bool { return !out.Get(id).SentAt.IsZero() })
	for range 100 {
		d.Notify()
	}
}

func TestDispatcher_Flush(t *testing.T) {
	out := newFakeOutbox()
	ok := out.Add("ok@example.com", "Hi")
	bad := out.Add("bad@example.com", "Hi")
	mailer := &fakeMailer{fail: func(m *doorledger.Message, _ int) bool { return m.To == "bad@example.com" }}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), RetryDelay: time.Hour}

	if err := d.Flush(context.Background()); err == nil {
		t.Error("Flush: no error although one message failed")
	}
	if out.Get(ok).SentAt.IsZero() {
		t.Error("good message not sent")
	}
	// Flush keeps to the wait between retries: the failed message is not due.
	if err := d.Flush(context.Background()); err != nil {
		t.Errorf("second Flush: %v", err)
	}
	if got, want := out.Get(bad).Attempts, 1; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if got, want := mailer.Calls(ok), 1; got != want {
		t.Errorf("sent message was sent %d times, want %d", got, want)
	}
}

// Many pending messages, the oldest of them waiting to be retried, all go out.
func TestDispatcher_Backlog(t *testing.T) {
	out := newFakeOutbox()
	var ids []int64
	for range 3 * batchSize {
		ids = append(ids, out.Add("a@example.com", "Hi"))
	}
	mailer := &fakeMailer{fail: func(m *doorledger.Message, _ int) bool { return m.ID <= batchSize }}
	d := &Dispatcher{Outbox: out, Mailer: mailer, Logger: discardLogger(), RetryDelay: time.Hour}
	if err := d.pass(context.Background()); err == nil {
		t.Fatal("pass: no error although messages failed")
	}
	for _, id := range ids {
		m := out.Get(id)
		if failing := id <= batchSize; failing != m.SentAt.IsZero() || m.Attempts != 1 {
			t.Fatalf("message %d: attempts %d, sent %v", id, m.Attempts, m.SentAt)
		}
	}
}

func TestDispatcher_RequiresOutboxAndMailer(t *testing.T) {
	if err := (&Dispatcher{}).Run(context.Background()); err == nil {
		t.Error("Run without Outbox and Mailer: no error")
	}
	if err := (&Dispatcher{}).Flush(context.Background()); err == nil {
		t.Error("Flush without Outbox and Mailer: no error")
	}
}

// The dispatcher against the real SQLite outbox and an SMTP server.
func TestDispatcher_SQLiteOutboxToSMTP(t *testing.T) {
	d := sqlite.NewDB(filepath.Join(t.TempDir(), "t.db"))
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if _, err := d.Writer().ExecContext(ctx, `INSERT INTO outbox (created_at, to_addr, subject, body, kind)
		VALUES ('2025-03-01T09:00:00.000000Z', 'zoe@example.com', 'Einladung für Zoë', 'Willkommen, Zoë!', 'invitation')`); err != nil {
		t.Fatal(err)
	}

	srv := MustTestServer(t, TLSStartTLS, "portal", "s3cret")
	disp := &Dispatcher{
		Outbox: sqlite.NewOutboxService(d),
		Mailer: srv.MustMailer(t, srv.Config(TLSStartTLS)),
		Logger: discardLogger(),
	}
	if err := disp.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	msgs := srv.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "zoe@example.com" {
		t.Fatalf("server received %+v", msgs)
	}
	var sentAt string
	var attempts int
	if err := d.Reader().QueryRowContext(ctx, `SELECT COALESCE(sent_at, ''), attempts FROM outbox`).Scan(&sentAt, &attempts); err != nil {
		t.Fatal(err)
	}
	if sentAt == "" || attempts != 1 {
		t.Errorf("sent_at %q, attempts %d; want it marked sent after one attempt", sentAt, attempts)
	}
	pending, err := disp.Outbox.PendingMessages(ctx, 8, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Errorf("%d messages still pending", len(pending))
	}
}
