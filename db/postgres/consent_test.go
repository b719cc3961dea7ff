package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
)

// TestConsentSignersAtOnce: the two signers a 2-of-3 request needs sign at
// the same moment, through two connections. Package sqlite had one writer,
// so the second signature always saw the first; here each transaction must
// see the other's signature, or both would find one signature of two and
// the consent would stay awaiting with its device disabled. Each round asks
// anew; every round must end signed, with the device enabled once.
func TestConsentSignersAtOnce(t *testing.T) {
	s, _ := openServices(t)
	w := dbtest.NewPolicyWorld(t, dbtest.NewConsentWorld(t, s))
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2})
	for round := 0; round < 5; round++ {
		c := w.Ask(t, "SN-AT-ONCE-"+string(rune('A'+round)), w.Paula, w.Tom)
		var ins []doorledger.SignInput
		var tokens []string
		for _, sg := range []*doorledger.Signer{w.Paula, w.Tom} {
			token := w.LastLink(t, sg.Email, "/sign/")
			in := w.SignInput(t, token)
			in.TypedName = sg.Name
			tokens, ins = append(tokens, token), append(ins, in)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = w.Consents.Sign(context.Background(), tokens[i], ins[i])
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, signer %d: %v", round, i, err)
			}
		}
		got, err := w.Consents.FindConsentByID(dbtest.As(w.Manager), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if state, _ := w.Device(t, c.DeviceID); got.Status != doorledger.ConsentSigned || state != "enabled" {
			t.Fatalf("round %d: both signed at once, consent %s, device %s (want signed, enabled)", round, got.Status, state)
		}
		if n := len(w.Journal(t, w.A.ID, "device.enable")); n != round+1 {
			t.Fatalf("round %d: %d device.enable entries, want %d", round, n, round+1)
		}
	}
}
