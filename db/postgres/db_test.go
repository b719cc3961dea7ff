package postgres_test

import (
	"context"
	"testing"
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
