// Package groupcommit batches the work of concurrent callers into shared
// write transactions, for the storage backends (package sqlite and package
// postgres): unlock ingest, devices' reports. The backend supplies the
// write (begin, its SQL, commit); the committer decides what goes in which
// transaction and answers each caller.
//
// With synchronous=FULL (SQLite) or synchronous_commit (PostgreSQL) a commit
// costs an fsync; sharing it among every caller that arrived meanwhile is
// what makes durable writes fast when many callers write at once (unlock
// ingest, devices' reports during a lockdown).
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
package groupcommit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// Committer commits work W of concurrent callers in groups, answering each
// with A. Make one with New.
type Committer[W, A any] struct {
	// write writes a group's work in ONE transaction and commits it. It
	// returns an answer per call, or an error when nothing was committed.
	write func(calls []Item[W]) ([]Answer[A], error)
	// size weighs a piece of work (nil: 1 each); max bounds the summed size of
	// a group (nil or 0: no bound). A single call's work is never split.
	size func(W) int
	max  func() int
	// Failed is told when a group's write failed or panicked, before the
	// retries (nil: nothing to do). Set it before the first Submit.
	Failed func()
	name   string // for logs and errors

	mu      sync.Mutex
	queue   []*call[W, A]
	queued  int // the summed size of queue's work
	running bool
	// changed (on mu) is broadcast when the queue grows and when the
	// committer stops running (Wait waits for the latter).
	changed *sync.Cond

	groups, items atomic.Int64 // transactions committed, sizes of their work
}

// Item is one caller's work, with the caller's context: its values (who
// asks, from where) and whether the caller still waits. The write must not
// let that context's cancellation end the shared transaction.
type Item[W any] struct {
	Ctx  context.Context
	Work W
}

// Answer is the answer to one call: its value, or the error that call alone
// gets (the other calls of the group are still committed).
type Answer[A any] struct {
	Val A
	Err error
}

// call is one caller waiting for the committer.
type call[W, A any] struct {
	Item[W]
	done chan Answer[A] // buffered: the committer never blocks on it
}

// New returns a committer named name (in logs and errors) that commits
// groups with write. size weighs a piece of work (nil: 1 each); max bounds
// the summed size of a group (nil, or a result of 0: no bound), read before
// each group. A single call's work is never split.
func New[W, A any](name string, max func() int, size func(W) int, write func([]Item[W]) ([]Answer[A], error)) *Committer[W, A] {
	c := &Committer[W, A]{name: name, max: max, size: size, write: write}
	c.changed = sync.NewCond(&c.mu)
	return c
}

// Stats returns how many groups were committed and the summed size of their
// work (their ratio is the grouping achieved).
func (c *Committer[W, A]) Stats() (groups, items int64) {
	return c.groups.Load(), c.items.Load()
}

// Queued returns the summed size of the work queued and not yet in a
// running group.
func (c *Committer[W, A]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

func (c *Committer[W, A]) sizeOf(w W) int {
	if c.size == nil {
		return 1
	}
	return c.size(w)
}

// Submit queues work and returns its answer once the group holding it has
// committed (or failed), or ctx's error if ctx ends first.
func (c *Committer[W, A]) Submit(ctx context.Context, work W) (A, error) {
	return c.SubmitWithin(ctx, work, 0, nil)
}

// SubmitWithin is Submit that refuses work at once, with full, when the work
// already queued (not yet in a running group) and this work's would weigh
// more than limit (0: no limit). Work is never refused while the queue is
// empty, so a call heavier than limit still gets through.
func (c *Committer[W, A]) SubmitWithin(ctx context.Context, work W, limit int, full error) (A, error) {
	var zero A
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	cl := &call[W, A]{Item: Item[W]{Ctx: ctx, Work: work}, done: make(chan Answer[A], 1)}
	size := c.sizeOf(work)
	c.mu.Lock()
	if limit > 0 && c.queued > 0 && c.queued+size > limit {
		c.mu.Unlock()
		return zero, full
	}
	c.queued += size
	c.queue = append(c.queue, cl)
	lead := !c.running
	c.running = true
	c.changed.Broadcast()
	c.mu.Unlock()
	if lead && c.commitNext() {
		go c.loop()
	}
	select {
	case a := <-cl.done:
		return a.Val, a.Err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Wait returns when the committer has written everything queued, even work
// whose callers stopped waiting.
func (c *Committer[W, A]) Wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.running {
		c.changed.Wait()
	}
}

func (c *Committer[W, A]) loop() {
	for c.commitNext() {
	}
}

// commitNext commits the next group. It reports whether more is queued; when
// nothing is, the committer's turn has ended.
func (c *Committer[W, A]) commitNext() bool {
	limit := 0
	if c.max != nil {
		limit = c.max()
	}
	c.mu.Lock()
	n, take := 0, 0
	for take < len(c.queue) {
		s := c.sizeOf(c.queue[take].Work)
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
		c.changed.Broadcast()
		return false
	}
	return true
}

// commit writes calls in one transaction and answers each; if it fails, each
// call is tried again alone.
func (c *Committer[W, A]) commit(calls []*call[W, A]) {
	live := make([]Item[W], 0, len(calls))
	var waiting []*call[W, A]
	for _, cl := range calls {
		if err := cl.Ctx.Err(); err != nil {
			cl.done <- Answer[A]{Err: err}
			continue
		}
		live = append(live, cl.Item)
		waiting = append(waiting, cl)
	}
	if len(live) == 0 {
		return
	}
	answers, err := c.tryWrite(live)
	if err == nil {
		for i, cl := range waiting {
			cl.done <- answers[i]
		}
		return
	}
	if len(live) == 1 {
		waiting[0].done <- Answer[A]{Err: err}
		return
	}
	slog.Warn(c.name+": group commit failed; retrying each caller alone", "callers", len(live), "err", err)
	for i, cl := range waiting {
		if answers, err := c.tryWrite(live[i : i+1]); err != nil {
			cl.done <- Answer[A]{Err: err}
		} else {
			cl.done <- answers[0]
		}
	}
}

// tryWrite runs write, counting what it committed; a panic is an error of the
// whole group (nothing of it was committed: write's transaction rolls back as
// the panic unwinds).
func (c *Committer[W, A]) tryWrite(calls []Item[W]) (answers []Answer[A], err error) {
	defer func() {
		if p := recover(); p != nil {
			slog.Error(c.name+" panicked", "panic", p)
			answers, err = nil, fmt.Errorf("%s: internal error: %v", c.name, p)
		}
		if err != nil && c.Failed != nil {
			c.Failed()
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
	for _, cl := range calls {
		c.items.Add(int64(c.sizeOf(cl.Work)))
	}
	return answers, nil
}
