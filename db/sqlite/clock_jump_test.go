package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// The machine's clock set an hour forward or back while the portal runs
// (issue 19, clock jump). The DB's wall clock (Now) jumps; its monotonic
// clock (Mono) does not. pass moves both: time passes.

// jumpClock drives a DB's two clocks: wall is the world's *time.Time.
type jumpClock struct {
	wall *time.Time
	mono time.Duration
}

// newJumpClock gives d a monotonic clock that moves only with pass. Call it
// before anything is recorded.
func newJumpClock(d *sqlite.DB, wall *time.Time) *jumpClock {
	c := &jumpClock{wall: wall}
	d.Mono = func() time.Duration { return c.mono }
	return c
}

// pass lets d go by: both clocks move.
func (c *jumpClock) pass(d time.Duration) { *c.wall = c.wall.Add(d); c.mono += d }

// jump sets the wall clock by d: the monotonic clock stays.
func (c *jumpClock) jump(d time.Duration) { *c.wall = c.wall.Add(d) }

// A forward jump does not time a waiting command out (no "not confirmed",
// no alert) before it has waited its time-out; a jump back does not hold
// the time-out back by an hour.
func TestClockJumpCommandTimeOut(t *testing.T) {
	for _, jump := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(jump.String(), func(t *testing.T) {
			w := newDeviceWorld(t)
			clock := newJumpClock(w.d, w.now)
			id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
			ctx := context.Background()
			if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, ""); err != nil {
				t.Fatal(err)
			}
			expired := func() int {
				t.Helper()
				if _, err := w.svc.ExpireUnconfirmed(ctx, 30*time.Second); err != nil {
					t.Fatal(err)
				}
				return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.not_confirmed'`)
			}
			clock.pass(10 * time.Second)
			clock.jump(jump)
			if n := expired(); n != 0 {
				t.Errorf("after 10 s and a jump of %s: %d commands not confirmed, want none yet", jump, n)
			}
			if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandPending {
				t.Errorf("after 10 s and a jump of %s: status %s, want pending", jump, c.Status)
			}
			clock.pass(21 * time.Second)
			if n := expired(); n != 1 {
				t.Errorf("after 31 s (and a jump of %s): %d commands not confirmed, want 1", jump, n)
			}
		})
	}
}

// A command confirmed after the clock was set back took what it took, not a
// negative time; one confirmed after a jump forward did not take an hour.
func TestClockJumpCommandLatency(t *testing.T) {
	for _, jump := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(jump.String(), func(t *testing.T) {
			w := newDeviceWorld(t)
			clock := newJumpClock(w.d, w.now)
			id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
			if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, ""); err != nil {
				t.Fatal(err)
			}
			clock.pass(700 * time.Millisecond)
			clock.jump(jump)
			clock.pass(800 * time.Millisecond)
			w.report(t, id, enabled, 1)
			c := w.mustCommand(t, id, 1)
			if got, want := c.Latency(), 1500*time.Millisecond; c.Status != doorledger.CommandConfirmed || got != want {
				t.Errorf("confirmed across a jump of %s: status %s, latency %s, want confirmed in %s", jump, c.Status, got, want)
			}
			var ms int64
			if err := w.d.Reader().QueryRow(`SELECT json_extract(detail, '$.latency_ms') FROM audit_entries WHERE action = 'command.confirmed'`).Scan(&ms); err != nil {
				t.Fatal(err)
			}
			if ms != 1500 {
				t.Errorf("journal's latency_ms = %d, want 1500", ms)
			}
		})
	}
}

// A command recorded before a restart has no monotonic reading: its
// latency is the recorded times' difference, and never negative.
func TestCommandLatencyNeverNegative(t *testing.T) {
	c := doorledger.Command{RequestedAt: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), ConfirmedAt: time.Date(2026, 12, 7, 11, 0, 1, 0, time.UTC),
		Status: doorledger.CommandConfirmed}
	if got := c.Latency(); got != 0 {
		t.Errorf("confirmed an hour before it was requested (clock set back): latency %s, want 0", got)
	}
}

// Signed heads keep their order in time when the clock is set back, and the
// next head is signed HeadEvery later, not an hour and HeadEvery later.
func TestClockJumpBackLogHeads(t *testing.T) {
	w := newLogWorld(t)
	clock := newJumpClock(w.d, w.Now)
	w.Audits(t, 2)
	first := w.Sequence(t)
	clock.pass(time.Second)
	clock.jump(-time.Hour)
	w.Audits(t, 1)
	if h := w.Sequence(t); h.At.Before(first.At) {
		t.Errorf("head of %d signed on demand dated %s, before the head of %d (%s)", h.Size, h.At, first.Size, first.At)
	}
	first = w.Sequence(t)
	w.Audits(t, 2)
	if _, err := w.log.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	if h, _ := w.log.Head(sys(), 0); h.Size != first.Size {
		t.Errorf("a head signed within the minute: size %d", h.Size)
	}
	clock.pass(time.Minute)
	if _, err := w.log.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	h, err := w.log.Head(sys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != first.Size+2 {
		t.Errorf("a minute after the clock was set back an hour: head of %d, want %d (the new head held back)", h.Size, first.Size+2)
	}
	if h.At.Before(first.At) {
		t.Errorf("head of %d dated %s, before the head of %d (%s)", h.Size, h.At, first.Size, first.At)
	}
	if v := w.Verify(t); !v.OK() {
		t.Errorf("verify after the jump: %v", v.Problem)
	}
}

// A session used after the clock was set back ends after its idle time-out
// from then, not an hour later; one used a minute before the clock was set
// forward an hour is not ended by it (the idle time-out is 2 h).
func TestClockJumpSessions(t *testing.T) {
	d, now := MustOpenDB(t)
	clock := newJumpClock(d, now)
	users := sqlite.NewUserService(d)
	u, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	back, err := users.CreateSession(ctx, u, "", "10.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	clock.pass(time.Minute)
	clock.jump(-time.Hour)
	if _, _, err := users.SessionUser(ctx, back.ID); err != nil {
		t.Fatalf("session used after the clock was set back: %v", err)
	}
	clock.pass(doorledger.SessionIdleTimeout + time.Second)
	if _, _, err := users.SessionUser(ctx, back.ID); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Errorf("session idle for %s after its last use: %v, want it ended", doorledger.SessionIdleTimeout+time.Second, err)
	}

	fwd, err := users.CreateSession(ctx, u, "", "10.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	clock.pass(time.Minute)
	clock.jump(time.Hour)
	if _, _, err := users.SessionUser(ctx, fwd.ID); err != nil {
		t.Errorf("session used a minute before the clock was set an hour forward: %v", err)
	}
}

// Setting the clock back does not lift a sign-in lock-out.
func TestClockJumpBackKeepsLoginThrottle(t *testing.T) {
	d, now := MustOpenDB(t)
	clock := newJumpClock(d, now)
	users := sqlite.NewUserService(d)
	if _, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range d.LoginAccountLimit {
		if _, err := users.Authenticate(ctx, "a@example.com", "wrong guess", "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
			t.Fatal(err)
		}
	}
	clock.pass(time.Second)
	clock.jump(-time.Hour)
	if _, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Errorf("right password after %d failures and the clock set back an hour: %v, want too_many", d.LoginAccountLimit, err)
	}
}
