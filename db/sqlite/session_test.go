package sqlite_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// The database keeps only a hash of a session's id: a copy of it yields no
// live session, neither by the id (absent) nor by what is stored.
func TestSessionIDStoredHashed(t *testing.T) {
	d, _ := MustOpenDB(t)
	users := sqlite.NewUserService(d)
	u, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := users.CreateSession(context.Background(), u, "", "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := d.Reader().QueryRow(`SELECT id_hash FROM sessions WHERE user_id = ?`, u.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == s.ID || stored != sqlite.HashToken(s.ID) {
		t.Fatalf("stored %q for session id %q: want its SHA-256, not the id", stored, s.ID)
	}
	var n int
	if err := d.Reader().QueryRow(`SELECT count(*) FROM sessions WHERE instr(id_hash || ip || user_agent, ?) > 0`, s.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the session id appears in %d rows (%v)", n, err)
	}
	if _, _, err := users.SessionUser(context.Background(), stored); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("signing in with the stored hash: %v, want EUNAUTHORIZED", err)
	}
}
