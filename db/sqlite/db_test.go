package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// MustOpenDB opens a database on a real file under tb.TempDir() (never
// :memory:, where each pooled connection would get its own empty database),
// with a fixed, movable clock.
func MustOpenDB(tb testing.TB) (*sqlite.DB, *time.Time) {
	tb.Helper()
	d := sqlite.NewDB(filepath.Join(tb.TempDir(), "test.db"))
	d.PasswordCost = 4
	// Start from the real time: the database's triggers compare consent expiry
	// with SQLite's own clock.
	now := time.Now().UTC().Truncate(time.Second)
	d.Now = func() time.Time { return now }
	// Moving this clock means time passes: the monotonic clock follows it
	// (a clock jump moves Now alone; see clock_jump_test.go).
	start := now
	d.Mono = func() time.Duration { return now.Sub(start) }
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d, &now
}

func sys() context.Context { return doorledger.NewSystemContext(context.Background(), "test") }

func TestAuditJournalRefusesUpdateAndDelete(t *testing.T) {
	d, _ := MustOpenDB(t)
	if _, err := sqlite.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "A", Address: "1 A St", Timezone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_entries SET actor = 'someone else'`,
		`DELETE FROM audit_entries`,
	} {
		_, err := d.Writer().Exec(stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the trigger to refuse", stmt, err)
		}
	}
	entries, err := sqlite.NewAuditService(d).FindAuditEntries(sys(), doorledger.AuditFilter{})
	if err != nil || len(entries) != 1 || entries[0].Actor != "test" || entries[0].Action != "building.create" {
		t.Fatalf("journal after refused edits: %+v %v", entries, err)
	}
}
