package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
)

// TestNotifyResidentsLateJournalEntry: journal ids are not commit order on
// PostgreSQL. A transaction takes an id for its entry (a device disabled)
// and commits only after a later entry (another device enabled) has; the
// residents' notice pass that runs meanwhile must not move its cursor past
// the open entry, or residents are never told the device was disabled.
// (Package sqlite's cursor, ported as it was, read up to the highest id and
// skipped the late entry for good.)
func TestNotifyResidentsLateJournalEntry(t *testing.T) {
	s, d := openServices(t)
	w := dbtest.NewResidentWorld(t, dbtest.NewConsentWorld(t, s))
	ctx := context.Background()
	if err := w.Residents.Subscribe(ctx, w.Slug, "a@example.net"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Residents.ConfirmSubscription(ctx, w.LastLink(t, "a@example.net", doorledger.ResidentConfirmPath)); err != nil {
		t.Fatal(err)
	}
	first := w.Signed(t, "SN-LATE-1")
	if n, err := w.Residents.NotifyResidents(ctx); err != nil || n != 1 {
		t.Fatalf("first device enabled: %d notices, %v", n, err)
	}
	late, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(ctx)
	if _, err := late.Exec(ctx, `INSERT INTO audit_entries (at, actor, action, building_id, object_type, object_id)
		VALUES ($1, 'test', 'device.disable', $2, 'device', $3)`, *w.Now, w.A.ID, first.DeviceID); err != nil {
		t.Fatal(err)
	}
	w.Signed(t, "SN-LATE-2") // committed, with higher ids than the open entry's
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := w.Residents.NotifyResidents(ctx)
		done <- result{n, err}
	}()
	// Commit the late entry once the pass is under way: when it waits for
	// the journal's writers, or has finished without waiting.
	deadline := time.Now().Add(30 * time.Second)
	var finished *result
	for finished == nil {
		var waiting bool
		if err := d.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'audit_entries'::regclass)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case r := <-done:
			finished = &r
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the notice pass neither waited nor finished")
		}
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if finished == nil {
		r := <-done
		finished = &r
	}
	if finished.err != nil {
		t.Fatal(finished.err)
	}
	if _, err := w.Residents.NotifyResidents(ctx); err != nil {
		t.Fatal(err)
	}
	var all string
	for _, m := range w.MailsTo(t, "a@example.net") {
		if m.Kind == doorledger.MailResidentNotice {
			all += m.Body + "\n"
		}
	}
	if strings.Count(all, "was ENABLED") != 2 || !strings.Contains(all, "was DISABLED") {
		t.Fatalf("the notices do not tell of both enables and the disable committed late:\n%s", all)
	}
}
