package postgres_test

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/internal/pgtest"
)

// cluster is the package's throw-away PostgreSQL cluster; its template
// database holds every migration, so each test's database starts migrated.
var cluster = pgtest.Cluster{Template: func(ctx context.Context, url string) error {
	db := postgres.NewDB(url)
	if err := db.Open(ctx); err != nil {
		return err
	}
	return db.Close()
}}

// TestMain runs the package on its cluster, durable (fsync on) when
// benchmarks run, so that a commit costs what it costs in service; tests
// run with fsync off (issue 15).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		cluster.Durable = true
	}
	os.Exit(cluster.Main(m))
}

// MustOpenDB opens a fresh, migrated database of its own for the test, with
// a fixed, movable clock and passwords hashed at the lowest cost.
func MustOpenDB(tb testing.TB) (*postgres.DB, *time.Time) {
	tb.Helper()
	d := postgres.NewDB(cluster.Database(tb))
	d.PasswordCost = 4
	// Start from the real time: the triggers compare consent expiry and
	// retention with PostgreSQL's own clock.
	now := time.Now().UTC().Truncate(time.Second)
	d.Now = func() time.Time { return now }
	// Moving this clock means time passes: the monotonic clock follows it.
	start := now
	d.Mono = func() time.Duration { return now.Sub(start) }
	if err := d.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d, &now
}

func sys() context.Context { return doorledger.NewSystemContext(context.Background(), "test") }
