package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/postgres"
)

// TestMigrations: every migration applied and recorded once; opening again
// applies nothing.
func TestMigrations(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	var n int
	if err := db.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("%d migrations recorded, want at least 8", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Open(ctx); err != nil {
		t.Fatalf("open again: %v", err)
	}
	var again int
	if err := db.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM migrations`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if again != n {
		t.Fatalf("%d migrations recorded after opening again, want %d", again, n)
	}
}

// A database that takes writes is writable; one set read-only (as a
// standby is) is not.
func TestWritable(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	if err := db.Writable(ctx); err != nil {
		t.Fatalf("writable database: %v", err)
	}
	if _, err := db.Pool().Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	db.Pool().Reset() // new connections read the setting
	if err := db.Writable(ctx); err == nil {
		t.Fatal("a read-only database said writable")
	}
}

// BenchmarkNewDatabase measures what each test pays for its database: a
// copy of the migrated template (dropped at the end).
//
//	go test ./db/postgres -run '^$' -bench NewDatabase -benchtime 20x -v
func BenchmarkNewDatabase(b *testing.B) {
	for range b.N {
		cluster.Database(b)
	}
	b.Logf("cluster started in %v, template migrated in %v, a database made in %v on average",
		cluster.Started.Round(time.Millisecond), cluster.Migrated.Round(time.Millisecond), cluster.PerDatabase().Round(time.Millisecond))
}

// Instances started together on an empty database apply each migration
// once: the first takes the migrations' advisory lock, the others wait and
// find them recorded.
func TestMigrateConcurrently(t *testing.T) {
	url := cluster.EmptyDatabase(t)
	ctx := context.Background()
	errs := make(chan error, 3)
	dbs := make([]*postgres.DB, 3)
	for i := range dbs {
		dbs[i] = postgres.NewDB(url)
		go func() { errs <- dbs[i].Open(ctx) }()
	}
	for range dbs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, d := range dbs {
			d.Close()
		}
	}()
	var n, distinct int
	if err := dbs[0].Pool().QueryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT name) FROM migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n < 8 || n != distinct {
		t.Fatalf("%d migrations recorded (%d distinct), want each of at least 8 once", n, distinct)
	}
}
