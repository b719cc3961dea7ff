package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

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

// atOnce runs f n times at the same moment and returns each call's error.
func atOnce(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// TestConsentExpiryAndResendAtOnce: two instances' reminder jobs run at
// the same moment over the same expired requests, then the installer and a
// manager send one of them again at the same moment. Each request expires
// once (one expiry mail to the installer), and is sent again once: the
// other resend is refused.
func TestConsentExpiryAndResendAtOnce(t *testing.T) {
	s, _ := openServices(t)
	w := dbtest.NewConsentWorld(t, s)
	var ids []int64
	for _, serial := range []string{"SN-EXP-1", "SN-EXP-2", "SN-EXP-3"} {
		c, err := w.Consents.RequestConsent(dbtest.As(w.Inst), w.A.ID, dbtest.Request(serial, w.Signer.ID))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	*w.Now = w.Now.Add(time.Duration(doorledger.DefaultExpiryDays)*24*time.Hour + time.Minute)
	expired := make([]int, 2)
	for i, err := range atOnce(2, func(i int) (err error) {
		expired[i], _, err = w.Consents.RemindAndExpire(context.Background())
		return err
	}) {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if expired[0]+expired[1] != len(ids) {
		t.Fatalf("the two jobs expired %d and %d requests, want %d in all", expired[0], expired[1], len(ids))
	}
	if n := len(w.Mail(t, "inst@example.com", "expired unsigned")); n != len(ids) {
		t.Fatalf("%d expiry mails to the installer, want %d", n, len(ids))
	}
	callers := []context.Context{dbtest.As(w.Inst), dbtest.As(w.Manager)}
	errs := atOnce(2, func(i int) error {
		_, err := w.Consents.ResendRequest(callers[i], ids[0])
		return err
	})
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two resends at once: %v, %v (want one sent, one refused)", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && doorledger.ErrorCode(err) != doorledger.ECONFLICT {
			t.Fatalf("refused resend: %v, want ECONFLICT", err)
		}
	}
}
