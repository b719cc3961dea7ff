package sqlite_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/witness"
)

// testWitness is a witness in its own state directory behind an HTTP
// server that can be taken down (503) and brought back.
type testWitness struct {
	*witness.Witness
	srv  *httptest.Server
	down atomic.Bool
}

func newTestWitness(tb testing.TB, name, logKey string) *testWitness {
	tb.Helper()
	w, err := witness.Open(tb.TempDir(), name, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Follow(logKey); err != nil {
		tb.Fatal(err)
	}
	tw := &testWitness{Witness: w}
	tw.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if tw.down.Load() {
			http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.ServeHTTP(rw, r)
	}))
	tb.Cleanup(tw.srv.Close)
	return tw
}

// witnessWorld is the log world with a witness service, a submitter and
// two witnesses configured under the policy 2 of 2.
type witnessWorld struct {
	*logWorld
	ws     *sqlite.WitnessService
	sub    *witness.Submitter
	a, b   *testWitness
	wa, wb *doorledger.Witness
}

func newWitnessWorld(tb testing.TB) *witnessWorld {
	tb.Helper()
	lw := newLogWorld(tb)
	w := &witnessWorld{logWorld: lw, ws: sqlite.NewWitnessService(lw.d)}
	w.sub = &witness.Submitter{Log: lw.log, Witnesses: w.ws, HTTP: http.DefaultClient}
	w.a = newTestWitness(tb, "alice-witness", lw.key.VerifierKey())
	w.b = newTestWitness(tb, "bob-witness", lw.key.VerifierKey())
	var err error
	if w.wa, err = w.ws.AddWitness(sys(), doorledger.WitnessInput{Name: "Alice", URL: w.a.srv.URL, VerifierKey: w.a.VerifierKey()}); err != nil {
		tb.Fatal(err)
	}
	if w.wb, err = w.ws.AddWitness(sys(), doorledger.WitnessInput{Name: "Bob", URL: w.b.srv.URL, VerifierKey: w.b.VerifierKey()}); err != nil {
		tb.Fatal(err)
	}
	if err := w.ws.SetWitnessPolicy(sys(), 2); err != nil {
		tb.Fatal(err)
	}
	return w
}

// grow appends entries and signs a head of the new size.
func (w *witnessWorld) grow(tb testing.TB, n int) *doorledger.LogHead {
	tb.Helper()
	w.Audits(tb, n)
	h, err := w.log.SignHead(sys())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (w *witnessWorld) run(tb testing.TB) {
	tb.Helper()
	if err := w.sub.Run(sys()); err != nil {
		tb.Fatal(err)
	}
}

func (w *witnessWorld) witnessed(tb testing.TB) *doorledger.WitnessedHead {
	tb.Helper()
	h, err := w.ws.LatestWitnessed(sys(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (w *witnessWorld) state(tb testing.TB, id int64) *doorledger.Witness {
	tb.Helper()
	list, err := w.ws.Witnesses(sys())
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
func TestWitnessSubmission(t *testing.T) {
	w := newWitnessWorld(t)
	first := w.grow(t, 5)
	w.run(t)
	got := w.witnessed(t)
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
	w.b.down.Store(true)
	second := w.grow(t, 4)
	w.run(t)
	if got := w.witnessed(t); got.Head.Size != first.Size {
		t.Fatalf("with Bob down the witnessed head is %d, want still %d", got.Head.Size, first.Size)
	}
	bob := w.state(t, w.wb.ID)
	if bob.Cosigned != first.Size || bob.Failures != 1 || !strings.Contains(bob.LastError, "503") || !bob.NextAttempt.After(*w.Now) || bob.Alarm != nil {
		t.Fatalf("Bob after a failed attempt: %+v", bob)
	}
	if alice := w.state(t, w.wa.ID); alice.Cosigned != second.Size {
		t.Fatalf("Alice cosigned %d, want %d", alice.Cosigned, second.Size)
	}
	// Not due yet: no attempt (the witness would see none).
	w.b.down.Store(false)
	w.run(t)
	if bob := w.state(t, w.wb.ID); bob.Cosigned != first.Size {
		t.Fatalf("Bob was tried again before his back-off: cosigned %d", bob.Cosigned)
	}
	// Later, Bob catches up from the size he last cosigned.
	*w.Now = w.Now.Add(time.Minute)
	w.run(t)
	if got := w.witnessed(t); got.Head.Size != second.Size || len(got.Cosignatures) != 2 {
		t.Fatalf("after Bob's return: head %d with %d cosignatures, want %d with 2", got.Head.Size, len(got.Cosignatures), second.Size)
	}
	if bob := w.state(t, w.wb.ID); bob.Failures != 0 || bob.LastError != "" || bob.Cosigned != second.Size {
		t.Fatalf("Bob after catching up: %+v", bob)
	}

	// Cosignatures are append-only.
	if _, err := w.d.Writer().Exec(`DELETE FROM witness_cosignatures`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting cosignatures: %v", err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE witness_cosignatures SET line = 'x'`); err == nil {
		t.Fatal("a cosignature was changed")
	}
}

// TestWitnessConflictIsRoutine: a witness that already cosigned a size of
// this log the portal does not know it cosigned answers 409; the portal
// resubmits from that size at once, with no alarm.
func TestWitnessConflictIsRoutine(t *testing.T) {
	w := newWitnessWorld(t)
	first := w.grow(t, 5)
	// Alice got the first head by another way (an answer the portal lost).
	if _, err := w.a.AddCheckpoint(witness.FormatRequest(0, nil, first.Note)); err != nil {
		t.Fatal(err)
	}
	second := w.grow(t, 3)
	w.run(t)
	alice := w.state(t, w.wa.ID)
	if alice.Cosigned != second.Size || alice.Alarm != nil {
		t.Fatalf("Alice after a 409: %+v, want cosigned %d and no alarm", alice, second.Size)
	}
	refusals, err := w.ws.WitnessRefusals(sys(), 10)
	if err != nil || len(refusals) != 0 {
		t.Fatalf("refusals after a 409: %v %v", refusals, err)
	}
}

// TestWitnessRefusesFork: an attacker with the database and the log's key
// rewrites the tree and re-signs every head; the log goes on growing. Both
// witnesses refuse the next head (422), each refusal is a security event
// kept, journaled and mailed to the admins, and no head counts as
// witnessed: the cosignatures kept do not verify over the re-signed heads.
func TestWitnessRefusesFork(t *testing.T) {
	w := newWitnessWorld(t)
	before := w.grow(t, 6)
	w.run(t)
	testtool.ForkLog(t, w.d.Writer(), w.key.Signer(), 2)
	after := w.grow(t, 4)
	w.run(t)
	for _, id := range []int64{w.wa.ID, w.wb.ID} {
		s := w.state(t, id)
		if s.Cosigned != before.Size || s.Alarm == nil || !s.Alarm.Security || s.Alarm.Status != http.StatusUnprocessableEntity || s.Alarm.Size != after.Size {
			t.Fatalf("%s after the fork: %+v (alarm %+v)", s.Name, s, s.Alarm)
		}
	}
	// The heads were re-signed: the cosignatures kept no longer verify over
	// them, so no head counts as witnessed, and a report says who is missing.
	if got := w.witnessed(t); got.Head != nil || !strings.Contains(got.Summary(), "missing: Alice and Bob") {
		t.Fatalf("witnessed head after the fork: %+v (%s), want none", got.Head, got.Summary())
	}
	var mails int
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND subject LIKE 'SECURITY: Witness % refused%'`).Scan(&mails); err != nil || mails != 2 {
		t.Fatalf("security alerts mailed: %d (%v), want 2 (one per witness to the one admin)", mails, err)
	}
	var journaled int
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE action = 'witness.refused'`).Scan(&journaled); err != nil || journaled != 2 {
		t.Fatalf("refusals journaled: %d (%v)", journaled, err)
	}
	// Retrying the same checkpoint after the back-off, or refusing the
	// next head, alerts no more.
	*w.Now = w.Now.Add(time.Hour)
	w.run(t)
	w.grow(t, 2)
	*w.Now = w.Now.Add(time.Hour)
	w.run(t)
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE kind = 'alert'`).Scan(&mails); err != nil || mails != 2 {
		t.Fatalf("alerts after a retry: %d", mails)
	}
}

func TestWitnessAdminInput(t *testing.T) {
	w := newWitnessWorld(t)
	for _, c := range []struct {
		in    doorledger.WitnessInput
		field string
	}{
		{doorledger.WitnessInput{URL: "https://w.example", VerifierKey: w.a.VerifierKey()}, "name"},
		{doorledger.WitnessInput{Name: "X", URL: "ftp://w.example", VerifierKey: w.a.VerifierKey()}, "url"},
		{doorledger.WitnessInput{Name: "X", URL: "https://w.example", VerifierKey: w.key.VerifierKey()}, "vkey"},
		{doorledger.WitnessInput{Name: "Alice", URL: "https://w.example", VerifierKey: "x"}, "name"},
		{doorledger.WitnessInput{Name: "Y", URL: "https://w.example", VerifierKey: w.b.VerifierKey()}, "vkey"},
	} {
		_, err := w.ws.AddWitness(sys(), c.in)
		if doorledger.ErrorFields(err)[c.field] == "" {
			t.Errorf("AddWitness(%+v): %v, want a message for %s", c.in, err, c.field)
		}
	}
	if err := w.ws.SetWitnessPolicy(sys(), 3); doorledger.ErrorFields(err)["k"] == "" {
		t.Errorf("policy 3 of 2: %v", err)
	}
	if err := w.ws.RemoveWitness(sys(), w.wa.ID); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("removing a witness the policy needs: %v", err)
	}
	if err := w.ws.SetWitnessPolicy(sys(), 1); err != nil {
		t.Fatal(err)
	}
	if err := w.ws.RemoveWitness(sys(), w.wa.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := w.ws.WitnessPolicy(sys()); err != nil || p != (doorledger.WitnessPolicy{K: 1, N: 1}) {
		t.Fatalf("policy after removing one: %+v %v", p, err)
	}
}
