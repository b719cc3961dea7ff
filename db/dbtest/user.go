package dbtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var userTests = []test{
	{"SessionLifetime", testSessionLifetime},
	{"LoginThrottleLiftsAfterWindow", testLoginThrottleLiftsAfterWindow},
	{"ValidationMessages", testValidationMessages},
	{"LongPasswords", testLongPasswords},
	{"LoginSuccessResetsAccountCount", testLoginSuccessResetsAccountCount},
}

func testSessionLifetime(t *testing.T, newServices NewServices) {
	services := newServices(t)
	now := services.Now
	users := services.Users
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

func testLoginThrottleLiftsAfterWindow(t *testing.T, newServices NewServices) {
	services := newServices(t)
	now := services.Now
	users := services.Users
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

func testValidationMessages(t *testing.T, newServices NewServices) {
	services := newServices(t)
	users := services.Users
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

// Passwords past bcrypt's 72 bytes (up to 256 characters) are
// accepted and every byte of them counts; they gave a 500 before, as bcrypt
// refuses to hash them.
func testLongPasswords(t *testing.T, newServices NewServices) {
	services := newServices(t)
	users := services.Users
	long := strings.Repeat("żółw idzie ", 10) // 110 characters, 140 bytes
	u, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: long})
	if err != nil {
		t.Fatalf("create with a %d-byte password: %v", len(long), err)
	}
	ctx := context.Background()
	if _, err := users.Authenticate(ctx, "a@example.com", long, "10.0.0.1"); err != nil {
		t.Fatalf("sign in with the %d-byte password: %v", len(long), err)
	}
	// A password equal to it in its first 72 bytes is another password.
	if _, err := users.Authenticate(ctx, "a@example.com", long[:100]+"x"+long[101:], "10.0.0.1"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("sign in with byte 100 changed: %v, want EUNAUTHORIZED", err)
	}
	// Change it, proving the long one, to the longest allowed.
	longest := strings.Repeat("ł", 256) // 512 bytes
	self := doorledger.NewContextWithUser(ctx, u)
	if err := users.SetPassword(self, u.ID, long, longest); err != nil {
		t.Fatalf("set a %d-character password: %v", 256, err)
	}
	if _, err := users.Authenticate(ctx, "a@example.com", longest, "10.0.0.1"); err != nil {
		t.Fatalf("sign in with the %d-byte password: %v", len(longest), err)
	}
	err = users.SetPassword(self, u.ID, longest, longest+"ł")
	if fields := doorledger.ErrorFields(err); fields["password"] != "Use at most 256 characters." {
		t.Fatalf("257 characters: %v, want a message on the password field", err)
	}
}

// A success ends the count of the account's failures before it.
func testLoginSuccessResetsAccountCount(t *testing.T, newServices NewServices) {
	services := newServices(t)
	users := services.Users
	if _, err := users.CreateUser(sys(), doorledger.NewUser{Email: "a@example.com", Name: "A", Role: doorledger.RoleBoard, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fail := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := users.Authenticate(ctx, "a@example.com", "wrong", "10.0.0."+string(rune('1'+i%8))); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
	}
	fail(9)
	if _, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.9"); err != nil {
		t.Fatalf("success after 9 failures: %v", err)
	}
	fail(9) // within the same second as the ones before the success
	if _, err := users.Authenticate(ctx, "a@example.com", "correct horse battery", "10.0.0.9"); err != nil {
		t.Fatalf("success after 9 more failures: %v", err)
	}
}
