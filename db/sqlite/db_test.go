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

func TestSessionLifetime(t *testing.T) {
	d, now := MustOpenDB(t)
	users := sqlite.NewUserService(d)
	u, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := users.CreateSession(ctx, u, "", "127.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	// Used every hour, it lives until its absolute lifetime.
	for i := 0; i < 11; i++ {
		*now = now.Add(time.Hour)
		if _, _, err := users.SessionUser(ctx, s.ID); err != nil {
			t.Fatalf("after %d h: %v", i+1, err)
		}
	}
	*now = now.Add(time.Hour + time.Second)
	if _, _, err := users.SessionUser(ctx, s.ID); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("past max age: %v, want EUNAUTHORIZED", err)
	}
	// Unused past the idle timeout, it ends.
	s2, _ := users.CreateSession(ctx, u, "", "127.0.0.1", "test")
	*now = now.Add(doorledger.SessionIdleTimeout + time.Second)
	if _, _, err := users.SessionUser(ctx, s2.ID); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("past idle timeout: %v, want EUNAUTHORIZED", err)
	}
}

func TestLoginThrottleLiftsAfterWindow(t *testing.T) {
	d, now := MustOpenDB(t)
	users := sqlite.NewUserService(d)
	if _, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := users.Authenticate(ctx, "a@example.com", "wrong", "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		*now = now.Add(time.Second)
	}
	_, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.2")
	if doorledger.ErrorCode(err) != doorledger.ETOOMANY || !strings.Contains(doorledger.ErrorMessage(err), "Try again in 14m5") {
		t.Fatalf("locked: %v", err)
	}
	*now = now.Add(doorledger.LoginWindow)
	if _, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.2"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestValidationMessages(t *testing.T) {
	d, _ := MustOpenDB(t)
	users := sqlite.NewUserService(d)
	_, err := users.CreateUser(sys(), doorledger.NewUser{Email: "not an email", Name: "", Role: "root", Password: "short"})
	fields := doorledger.ErrorFields(err)
	for _, f := range []string{"email", "name", "role", "password"} {
		if fields[f] == "" {
			t.Errorf("no message for %s: %v", f, err)
		}
	}
	if _, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	_, err = users.CreateUser(sys(), doorledger.NewUser{Email: "A@Example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("duplicate email: %v, want ECONFLICT", err)
	}
}
