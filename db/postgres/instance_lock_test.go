package postgres_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger/db/postgres"
)

// Portals on an external broker share the database; one with the embedded
// broker runs alone, whichever starts first; a lock is free again once its
// portal closes the database.
func TestLockInstances(t *testing.T) {
	first, _ := MustOpenDB(t)
	open := func() *postgres.DB {
		db := postgres.NewDB(first.URL)
		if err := db.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	ctx := context.Background()
	lock := func(db *postgres.DB, shared, want bool) {
		t.Helper()
		if ok, err := db.LockInstances(ctx, shared); err != nil || ok != want {
			t.Fatalf("LockInstances(shared %v) = %v, %v; want %v", shared, ok, err, want)
		}
	}
	lock(first, true, true)
	second := open()
	lock(second, true, true)   // a second instance on the external broker
	lock(open(), false, false) // one with the embedded broker beside them
	first.Close()
	second.Close()
	embedded := open()
	lock(embedded, false, true) // alone now
	lock(open(), true, false)   // no instance beside it
	lock(open(), false, false)
	embedded.Close()
	lock(open(), true, true)
}
