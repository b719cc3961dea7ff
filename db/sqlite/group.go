package sqlite

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// groupCommitter batches the work of concurrent callers into shared write
// transactions. With synchronous=FULL a commit costs an fsync; sharing it among
// every caller that arrived meanwhile is what makes durable writes fast when
// many callers write at once (unlock ingest, devices' reports during a
// lockdown).
//
// The leader rule: a caller that finds no committer running becomes it and
// commits what is queued (its own work among it) on its own goroutine, so a
// lone caller pays no hand-off. Work that arrives during that commit waits for
// the next one; if any is queued when the leader's commit ends, a goroutine
// takes over and commits group after group until the queue is empty. Nothing
// waits for more callers to arrive: a group is whatever queued during the
// previous commit.
//
// The properties its callers rely on:
//   - durable before acknowledged: a caller is answered only after the
//     transaction holding its work committed (or failed);
//   - one group is one transaction (write);
//   - a failed group is tried again one caller at a time, each in a
//     transaction of its own, so one caller's failure never loses or
//     half-writes another's; a caller whose retry fails gets its error;
//   - a caller that stops waiting (its context ends) is answered with its
//     context's error; its work is skipped if its group has not started yet,
//     and otherwise may still be committed (the sender repeats it, and the
//     repeat is idempotent).
type groupCommitter[W, A any] struct {
	// write writes a group's work in ONE transaction and commits it. It
	// returns an answer per call, or an error when nothing was committed.
	write func(calls []groupWork[W]) ([]groupAnswer[A], error)
	// size weighs a piece of work (nil: 1 each); max bounds the summed size of
	// a group (nil or 0: no bound). A single call's work is never split.
	size func(W) int
	max  func() int
	// failed is told when a group's write failed or panicked, before the
	// retries (nil: nothing to do).
	failed func()
	name   string // for logs and errors

	mu      sync.Mutex
	queue   []*groupCall[W, A]
	queued  int // the summed size of queue's work
	running bool
	idle    *sync.Cond // on mu: broadcast when the committer stops running

	groups, items atomic.Int64 // transactions committed, sizes of their work
}

// groupWork is one caller's work, with the caller's context: its values
// (who asks, from where) and whether the caller still waits. write must not
// let that context's cancellation end the shared transaction.
type groupWork[W any] struct {
	ctx  context.Context
	work W
}

// groupCall is one caller waiting for the committer.
type groupCall[W, A any] struct {
	groupWork[W]
	done chan groupAnswer[A] // buffered: the committer never blocks on it
}

// groupAnswer is the answer to one call.
type groupAnswer[A any] struct {
	val A
	err error
}

func newGroupCommitter[W, A any](name string, max func() int, size func(W) int, write func([]groupWork[W]) ([]groupAnswer[A], error)) *groupCommitter[W, A] {
	c := &groupCommitter[W, A]{name: name, max: max, size: size, write: write}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// stats returns how many groups were committed and the summed size of their
// work (their ratio is the grouping achieved).
func (c *groupCommitter[W, A]) stats() (groups, items int64) {
	return c.groups.Load(), c.items.Load()
}

func (c *groupCommitter[W, A]) sizeOf(w W) int {
	if c.size == nil {
		return 1
	}
	return c.size(w)
}

// submit queues work and returns its answer once the group holding it has
// committed (or failed), or ctx's error if ctx ends first.
func (c *groupCommitter[W, A]) submit(ctx context.Context, work W) (A, error) {
	return c.submitWithin(ctx, work, 0, nil)
}

// submitWithin is submit that refuses work at once, with full, when the work
// already queued (not yet in a running group) and this work's would weigh
// more than limit (0: no limit). Work is never refused while the queue is
// empty, so a call heavier than limit still gets through.
func (c *groupCommitter[W, A]) submitWithin(ctx context.Context, work W, limit int, full error) (A, error) {
	var zero A
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	call := &groupCall[W, A]{groupWork: groupWork[W]{ctx: ctx, work: work}, done: make(chan groupAnswer[A], 1)}
	size := c.sizeOf(work)
	c.mu.Lock()
	if limit > 0 && c.queued > 0 && c.queued+size > limit {
		c.mu.Unlock()
		return zero, full
	}
	c.queued += size
	c.queue = append(c.queue, call)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead && c.commitNext() {
		go c.loop()
	}
	select {
	case a := <-call.done:
		return a.val, a.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// wait returns when the committer has written everything queued, even work
// whose callers stopped waiting.
func (c *groupCommitter[W, A]) wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.running {
		c.idle.Wait()
	}
}

func (c *groupCommitter[W, A]) loop() {
	for c.commitNext() {
	}
}

// commitNext commits the next group. It reports whether more is queued; when
// nothing is, the committer's turn has ended.
func (c *groupCommitter[W, A]) commitNext() bool {
	limit := 0
	if c.max != nil {
		limit = c.max()
	}
	c.mu.Lock()
	n, take := 0, 0
	for take < len(c.queue) {
		s := c.sizeOf(c.queue[take].work)
		if take > 0 && limit > 0 && n+s > limit {
			break
		}
		n += s
		take++
	}
	group := slices.Clone(c.queue[:take])
	clear(c.queue[:take])
	c.queue = c.queue[take:]
	c.queued -= n
	c.mu.Unlock()
	if len(group) > 0 {
		c.commit(group)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.running = false
		c.queue = nil
		c.idle.Broadcast()
		return false
	}
	return true
}

// commit writes calls in one transaction and answers each; if it fails, each
// call is tried again alone.
func (c *groupCommitter[W, A]) commit(calls []*groupCall[W, A]) {
	live := make([]groupWork[W], 0, len(calls))
	var waiting []*groupCall[W, A]
	for _, call := range calls {
		if err := call.ctx.Err(); err != nil {
			call.done <- groupAnswer[A]{err: err}
			continue
		}
		live = append(live, call.groupWork)
		waiting = append(waiting, call)
	}
	if len(live) == 0 {
		return
	}
	answers, err := c.tryWrite(live)
	if err == nil {
		for i, call := range waiting {
			call.done <- answers[i]
		}
		return
	}
	if len(live) == 1 {
		waiting[0].done <- groupAnswer[A]{err: err}
		return
	}
	slog.Warn(c.name+": group commit failed; retrying each caller alone", "callers", len(live), "err", err)
	for i, call := range waiting {
		if answers, err := c.tryWrite(live[i : i+1]); err != nil {
			call.done <- groupAnswer[A]{err: err}
		} else {
			call.done <- answers[0]
		}
	}
}

// tryWrite runs write, counting what it committed; a panic is an error of the
// whole group (nothing of it was committed: write's transaction rolls back as
// the panic unwinds).
func (c *groupCommitter[W, A]) tryWrite(calls []groupWork[W]) (answers []groupAnswer[A], err error) {
	defer func() {
		if p := recover(); p != nil {
			slog.Error(c.name+" panicked", "panic", p)
			answers, err = nil, fmt.Errorf("%s: internal error: %v", c.name, p)
		}
		if err != nil && c.failed != nil {
			c.failed()
		}
	}()
	answers, err = c.write(calls)
	if err != nil {
		return nil, err
	}
	if len(answers) != len(calls) {
		return nil, fmt.Errorf("%s: %d answers for %d calls", c.name, len(answers), len(calls))
	}
	c.groups.Add(1)
	for _, call := range calls {
		c.items.Add(int64(c.sizeOf(call.work)))
	}
	return answers, nil
}
