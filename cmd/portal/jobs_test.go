package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// instance is one portal's job runner on a database shared with others: a
// database handle of its own on the shared file, as a second process has.
type instance struct {
	name   string
	runs   atomic.Int64 // runs of the test's job by this instance
	cancel context.CancelFunc
	wait   func()
}

// openShared opens the SQLite file at path as one more instance does.
func openShared(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	d := sqlite.NewDB(path)
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// noRelease is a lease service whose holder never releases: an instance
// killed (SIGKILL, power cut) leaves its leases to run out.
type noRelease struct{ doorledger.LeaseService }

func (noRelease) ReleaseLease(context.Context, string, string) error { return nil }

// startInstance runs runJobs with one job, every 10 ms, that counts its runs
// by this instance and fails the test if another instance's run overlaps.
func startInstance(t *testing.T, path, name string, ttl time.Duration, dies bool, inflight *atomic.Int64) *instance {
	t.Helper()
	var leases doorledger.LeaseService = sqlite.NewLeaseService(openShared(t, path))
	if dies {
		leases = noRelease{leases}
	}
	in := &instance{name: name}
	l := &leaser{leases: leases, instance: name, ttl: ttl, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.wait = runJobs(ctx, l, job{name: "count", every: 10 * time.Millisecond, run: func(ctx context.Context) error {
		if n := inflight.Add(1); n > 1 {
			t.Errorf("%s runs the job while another instance runs it (%d at once)", name, n)
		}
		in.runs.Add(1)
		inflight.Add(-1)
		return nil
	}})
	t.Cleanup(func() { cancel(); in.wait() })
	return in
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two instances on one database run a job: one at a time. The one running it
// is killed (stopped without releasing its lease); the other takes it over
// once the lease has lapsed, within its term and one renewal period (the
// bound checked is generous: the machine is shared).
func TestJobsRunOnceAcrossInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorledger.db")
	openShared(t, path) // migrated once, before the instances race
	const ttl = 600 * time.Millisecond
	var inflight atomic.Int64
	a := startInstance(t, path, "a", ttl, true, &inflight)
	b := startInstance(t, path, "b", ttl, true, &inflight)

	waitFor(t, 10*time.Second, "the job runs 30 times", func() bool { return a.runs.Load()+b.runs.Load() >= 30 })
	holder, other := a, b
	if b.runs.Load() > 0 {
		holder, other = b, a
	}
	if n := other.runs.Load(); n != 0 {
		t.Fatalf("both instances ran the job (%s %d times, %s %d times), want one", holder.name, holder.runs.Load(), other.name, n)
	}

	holder.cancel() // killed: its lease is not released
	holder.wait()
	stopped := holder.runs.Load()
	waitFor(t, 10*ttl, other.name+" takes the job over", func() bool { return other.runs.Load() > 0 })
	waitFor(t, 10*time.Second, other.name+" runs the job on", func() bool { return other.runs.Load() >= 10 })
	if got := holder.runs.Load(); got != stopped {
		t.Errorf("%s ran the job %d times after it stopped", holder.name, got-stopped)
	}
}

// An instance that stops cleanly releases its leases: another takes the job
// over at its next try, without waiting for the lease to run out.
func TestJobsHandedOverAtCleanStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorledger.db")
	d := openShared(t, path)
	const ttl = 900 * time.Millisecond
	var inflight atomic.Int64
	a := startInstance(t, path, "a", ttl, false, &inflight)
	waitFor(t, 10*time.Second, "a runs the job", func() bool { return a.runs.Load() > 0 })
	b := startInstance(t, path, "b", ttl, false, &inflight)
	a.cancel()
	a.wait()
	var holder string
	switch err := d.Reader().QueryRow(`SELECT holder FROM leases WHERE name = 'job count'`).Scan(&holder); {
	case err == nil && holder == "a":
		t.Fatal("a stopped and still holds the job's lease")
	case err != nil && err != sql.ErrNoRows:
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b takes the job over", func() bool { return b.runs.Load() > 0 })
}

// One instance alone runs every job at once at start, as a single portal
// always has: it takes the lease at its first try, not at a renewal.
func TestJobsSingleInstanceRunsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorledger.db")
	var inflight atomic.Int64
	a := startInstance(t, path, "a", time.Hour, false, &inflight) // renewals 20 min apart
	waitFor(t, 10*time.Second, "the job runs", func() bool { return a.runs.Load() > 0 })
}

// A lease lost to another instance stops the work it guards, and the work is
// started again when the lease comes back.
func TestLeaserStopsWorkWhenLeaseLost(t *testing.T) {
	d := openShared(t, filepath.Join(t.TempDir(), "doorledger.db"))
	leases := sqlite.NewLeaseService(d)
	l := &leaser{leases: leases, instance: "a", ttl: 300 * time.Millisecond, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var mu sync.Mutex
	running, starts := false, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.hold(ctx, "work", func(ctx context.Context) error {
			mu.Lock()
			running, starts = true, starts+1
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			running = false
			mu.Unlock()
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	state := func(wantRunning bool, wantStarts int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return running == wantRunning && starts == wantStarts }
	}
	waitFor(t, 10*time.Second, "work starts", state(true, 1))
	// Another instance takes the lease (as if a's had lapsed): a's work stops
	// at a's next renewal, which tells it it lost the lease.
	if _, err := d.Writer().Exec(`UPDATE leases SET holder = 'b', until = '9999-01-01T00:00:00.000000Z' WHERE name = 'work'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "work stops", state(false, 1))
	if err := leases.ReleaseLease(context.Background(), "work", "b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "work starts again", state(true, 2))
}
