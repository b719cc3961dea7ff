package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
)

// Sessions live in the database: a user signed in through one instance is
// signed in on another, and signed out there when the first ends it.
func TestSessionAcrossInstances(t *testing.T) {
	a, now := MustOpenDB(t)
	b := postgres.NewDB(a.URL)
	b.Now = func() time.Time { return *now }
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	usersA, usersB := postgres.NewUserService(a), postgres.NewUserService(b)
	u, err := usersA.CreateUser(sys(), doorledger.NewUser{Email: "m@example.com", Name: "M", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	signedIn, err := usersB.Authenticate(ctx, "m@example.com", "correct horse battery", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := usersB.CreateSession(ctx, signedIn, "", "10.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := usersA.SessionUser(ctx, s.ID)
	if err != nil || got.ID != u.ID {
		t.Fatalf("instance A reads B's session: %+v %v", got, err)
	}
	if err := usersA.EndSession(doorledger.NewContextWithUser(ctx, got), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := usersB.CheckSession(ctx, s.ID); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("instance B after A ended the session: %v", err)
	}
}
