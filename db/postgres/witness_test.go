package postgres_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// TestWitnessTablesAppendOnly: cosignatures and refusals are never changed
// nor deleted, whatever writes the tables.
func TestWitnessTablesAppendOnly(t *testing.T) {
	s, d := openServices(t)
	w := dbtest.NewWitnessWorld(t, s)
	w.Grow(t, 3)
	w.Run(t)
	ctx := context.Background()
	exec := func(query string, args ...any) error {
		_, err := d.Pool().Exec(ctx, query, args...)
		return err
	}
	var n int
	if err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM witness_cosignatures`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("cosignatures: %d (%v), want 2", n, err)
	}
	if err := exec(`INSERT INTO witness_refusals (witness_id, size, status, reason, security, at) VALUES ($1, 3, 422, 'x', true, now())`, w.WA.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ query, message string }{
		{`DELETE FROM witness_cosignatures`, "witness cosignatures are append-only"},
		{`UPDATE witness_cosignatures SET line = 'x'`, "witness cosignatures are append-only"},
		{`TRUNCATE witness_cosignatures`, "witness cosignatures are append-only"},
		{`UPDATE witness_refusals SET reason = 'y'`, "witness refusals are append-only"},
		{`DELETE FROM witness_refusals`, "witness refusals are append-only"},
		{`TRUNCATE witness_refusals`, "witness refusals are append-only"},
	} {
		if err := exec(c.query); !postgres.IsRefusal(err, c.message) {
			t.Errorf("%s: %v, want the refusal %q", c.query, err, c.message)
		}
	}
}
