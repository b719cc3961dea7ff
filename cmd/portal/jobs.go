package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// job is background work the portal repeats: consent lapses, command
// time-outs, retention. Each run is its own transaction; a failure is logged and
// retried at the next tick, never fatal.
type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

// runJobs runs every job, each under its own lease ("job " and its name):
// while this instance holds the lease, at once and then at the job's
// interval, until ctx ends. The function it returns waits for the runs in
// progress to end and the leases to be released.
func runJobs(ctx context.Context, l *leaser, jobs ...job) (wait func()) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			l.hold(ctx, "job "+j.name, func(ctx context.Context) error {
				t := time.NewTicker(j.every)
				defer t.Stop()
				for {
					if err := j.run(ctx); err != nil && ctx.Err() == nil {
						l.log.Error("background job failed", "job", j.name, "err", err)
					}
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
					}
				}
			})
		}(j)
	}
	return wg.Wait
}

// DefaultLeaseTTL is how long an instance holds a piece of background work
// without renewing it: an instance that dies has its work taken over by
// another within it and one renewal period (a third of it).
const DefaultLeaseTTL = 6 * time.Second

// leaser runs background work once across the instances sharing a database:
// a piece of work runs only while this instance holds its lease
// (doorledger.LeaseService), renewed every third of the lease's term. One
// instance alone takes every lease at its first try, so it runs everything at
// once, as a single portal always has.
type leaser struct {
	leases   doorledger.LeaseService
	instance string        // this instance's holder name
	ttl      time.Duration // a lease's term
	log      *slog.Logger
}

// newInstanceID names this run of the portal: the host and a random suffix,
// so two portals on one machine never share a name.
func newInstanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	if host == "" {
		host = "portal"
	}
	return host + "-" + hex.EncodeToString(b)
}

// hold runs work while this instance holds the named lease, until ctx ends.
// It tries for the lease at once and every renewal period; holding it, it
// starts work with a context of its own, and ends that context (waiting for
// work to return) when the lease is lost: another instance holds it, or the
// renewals failed for so long that the term may have run out. Work that
// returns while the lease is held is started again at the next renewal. When
// ctx ends, work is stopped and the lease released, so another instance takes
// it at once.
func (l *leaser) hold(ctx context.Context, name string, work func(ctx context.Context) error) {
	every := l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	var (
		cancel context.CancelFunc // ends the running work; nil when none runs
		done   chan struct{}      // closed when the running work returned
		term   time.Time          // by this process's monotonic clock: when the lease may run out
		held   bool               // the database said this instance holds it, at the last answer
	)
	stop := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel, done = nil, nil
		}
	}
	defer func() {
		stop()
		if held {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer rcancel()
			if err := l.leases.ReleaseLease(rctx, name, l.instance); err != nil {
				l.log.Warn("release lease", "lease", name, "err", err)
			}
		}
	}()
	for {
		if done != nil {
			select {
			case <-done: // work returned by itself: started again below while held
				cancel()
				cancel, done = nil, nil
			default:
			}
		}
		asked := time.Now()
		ok, until, err := l.leases.AcquireLease(ctx, name, l.instance, l.ttl)
		if err == nil && ok {
			held = true // released on return, even when ctx ends now
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			l.log.Error("renew lease", "lease", name, "err", err)
			// Keep working only while the term surely lasts past the next try.
			if held && time.Until(term) < every {
				l.log.Warn("lease may have run out: work stopped", "lease", name)
				held = false
				stop()
			}
		case ok:
			held, term = true, asked.Add(l.ttl)
			if cancel == nil {
				cancel, done = l.start(ctx, name, work)
				l.log.Debug("lease taken", "lease", name, "instance", l.instance, "until", until)
			}
		default:
			if held || cancel != nil {
				l.log.Info("lease lost to another instance: work stopped", "lease", name, "until", until)
			}
			held = false
			stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// start runs work on a goroutine of its own, with a context the returned
// function ends; done is closed when work has returned.
func (l *leaser) start(ctx context.Context, name string, work func(ctx context.Context) error) (cancel context.CancelFunc, done chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() {
		defer close(done)
		if err := work(wctx); err != nil && wctx.Err() == nil {
			l.log.Error("background work failed", "lease", name, "err", err)
		}
	}()
	return cancel, done
}
