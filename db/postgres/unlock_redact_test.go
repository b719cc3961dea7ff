package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// Under the privacy profile, identifiable data of events older than 90 days
// is redacted, only for events already in the log, once; the log verifies
// with the redactions.
func TestRedactUnlocks(t *testing.T) {
	w := newUnlockBuilding(t)
	ctx := context.Background()
	privacy := postgres.NewPrivacyService(w.d)
	logs := postgres.NewLogService(w.d, mustLogKey(t))
	old := w.now.AddDate(0, 0, -100)
	for _, id := range []string{"old-1", "old-2", "old-3"} {
		w.ghost(t, id, old)
	}
	w.ghost(t, "recent", w.now.Add(-time.Hour))
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	w.ghost(t, "old-unlogged", old)
	if n, err := privacy.RedactUnlocks(sys(), *w.now); err != nil || n != 0 {
		t.Fatalf("redacted %d, %v without the profile", n, err)
	}
	if err := privacy.SetPrivacyProfile(dbtest.As(w.mgr), w.building, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	if _, err := privacy.RedactUnlocks(dbtest.As(w.mgr), *w.now); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("a manager ran the job: %v", err)
	}
	if n, err := privacy.RedactUnlocks(sys(), *w.now); err != nil || n != 3 {
		t.Fatalf("redacted %d, %v; want 3", n, err)
	}
	if n, err := privacy.RedactUnlocks(sys(), *w.now); err != nil || n != 0 {
		t.Fatalf("second run redacted %d, %v", n, err)
	}
	rows, err := w.d.Pool().Query(ctx, `SELECT event_id, actor_ref, redaction_id IS NOT NULL FROM unlock_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, actor string
		var redacted bool
		if err := rows.Scan(&id, &actor, &redacted); err != nil {
			t.Fatal(err)
		}
		want := strings.HasPrefix(id, "old-") && id != "old-unlogged"
		if redacted != want || (actor == "") != want {
			t.Errorf("%s: actor %q, redacted %v; want redacted %v", id, actor, redacted, want)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	// (old-unlogged, received 100 days ago and not yet in the log, is
	// overdue for verify until the sequencer logs it.)
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	if v, err := logs.Verify(sys()); err != nil || !v.OK() || v.Redacted != 3 {
		t.Fatalf("verify after: %+v %v", v, err)
	}
}
