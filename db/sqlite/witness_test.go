package sqlite_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// witnessWorld is dbtest's witness world with the database behind it, for
// the tests that reach it (dbtest's group witnesses has the rest).
type witnessWorld struct {
	*dbtest.WitnessWorld
	d   *sqlite.DB
	key *auditlog.Key
}

func newWitnessWorld(tb testing.TB) *witnessWorld {
	tb.Helper()
	key := mustLogKey(tb)
	s, d := openServicesWithKey(tb, key)
	return &witnessWorld{WitnessWorld: dbtest.NewWitnessWorld(tb, s), d: d, key: key}
}

// TestWitnessTablesAppendOnly: cosignatures and refusals are never changed
// nor deleted, whatever writes the tables.
func TestWitnessTablesAppendOnly(t *testing.T) {
	w := newWitnessWorld(t)
	w.Grow(t, 3)
	w.Run(t)
	if _, err := w.d.Writer().Exec(`DELETE FROM witness_cosignatures`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting cosignatures: %v", err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE witness_cosignatures SET line = 'x'`); err == nil {
		t.Fatal("a cosignature was changed")
	}
	if _, err := w.d.Writer().Exec(`INSERT INTO witness_refusals (witness_id, size, status, reason, security, at)
		VALUES (?, 3, 422, 'x', 1, '2026-01-01T00:00:00.000000Z')`, w.WA.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE witness_refusals SET reason = 'y'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("changing a refusal: %v", err)
	}
	if _, err := w.d.Writer().Exec(`DELETE FROM witness_refusals`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting a refusal: %v", err)
	}
}

// TestWitnessRefusesFork: an attacker with the database and the log's key
// rewrites the tree and re-signs every head; the log goes on growing. Both
// witnesses refuse the next head (422), each refusal is a security event
// kept, journaled and mailed to the admins, and no head counts as
// witnessed: the cosignatures kept do not verify over the re-signed heads.
func TestWitnessRefusesFork(t *testing.T) {
	w := newWitnessWorld(t)
	before := w.Grow(t, 6)
	w.Run(t)
	testtool.ForkLog(t, w.d.Writer(), w.key.Signer(), 2)
	after := w.Grow(t, 4)
	w.Run(t)
	for _, id := range []int64{w.WA.ID, w.WB.ID} {
		s := w.State(t, id)
		if s.Cosigned != before.Size || s.Alarm == nil || !s.Alarm.Security || s.Alarm.Status != http.StatusUnprocessableEntity || s.Alarm.Size != after.Size {
			t.Fatalf("%s after the fork: %+v (alarm %+v)", s.Name, s, s.Alarm)
		}
	}
	// The heads were re-signed: the cosignatures kept no longer verify over
	// them, so no head counts as witnessed, and a report says who is missing.
	if got := w.Witnessed(t); got.Head != nil || !strings.Contains(got.Summary(), "missing: Alice and Bob") {
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
	w.Run(t)
	w.Grow(t, 2)
	*w.Now = w.Now.Add(time.Hour)
	w.Run(t)
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE kind = 'alert'`).Scan(&mails); err != nil || mails != 2 {
		t.Fatalf("alerts after a retry: %d", mails)
	}
}
