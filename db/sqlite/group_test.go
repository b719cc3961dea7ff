package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// groupHarness is a groupCommitter over a real SQLite file that inserts each
// piece of work (an int) as a row of table g, one transaction per group.
// Work equal to gate blocks its group until release is closed.
type groupHarness struct {
	db      *DB
	c       *groupCommitter[int, int]
	release chan struct{}
	gated   chan struct{} // closed when the gate's group has started

	mu     sync.Mutex
	groups [][]int // the work of each write attempted, in order
}

const gate = -1

func newGroupHarness(t *testing.T) *groupHarness {
	t.Helper()
	db := NewDB(filepath.Join(t.TempDir(), "group.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Writer().Exec(`CREATE TABLE g (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	h := &groupHarness{db: db, release: make(chan struct{}), gated: make(chan struct{})}
	h.c = newGroupCommitter("test group", func() int { return 100 }, nil, h.write)
	return h
}

func (h *groupHarness) write(calls []groupWork[int]) ([]groupAnswer[int], error) {
	work := make([]int, len(calls))
	for i, c := range calls {
		work[i] = c.work
	}
	h.mu.Lock()
	h.groups = append(h.groups, work)
	h.mu.Unlock()
	if work[0] == gate {
		close(h.gated)
		<-h.release
	}
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	answers := make([]groupAnswer[int], len(calls))
	for i, n := range work {
		if n == 666 {
			panic("the work of the beast")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO g (n) VALUES (?)`, n); err != nil {
			return nil, err
		}
		answers[i].val = 2 * n
	}
	return answers, tx.Commit()
}

// has reads the table through a read connection: what was committed.
func (h *groupHarness) has(t *testing.T, n int) bool {
	t.Helper()
	var c int
	if err := h.db.Reader().QueryRow(`SELECT COUNT(*) FROM g WHERE n = ?`, n).Scan(&c); err != nil {
		t.Error(err)
	}
	return c == 1
}

// queued waits until n calls wait in the committer's queue.
func (h *groupHarness) queued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.c.mu.Lock()
		got := len(h.c.queue)
		h.c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startGate submits the gate and waits until its group is being written: the
// committer is then busy, and what is submitted next waits in the queue.
func (h *groupHarness) startGate(t *testing.T) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := h.c.submit(context.Background(), gate)
		done <- err
	}()
	<-h.gated
	return done
}

func TestGroupCommitterConcurrent(t *testing.T) {
	h := newGroupHarness(t)
	const callers, each = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := c*each + i + 1
				got, err := h.c.submit(context.Background(), n)
				if err != nil {
					errs <- err
					return
				}
				if got != 2*n {
					errs <- errors.New("wrong answer")
					return
				}
				// Acknowledged means committed: another connection sees it.
				if !h.has(t, n) {
					errs <- errors.New("acknowledged before committed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	groups, items := h.c.stats()
	if items != callers*each {
		t.Errorf("items = %d, want %d", items, callers*each)
	}
	if groups != int64(len(h.groups)) {
		t.Errorf("groups = %d, want one per write (%d)", groups, len(h.groups))
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if h.c.running || len(h.c.queue) > 0 {
		t.Errorf("committer still running (%v) or work queued (%d) after every caller was answered", h.c.running, len(h.c.queue))
	}
}

// TestGroupCommitterGroups checks that what queues during a commit is written
// as one group, bounded by max, in one transaction.
func TestGroupCommitterGroups(t *testing.T) {
	h := newGroupHarness(t)
	h.c.max = func() int { return 3 }
	gateDone := h.startGate(t)
	var wg sync.WaitGroup
	for n := 1; n <= 5; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.c.submit(context.Background(), n); err != nil {
				t.Error(err)
			}
		}()
		h.queued(t, n) // in order
	}
	close(h.release)
	wg.Wait()
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	h.c.wait()
	if got, want := len(h.groups), 3; got != want {
		t.Fatalf("groups %v, want the gate, then 3, then 2", h.groups)
	}
	if len(h.groups[1]) != 3 || len(h.groups[2]) != 2 {
		t.Errorf("groups %v, want the gate, then 3, then 2", h.groups)
	}
}

// TestGroupCommitterFailure: a group whose transaction fails is retried one
// caller at a time; only the caller whose work fails alone gets an error, and
// the others' work is committed. A panic is that caller's error.
func TestGroupCommitterFailure(t *testing.T) {
	h := newGroupHarness(t)
	if _, err := h.c.submit(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	gateDone := h.startGate(t)
	results := make([]chan error, 4)
	for i, n := range []int{1, 7, 2, 666} { // 7 is there already; 666 panics
		results[i] = make(chan error, 1)
		go func() {
			_, err := h.c.submit(context.Background(), n)
			results[i] <- err
		}()
		h.queued(t, i+1)
	}
	close(h.release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	for i, wantErr := range []bool{false, true, false, true} {
		if err := <-results[i]; (err != nil) != wantErr {
			t.Errorf("call %d: err = %v, want error %v", i, err, wantErr)
		}
	}
	if !h.has(t, 1) || !h.has(t, 2) {
		t.Error("work of the callers that did not fail was not committed")
	}
	// gate, the group of four (failed), then each alone.
	if len(h.groups) != 1+1+1+4 || len(h.groups[2]) != 4 {
		t.Errorf("writes %v, want the first, the gate, the group of four, then each alone", h.groups)
	}
	if groups, items := h.c.stats(); groups != 4 || items != 4 {
		t.Errorf("stats = %d groups, %d items; want 4 committed of one each", groups, items)
	}
}

// TestGroupCommitterCancel: a caller whose context ends while it waits is
// answered with its context's error, and its work is skipped when its group
// had not started.
func TestGroupCommitterCancel(t *testing.T) {
	h := newGroupHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.c.submit(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("submit with an ended context: err = %v", err)
	}

	gateDone := h.startGate(t)
	ctx, cancel = context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := h.c.submit(ctx, 4)
		cancelled <- err
	}()
	kept := make(chan error, 1)
	h.queued(t, 1)
	go func() {
		_, err := h.c.submit(context.Background(), 5)
		kept <- err
	}()
	h.queued(t, 2)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v", err)
	}
	close(h.release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	h.c.wait()
	if h.has(t, 3) || h.has(t, 4) {
		t.Error("work of a caller that stopped waiting before its group started was written")
	}
	if !h.has(t, 5) {
		t.Error("the other caller's work was not written")
	}
}
