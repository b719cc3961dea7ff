package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// store is the write a backend would supply, over a table in memory: each
// piece of work is a batch of keys, inserted in one transaction per group
// (all or nothing: a key already there fails the whole group, as a primary
// key would). The answer to a call is how many keys it inserted. A group
// whose first batch starts with a gate key blocks until the gate's release is
// closed; a batch holding beast panics.
type store struct {
	c     *Committer[[]int, int]
	gates map[int]*gate // by key; not changed once the test submits

	mu     sync.Mutex
	rows   map[int]bool
	writes [][][]int // the work of each write attempted, in order
	failed int       // times Failed was told
}

type gate struct {
	started chan struct{} // closed when the gate's group has started
	release chan struct{}
}

const (
	gateKey = -1
	beast   = 666
)

func newStore(t *testing.T, max int) *store {
	t.Helper()
	s := &store{gates: map[int]*gate{}, rows: map[int]bool{}}
	s.addGate(gateKey)
	s.c = New("test group", func() int { return max }, func(w []int) int { return len(w) }, s.write)
	s.c.Failed = func() {
		s.mu.Lock()
		s.failed++
		s.mu.Unlock()
	}
	return s
}

func (s *store) write(calls []Item[[]int]) ([]Answer[int], error) {
	work := make([][]int, len(calls))
	for i, c := range calls {
		work[i] = c.Work
	}
	s.mu.Lock()
	s.writes = append(s.writes, work)
	s.mu.Unlock()
	if len(work[0]) > 0 && s.gates[work[0][0]] != nil {
		g := s.gates[work[0][0]]
		close(g.started)
		<-g.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := map[int]bool{}
	answers := make([]Answer[int], len(calls))
	for i, keys := range work {
		for _, k := range keys {
			if k == beast {
				panic("the work of the beast")
			}
			if s.rows[k] || tx[k] {
				return nil, fmt.Errorf("key %d is there already", k)
			}
			tx[k] = true
		}
		answers[i].Val = len(keys)
	}
	for k := range tx { // commit
		s.rows[k] = true
	}
	return answers, nil
}

func (s *store) addGate(k int) *gate {
	g := &gate{started: make(chan struct{}), release: make(chan struct{})}
	s.gates[k] = g
	return g
}

func (s *store) has(k int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[k]
}

func (s *store) groups() [][][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// until waits, without sleeping, for cond (read under the committer's lock)
// to hold: the committer broadcasts each change of its queue.
func (s *store) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		s.c.mu.Lock()
		s.c.changed.Broadcast()
		s.c.mu.Unlock()
	})
	defer stop()
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		s.c.changed.Wait()
	}
}

// queuedCalls waits until n calls wait in the queue.
func (s *store) queuedCalls(t *testing.T, n int) {
	t.Helper()
	s.until(t, fmt.Sprintf("%d calls queued", n), func() bool { return len(s.c.queue) == n })
}

// startGate submits the gate and waits until its group is being written: the
// committer is then busy, and what is submitted next waits in the queue.
func (s *store) startGate(t *testing.T, ctx context.Context) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := s.c.Submit(ctx, []int{gateKey})
		done <- err
	}()
	<-s.gates[gateKey].started
	return done
}

// submit submits work on a goroutine; its answer arrives on the channel.
func (s *store) submit(ctx context.Context, work ...int) chan Answer[int] {
	done := make(chan Answer[int], 1)
	go func() {
		n, err := s.c.Submit(ctx, work)
		done <- Answer[int]{n, err}
	}()
	return done
}

func TestConcurrent(t *testing.T) {
	s := newStore(t, 100)
	const callers, each = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := c*each + i + 1
				got, err := s.c.Submit(context.Background(), []int{k, -k - 1000})
				if err != nil {
					errs <- err
					return
				}
				if got != 2 {
					errs <- fmt.Errorf("answer %d, want 2", got)
					return
				}
				// Answered means committed.
				if !s.has(k) || !s.has(-k-1000) {
					errs <- errors.New("answered before committed")
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
	groups, items := s.c.Stats()
	if got, want := items, int64(2*callers*each); got != want {
		t.Errorf("items = %d, want %d", got, want)
	}
	if got, want := groups, int64(len(s.groups())); got != want {
		t.Errorf("groups = %d, want one per write (%d)", got, want)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.running || len(s.c.queue) > 0 || s.c.queued != 0 {
		t.Errorf("committer still running (%v) or work queued (%d calls, size %d) after every caller was answered", s.c.running, len(s.c.queue), s.c.queued)
	}
}

// TestGroups: what queues during a commit is written as one group, bounded
// by max in summed size, in one transaction; a call's work is never split,
// even when it alone weighs more than max.
func TestGroups(t *testing.T) {
	s := newStore(t, 4)
	gateDone := s.startGate(t, context.Background())
	works := [][]int{{1}, {2, 3}, {4}, {5, 6, 7, 8, 9}, {10}}
	answers := make([]chan Answer[int], len(works))
	for i, w := range works {
		answers[i] = s.submit(context.Background(), w...)
		s.queuedCalls(t, i+1) // in order
	}
	if got, want := s.c.Queued(), 10; got != want {
		t.Errorf("Queued() = %d, want %d", got, want)
	}
	close(s.gates[gateKey].release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	for i, w := range works {
		if a := <-answers[i]; a.Err != nil || a.Val != len(w) {
			t.Errorf("call %d: answer %v, want %d", i, a, len(w))
		}
	}
	s.c.Wait()
	want := "[[[-1]] [[1] [2 3] [4]] [[5 6 7 8 9]] [[10]]]"
	if got := fmt.Sprint(s.groups()); got != want {
		t.Errorf("writes %s, want %s", got, want)
	}
	if groups, items := s.c.Stats(); groups != 4 || items != 11 {
		t.Errorf("Stats() = %d groups, %d items; want 4, 11", groups, items)
	}
	if got := s.c.Queued(); got != 0 {
		t.Errorf("Queued() = %d after everything was written", got)
	}
}

// TestErrorsPerCall: a group whose write fails is retried one call at a
// time; only the calls whose work fails alone get an error, and the others'
// work is committed. A panic is that call's error. Failed is told of each
// failed write.
func TestErrorsPerCall(t *testing.T) {
	s := newStore(t, 100)
	if _, err := s.c.Submit(context.Background(), []int{7}); err != nil {
		t.Fatal(err)
	}
	gateDone := s.startGate(t, context.Background())
	var answers []chan Answer[int]
	for i, w := range [][]int{{1}, {8, 7}, {2, 3}, {beast}} { // 7 is there already
		answers = append(answers, s.submit(context.Background(), w...))
		s.queuedCalls(t, i+1)
	}
	close(s.gates[gateKey].release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	for i, want := range []Answer[int]{{Val: 1}, {Err: errors.New("key 7 is there already")}, {Val: 2}, {Err: errors.New("test group: internal error: the work of the beast")}} {
		a := <-answers[i]
		if fmt.Sprint(a.Err) != fmt.Sprint(want.Err) || a.Val != want.Val {
			t.Errorf("call %d: answer %v, want %v", i, a, want)
		}
	}
	for _, k := range []int{1, 2, 3} {
		if !s.has(k) {
			t.Errorf("key %d of a call that did not fail was not committed", k)
		}
	}
	if s.has(8) {
		t.Error("the failed call's work was half written")
	}
	// The first, the gate, the group of four (failed), then each alone.
	want := "[[[7]] [[-1]] [[1] [8 7] [2 3] [666]] [[1]] [[8 7]] [[2 3]] [[666]]]"
	if got := fmt.Sprint(s.groups()); got != want {
		t.Errorf("writes %s, want %s", got, want)
	}
	if groups, items := s.c.Stats(); groups != 4 || items != 5 {
		t.Errorf("Stats() = %d groups, %d items; want 4 committed holding 5", groups, items)
	}
	if s.failed != 3 {
		t.Errorf("Failed told %d times, want 3 (the group, then two calls alone)", s.failed)
	}
}

// TestCancel: a caller whose context ends while it waits is answered with
// its context's error, and its work is skipped when its group had not
// started.
func TestCancel(t *testing.T) {
	s := newStore(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.c.Submit(ctx, []int{3}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit with an ended context: err = %v", err)
	}

	gateDone := s.startGate(t, context.Background())
	ctx, cancel = context.WithCancel(context.Background())
	cancelled := s.submit(ctx, 4)
	s.queuedCalls(t, 1)
	kept := s.submit(context.Background(), 5)
	s.queuedCalls(t, 2)
	cancel()
	if a := <-cancelled; !errors.Is(a.Err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v", a.Err)
	}
	close(s.gates[gateKey].release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	if a := <-kept; a.Err != nil {
		t.Fatal(a.Err)
	}
	s.c.Wait()
	if s.has(3) || s.has(4) {
		t.Error("work of a caller that stopped waiting before its group started was written")
	}
	if !s.has(5) {
		t.Error("the other caller's work was not written")
	}
	if want := "[[[-1]] [[5]]]"; fmt.Sprint(s.groups()) != want {
		t.Errorf("writes %v, want %s", s.groups(), want)
	}
}

// TestWait: Wait (at close) returns only once everything queued is written,
// even the work of a caller that stopped waiting after its group started.
func TestWait(t *testing.T) {
	s := newStore(t, 100)
	second := s.addGate(-2)
	gateDone := s.startGate(t, context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := s.submit(ctx, -2)
	s.queuedCalls(t, 1)
	queued := s.submit(context.Background(), 9)
	s.queuedCalls(t, 2)
	close(s.gates[gateKey].release)
	<-second.started // the group of -2 and 9 is being written
	cancel()
	if a := <-stopped; !errors.Is(a.Err, context.Canceled) {
		t.Fatalf("caller that stopped waiting: err = %v, want its context's", a.Err)
	}
	waited := make(chan struct{})
	go func() {
		s.c.Wait()
		close(waited)
	}()
	close(second.release)
	<-waited
	if !s.has(-2) || !s.has(9) {
		t.Error("Wait returned before everything queued was written")
	}
	for _, ch := range []chan Answer[int]{queued} {
		if a := <-ch; a.Err != nil {
			t.Error(a.Err)
		}
	}
	if err := <-gateDone; err != nil {
		t.Error(err)
	}
	if want := "[[[-1]] [[-2] [9]]]"; fmt.Sprint(s.groups()) != want {
		t.Errorf("writes %v, want %s", s.groups(), want)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.running {
		t.Error("still running after Wait")
	}
}

// TestSubmitWithin: work is refused at once, with full, when the queued work
// and its own would weigh more than the limit; never while the queue is
// empty, however heavy.
func TestSubmitWithin(t *testing.T) {
	s := newStore(t, 100)
	full := errors.New("full")
	if n, err := s.c.SubmitWithin(context.Background(), []int{1, 2, 3, 4}, 3, full); err != nil || n != 4 {
		t.Fatalf("heavier than the limit on an empty queue: %d, %v", n, err)
	}
	gateDone := s.startGate(t, context.Background()) // in a running group: not queued
	within := make(chan error, 1)
	go func() {
		_, err := s.c.SubmitWithin(context.Background(), []int{10, 11}, 3, full)
		within <- err
	}()
	s.queuedCalls(t, 1)
	if _, err := s.c.SubmitWithin(context.Background(), []int{12, 13}, 3, full); err != full {
		t.Errorf("2 queued + 2 over a limit of 3: err = %v, want full", err)
	}
	last := make(chan error, 1)
	go func() {
		_, err := s.c.SubmitWithin(context.Background(), []int{14}, 3, full)
		last <- err
	}()
	s.queuedCalls(t, 2)
	close(s.gates[gateKey].release)
	for _, ch := range []chan error{gateDone, within, last} {
		if err := <-ch; err != nil {
			t.Error(err)
		}
	}
	if s.has(12) || s.has(13) {
		t.Error("refused work was written")
	}
}
