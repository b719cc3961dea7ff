package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/internal/twofactor"
)

// A code is good once with several instances checking it at once: tries of
// one TOTP code, then of one recovery code, sent together to two instances
// (each its own pool) over several connections, succeed exactly once; the
// rest are wrong codes, counted and journaled as such.
func TestSecondFactorSingleUseConcurrent(t *testing.T) {
	a, now := MustOpenDB(t)
	b := openInstance(t, a, now)
	for _, d := range []*postgres.DB{a, b} {
		if err := d.SetSealKey(sealKey); err != nil {
			t.Fatal(err)
		}
		// Every try below may fail without the throttle getting in the way.
		d.LoginAccountLimit, d.LoginIPLimit = 100, 100
	}
	u, err := postgres.NewUserService(a).CreateUser(sys(), doorledger.NewUser{Email: "m@example.com", Name: "M", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	me := doorledger.NewContextWithUser(context.Background(), u)
	instances := []*postgres.SecondFactorService{postgres.NewSecondFactorService(a), postgres.NewSecondFactorService(b)}
	setup, err := instances[0].StartTOTP(me)
	if err != nil {
		t.Fatal(err)
	}
	codeAt := func(t time.Time) string {
		c, err := twofactor.CodeAt(setup.Secret, t)
		if err != nil {
			panic(err)
		}
		return c
	}
	recovery, err := instances[1].ConfirmTOTP(me, codeAt(*now), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(30 * time.Second) // the confirming step is spent

	const tries = 12
	race := func(code string) (wins int, kinds []doorledger.SecondFactorKind) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				kind, err := instances[i%2].VerifySecondFactor(context.Background(), u.ID, code, fmt.Sprintf("192.0.2.%d", 10+i))
				mu.Lock()
				defer mu.Unlock()
				switch doorledger.ErrorCode(err) {
				case "":
					wins++
					kinds = append(kinds, kind)
				case doorledger.EUNAUTHORIZED:
				default:
					t.Errorf("try %d: %v", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		return wins, kinds
	}
	if wins, kinds := race(codeAt(*now)); wins != 1 || kinds[0] != doorledger.FactorTOTP {
		t.Errorf("one TOTP code tried %d times at once: %d successes (%v), want 1", tries, wins, kinds)
	}
	if wins, kinds := race(recovery[0]); wins != 1 || kinds[0] != doorledger.FactorRecovery {
		t.Errorf("one recovery code tried %d times at once: %d successes (%v), want 1", tries, wins, kinds)
	}

	f, err := instances[0].SecondFactors(me, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.RecoveryLeft != doorledger.RecoveryCodeCount-1 {
		t.Errorf("recovery codes left = %d, want %d", f.RecoveryLeft, doorledger.RecoveryCodeCount-1)
	}
	var used, failed, attempts, oks int
	if err := a.Pool().QueryRow(context.Background(), `SELECT
		(SELECT COUNT(*) FROM audit_entries WHERE action IN ('user.2fa_used', 'user.2fa_recovery')),
		(SELECT COUNT(*) FROM audit_entries WHERE action = 'user.2fa_failed'),
		(SELECT COUNT(*) FROM second_factor_attempts),
		(SELECT COUNT(*) FROM second_factor_attempts WHERE ok)`).Scan(&used, &failed, &attempts, &oks); err != nil {
		t.Fatal(err)
	}
	// The confirmation is an attempt too.
	if used != 2 || failed != 2*(tries-1) || attempts != 2*tries+1 || oks != 3 {
		t.Errorf("journal: %d uses, %d failures; attempts: %d (%d ok); want 2, %d; %d (3 ok)", used, failed, attempts, oks, 2*(tries-1), 2*tries+1)
	}
}
