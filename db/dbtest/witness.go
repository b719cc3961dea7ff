package dbtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/witness"
)

var witnessTests = []test{
	{"WitnessSubmission", testWitnessSubmission},
	{"WitnessConflictIsRoutine", testWitnessConflictIsRoutine},
	{"WitnessAdminInput", testWitnessAdminInput},
}

// TestWitness is a witness in its own state directory behind an HTTP
// server that can be taken down (503) and brought back.
type TestWitness struct {
	*witness.Witness
	Srv  *httptest.Server
	Down atomic.Bool
}

// NewTestWitness starts a witness that follows the log of logKey.
func NewTestWitness(tb testing.TB, name, logKey string) *TestWitness {
	tb.Helper()
	w, err := witness.Open(tb.TempDir(), name, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Follow(logKey); err != nil {
		tb.Fatal(err)
	}
	tw := &TestWitness{Witness: w}
	tw.Srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if tw.Down.Load() {
			http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.ServeHTTP(rw, r)
	}))
	tb.Cleanup(tw.Srv.Close)
	return tw
}

// WitnessWorld is the log world with a submitter and two witnesses
// configured under the policy 2 of 2.
type WitnessWorld struct {
	*LogWorld
	Sub    *witness.Submitter
	A, B   *TestWitness
	WA, WB *doorledger.Witness
}

// NewWitnessWorld builds the witness world on s.
func NewWitnessWorld(tb testing.TB, s Services) *WitnessWorld {
	tb.Helper()
	w := &WitnessWorld{LogWorld: NewLogWorld(tb, s)}
	w.Sub = &witness.Submitter{Log: s.Logs, Witnesses: s.Witnesses, HTTP: http.DefaultClient}
	w.A = NewTestWitness(tb, "alice-witness", s.Logs.VerifierKey())
	w.B = NewTestWitness(tb, "bob-witness", s.Logs.VerifierKey())
	var err error
	if w.WA, err = s.Witnesses.AddWitness(sys(), doorledger.WitnessInput{Name: "Alice", URL: w.A.Srv.URL, VerifierKey: w.A.VerifierKey()}); err != nil {
		tb.Fatal(err)
	}
	if w.WB, err = s.Witnesses.AddWitness(sys(), doorledger.WitnessInput{Name: "Bob", URL: w.B.Srv.URL, VerifierKey: w.B.VerifierKey()}); err != nil {
		tb.Fatal(err)
	}
	if err := s.Witnesses.SetWitnessPolicy(sys(), 2); err != nil {
		tb.Fatal(err)
	}
	return w
}

// Grow appends entries and signs a head of the new size.
func (w *WitnessWorld) Grow(tb testing.TB, n int) *doorledger.LogHead {
	tb.Helper()
	w.Audits(tb, n)
	h, err := w.Logs.SignHead(sys())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// Run makes one pass of the submitter.
func (w *WitnessWorld) Run(tb testing.TB) {
	tb.Helper()
	if err := w.Sub.Run(sys()); err != nil {
		tb.Fatal(err)
	}
}

// Witnessed returns the latest witnessed head.
func (w *WitnessWorld) Witnessed(tb testing.TB) *doorledger.WitnessedHead {
	tb.Helper()
	h, err := w.Witnesses.LatestWitnessed(sys(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// State returns the witness id as listed.
func (w *WitnessWorld) State(tb testing.TB, id int64) *doorledger.Witness {
	tb.Helper()
	list, err := w.Witnesses.Witnesses(sys())
	if err != nil {
		tb.Fatal(err)
	}
	for _, x := range list {
		if x.ID == id {
			return x
		}
	}
	tb.Fatalf("witness %d not listed", id)
	return nil
}

// TestWitnessSubmission: both witnesses cosign; one down backs off and the
// head that meets 2 of 2 stays the older one until it returns and catches
// up with a consistency proof from what it last cosigned.
func testWitnessSubmission(t *testing.T, newServices NewServices) {
	w := NewWitnessWorld(t, newServices(t))
	first := w.Grow(t, 5)
	w.Run(t)
	got := w.Witnessed(t)
	if got.Head == nil || got.Head.Size != first.Size || len(got.Cosignatures) != 2 || got.Policy != (doorledger.WitnessPolicy{K: 2, N: 2}) {
		t.Fatalf("after the first pass: %+v, want head %d cosigned by 2 of 2", got, first.Size)
	}
	for _, c := range got.Cosignatures {
		v, err := witness.ParseVerifierKey(c.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := witness.CheckCosignature(v, got.Head.Note, c.Line); err != nil {
			t.Errorf("stored cosignature of %s: %v", c.Witness, err)
		}
	}

	// Bob is down.
	w.B.Down.Store(true)
	second := w.Grow(t, 4)
	w.Run(t)
	if got := w.Witnessed(t); got.Head.Size != first.Size {
		t.Fatalf("with Bob down the witnessed head is %d, want still %d", got.Head.Size, first.Size)
	}
	bob := w.State(t, w.WB.ID)
	if bob.Cosigned != first.Size || bob.Failures != 1 || !strings.Contains(bob.LastError, "503") || !bob.NextAttempt.After(*w.Now) || bob.Alarm != nil {
		t.Fatalf("Bob after a failed attempt: %+v", bob)
	}
	if alice := w.State(t, w.WA.ID); alice.Cosigned != second.Size {
		t.Fatalf("Alice cosigned %d, want %d", alice.Cosigned, second.Size)
	}
	// Not due yet: no attempt (the witness would see none).
	w.B.Down.Store(false)
	w.Run(t)
	if bob := w.State(t, w.WB.ID); bob.Cosigned != first.Size {
		t.Fatalf("Bob was tried again before his back-off: cosigned %d", bob.Cosigned)
	}
	// Later, Bob catches up from the size he last cosigned.
	*w.Now = w.Now.Add(time.Minute)
	w.Run(t)
	if got := w.Witnessed(t); got.Head.Size != second.Size || len(got.Cosignatures) != 2 {
		t.Fatalf("after Bob's return: head %d with %d cosignatures, want %d with 2", got.Head.Size, len(got.Cosignatures), second.Size)
	}
	if bob := w.State(t, w.WB.ID); bob.Failures != 0 || bob.LastError != "" || bob.Cosigned != second.Size {
		t.Fatalf("Bob after catching up: %+v", bob)
	}
}

// TestWitnessConflictIsRoutine: a witness that already cosigned a size of
// this log the portal does not know it cosigned answers 409; the portal
// resubmits from that size at once, with no alarm.
func testWitnessConflictIsRoutine(t *testing.T, newServices NewServices) {
	w := NewWitnessWorld(t, newServices(t))
	first := w.Grow(t, 5)
	// Alice got the first head by another way (an answer the portal lost).
	if _, err := w.A.AddCheckpoint(witness.FormatRequest(0, nil, first.Note)); err != nil {
		t.Fatal(err)
	}
	second := w.Grow(t, 3)
	w.Run(t)
	alice := w.State(t, w.WA.ID)
	if alice.Cosigned != second.Size || alice.Alarm != nil {
		t.Fatalf("Alice after a 409: %+v, want cosigned %d and no alarm", alice, second.Size)
	}
	refusals, err := w.Witnesses.WitnessRefusals(sys(), 10)
	if err != nil || len(refusals) != 0 {
		t.Fatalf("refusals after a 409: %v %v", refusals, err)
	}
}

func testWitnessAdminInput(t *testing.T, newServices NewServices) {
	w := NewWitnessWorld(t, newServices(t))
	for _, c := range []struct {
		in    doorledger.WitnessInput
		field string
	}{
		{doorledger.WitnessInput{URL: "https://w.example", VerifierKey: w.A.VerifierKey()}, "name"},
		{doorledger.WitnessInput{Name: "X", URL: "ftp://w.example", VerifierKey: w.A.VerifierKey()}, "url"},
		{doorledger.WitnessInput{Name: "X", URL: "https://w.example", VerifierKey: w.Logs.VerifierKey()}, "vkey"},
		{doorledger.WitnessInput{Name: "Alice", URL: "https://w.example", VerifierKey: "x"}, "name"},
		{doorledger.WitnessInput{Name: "Y", URL: "https://w.example", VerifierKey: w.B.VerifierKey()}, "vkey"},
	} {
		_, err := w.Witnesses.AddWitness(sys(), c.in)
		if doorledger.ErrorFields(err)[c.field] == "" {
			t.Errorf("AddWitness(%+v): %v, want a message for %s", c.in, err, c.field)
		}
	}
	if err := w.Witnesses.SetWitnessPolicy(sys(), 3); doorledger.ErrorFields(err)["k"] == "" {
		t.Errorf("policy 3 of 2: %v", err)
	}
	if err := w.Witnesses.RemoveWitness(sys(), w.WA.ID); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("removing a witness the policy needs: %v", err)
	}
	if err := w.Witnesses.SetWitnessPolicy(sys(), 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Witnesses.RemoveWitness(sys(), w.WA.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := w.Witnesses.WitnessPolicy(sys()); err != nil || p != (doorledger.WitnessPolicy{K: 1, N: 1}) {
		t.Fatalf("policy after removing one: %+v %v", p, err)
	}
}
