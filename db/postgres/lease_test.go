package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/postgres"
)

// A lease is held by one instance at a time, and taken over at once when
// its holder's session ends (the instance died) or it is released.
func TestLeaseOnceAcrossInstances(t *testing.T) {
	a, _ := MustOpenDB(t)
	b := postgres.NewDB(a.URL)
	ctx := context.Background()
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, ok, err := a.TryLease(ctx, "mail")
	if err != nil || !ok || !la.Held(ctx) {
		t.Fatalf("A takes the free lease: %v %v", ok, err)
	}
	if _, ok, err := b.TryLease(ctx, "mail"); err != nil || ok {
		t.Fatalf("B takes A's lease: %v %v", ok, err)
	}
	if _, ok, err := b.TryLease(ctx, "reports"); err != nil || !ok {
		t.Fatalf("B takes another lease: %v %v", ok, err)
	}
	// A dies: the server ends its lease's session.
	var ended bool
	if err := b.Pool().QueryRow(ctx, `SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		postgres.LeaseApplicationName("mail")).Scan(&ended); err != nil || !ended {
		t.Fatalf("terminate A's lease session: %v %v", ended, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var taken *postgres.Lease
	for taken == nil {
		l, ok, err := b.TryLease(ctx, "mail")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			taken = l
		} else if time.Now().After(deadline) {
			t.Fatal("B did not take over the dead instance's lease within 10 s")
		}
	}
	if la.Held(ctx) {
		t.Error("A's ended session still says it holds the lease")
	}
	la.Release()
	if err := taken.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.TryLease(ctx, "mail"); err != nil || !ok {
		t.Fatalf("A takes the released lease: %v %v", ok, err)
	}
	// Closing B lets its leases go.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The server ends B's sessions after the connections close, not with
	// them: A may have to ask again (once, in CI's run at load 10).
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, ok, err := a.TryLease(ctx, "reports")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A did not take the lease of a closed B within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
