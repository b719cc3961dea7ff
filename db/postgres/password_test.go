package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
	"golang.org/x/crypto/bcrypt"
)

// Hashes made before long passwords were pre-hashed (bcrypt of the password
// itself, up to 72 bytes), as a copy from SQLite may hold, still verify.
func TestHashesBeforePreHashStillVerify(t *testing.T) {
	d, _ := MustOpenDB(t)
	users := postgres.NewUserService(d)
	for i, pw := range []string{"correct horse battery", strings.Repeat("x", 72), strings.Repeat("ż", 36)} {
		email := strings.Repeat("a", i+1) + "@example.com"
		u, err := users.CreateUser(sys(), doorledger.NewUser{Email: email, Name: "A", Role: doorledger.RoleBoard, Password: "placeholder password"})
		if err != nil {
			t.Fatal(err)
		}
		old, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Pool().Exec(context.Background(), `UPDATE users SET password_hash = $1 WHERE id = $2`, string(old), u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := users.Authenticate(context.Background(), email, pw, "10.0.0.1"); err != nil {
			t.Errorf("%d-byte password hashed the old way: %v", len(pw), err)
		}
	}
}

// Parallel guesses count one by one on PostgreSQL too, where transactions
// run side by side (SQLite has its one writer): the attempt is recorded
// before bcrypt runs, in a transaction holding the account's and the IP's
// advisory locks, so after 8 failures, of 30 guesses sent at once (over as
// many connections) only 2 are checked and the rest refused.
func TestParallelGuessesAreCounted(t *testing.T) {
	d, _ := MustOpenDB(t)
	d.PasswordCost = 8 // a real cost: the time bcrypt takes is the race's window
	users := postgres.NewUserService(d)
	if _, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 8 {
		if _, err := users.Authenticate(ctx, "a@example.com", "wrong guess", "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	start := make(chan struct{})
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := users.Authenticate(ctx, "a@example.com", "guess "+string(rune('a'+i)), "10.0.0.1")
			mu.Lock()
			got[doorledger.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if got[doorledger.EUNAUTHORIZED] != 2 || got[doorledger.ETOOMANY] != 28 {
		t.Fatalf("30 guesses at once after 8 failures: %v; want 2 checked (unauthorized) and 28 refused (too_many)", got)
	}
	if _, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("right password after 10 failures: %v, want too_many", err)
	}
}
