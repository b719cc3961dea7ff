package sqlite_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// An authenticator app's secret is sealed at rest under the seal key: the
// database file does not hold it, and it does not open under another key.
func TestTOTPSecretSealedAtRest(t *testing.T) {
	d, _ := MustOpenDB(t)
	if err := d.SetSealKey(sealKey); err != nil {
		t.Fatal(err)
	}
	u, err := sqlite.NewUserService(d).CreateUser(doorledger.NewSystemContext(context.Background(), "test"),
		doorledger.NewUser{Email: "m@example.com", Name: "M", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	sf := sqlite.NewSecondFactorService(d)
	ctx := doorledger.NewContextWithUser(context.Background(), u)
	setup, err := sf.StartTOTP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := d.Reader().QueryRow(`SELECT secret_sealed FROM user_totp WHERE user_id = ?`, u.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(setup.Secret)) {
		t.Fatalf("the stored secret %q holds the secret in the clear", sealed)
	}
	if got, err := sf.PendingTOTP(ctx); err != nil || got.Secret != setup.Secret {
		t.Fatalf("pending under the same key: %v, %v", got, err)
	}
	if err := d.SetSealKey(bytes.Repeat([]byte{9}, sqlite.SealKeySize)); err != nil {
		t.Fatal(err)
	}
	if got, err := sf.PendingTOTP(ctx); err == nil {
		t.Fatalf("pending under another key: %+v, want an error", got)
	}
}
