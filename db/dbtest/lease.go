package dbtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var leaseTests = []test{
	{"LeaseOneHolder", testLeaseOneHolder},
	{"LeaseTakenOverWhenLapsed", testLeaseTakenOverWhenLapsed},
	{"LeaseRenewedBeforeLapse", testLeaseRenewedBeforeLapse},
	{"LeaseReleaseHandsOver", testLeaseReleaseHandsOver},
	{"LeaseRace", testLeaseRace},
	{"LeaseInvalid", testLeaseInvalid},
}

// leases returns the backend's lease service, skipping (with the reason)
// a backend that has none yet.
func leases(t *testing.T, s Services) doorledger.LeaseService {
	t.Helper()
	if s.Leases == nil {
		t.Skip("this backend has no LeaseService yet (Services.Leases is nil)")
	}
	return s.Leases
}

// mustAcquire acquires and fails t unless holder's holding it is want; it
// returns the lease's term.
func mustAcquire(t *testing.T, l doorledger.LeaseService, name, holder string, ttl time.Duration, want bool) time.Time {
	t.Helper()
	held, until, err := l.AcquireLease(context.Background(), name, holder, ttl)
	if err != nil {
		t.Fatalf("acquire %s as %s: %v", name, holder, err)
	}
	if held != want {
		t.Fatalf("acquire %s as %s: held %v, want %v", name, holder, held, want)
	}
	return until
}

// Two holders: only one holds; the other is told until when it is taken.
// Leases of different names are independent.
func testLeaseOneHolder(t *testing.T, newServices NewServices) {
	s := newServices(t)
	l := leases(t, s)
	const ttl = 5 * time.Second
	untilA := mustAcquire(t, l, "job", "a", ttl, true)
	if got, want := untilA, s.Now.Add(ttl); !got.Equal(want) {
		t.Errorf("a's term ends %v, want %v (now + ttl)", got, want)
	}
	if got := mustAcquire(t, l, "job", "b", ttl, false); !got.Equal(untilA) {
		t.Errorf("b is told the lease runs until %v, want a's term %v", got, untilA)
	}
	mustAcquire(t, l, "other job", "b", ttl, true)
	mustAcquire(t, l, "job", "a", ttl, true) // a renews; b still out
	mustAcquire(t, l, "job", "b", ttl, false)
}

// A holder that stops renewing loses the lease when its term runs out: the
// other takes it over, and the first learns on its next renewal that it lost it.
func testLeaseTakenOverWhenLapsed(t *testing.T, newServices NewServices) {
	s := newServices(t)
	l := leases(t, s)
	const ttl = 5 * time.Second
	mustAcquire(t, l, "job", "a", ttl, true)
	*s.Now = s.Now.Add(ttl - time.Millisecond)
	mustAcquire(t, l, "job", "b", ttl, false) // not yet lapsed
	*s.Now = s.Now.Add(time.Millisecond)
	untilB := mustAcquire(t, l, "job", "b", ttl, true)
	if got := mustAcquire(t, l, "job", "a", ttl, false); !got.Equal(untilB) {
		t.Errorf("a is told the lease runs until %v, want b's term %v", got, untilB)
	}
	mustAcquire(t, l, "job", "b", ttl, true)
}

// A renewal before the term runs out extends it from the renewal's time.
func testLeaseRenewedBeforeLapse(t *testing.T, newServices NewServices) {
	s := newServices(t)
	l := leases(t, s)
	const ttl = 6 * time.Second
	mustAcquire(t, l, "job", "a", ttl, true)
	for i := 0; i < 5; i++ {
		*s.Now = s.Now.Add(ttl / 3)
		if got, want := mustAcquire(t, l, "job", "a", ttl, true), s.Now.Add(ttl); !got.Equal(want) {
			t.Fatalf("renewal %d: term ends %v, want %v", i, got, want)
		}
		mustAcquire(t, l, "job", "b", ttl, false)
	}
}

// Released, the lease is free at once; a release by one who does not hold
// it changes nothing.
func testLeaseReleaseHandsOver(t *testing.T, newServices NewServices) {
	s := newServices(t)
	l := leases(t, s)
	ctx := context.Background()
	const ttl = time.Minute
	mustAcquire(t, l, "job", "a", ttl, true)
	if err := l.ReleaseLease(ctx, "job", "b"); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, l, "job", "b", ttl, false)
	if err := l.ReleaseLease(ctx, "job", "a"); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, l, "job", "b", ttl, true)
	mustAcquire(t, l, "job", "a", ttl, false)
	if err := l.ReleaseLease(ctx, "never taken", "a"); err != nil {
		t.Errorf("releasing a lease nobody holds: %v", err)
	}
}

// Many holders racing for a free lease from their own goroutines: exactly
// one wins, and every loser is told the winner's term.
func testLeaseRace(t *testing.T, newServices NewServices) {
	s := newServices(t)
	l := leases(t, s)
	const n = 8
	var wg sync.WaitGroup
	held := make([]bool, n)
	until := make([]time.Time, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i], until[i], errs[i] = l.AcquireLease(context.Background(), "job", fmt.Sprintf("holder %d", i), time.Minute)
		}()
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("holder %d: %v", i, errs[i])
		}
		if held[i] {
			winners++
		}
		if !until[i].Equal(until[0]) {
			t.Errorf("holder %d is told the term ends %v, holder 0 %v", i, until[i], until[0])
		}
	}
	if winners != 1 {
		t.Errorf("%d holders hold the lease, want 1", winners)
	}
}

func testLeaseInvalid(t *testing.T, newServices NewServices) {
	l := leases(t, newServices(t))
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Second}, {"job", "", time.Second}, {"job", "a", 0}, {"job", "a", -time.Second}} {
		if _, _, err := l.AcquireLease(context.Background(), c.name, c.holder, c.ttl); doorledger.ErrorCode(err) != doorledger.EINVALID ||
			doorledger.ErrorMessage(err) != "A lease needs a name, a holder and a term above zero." {
			t.Errorf("AcquireLease(%q, %q, %v): %v, want EINVALID", c.name, c.holder, c.ttl, err)
		}
	}
}
