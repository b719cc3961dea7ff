package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// The portal sequences its journal into the signed log as it runs; `portal
// audit verify` re-computes it and names the first entry that was changed.
func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	admin.Post("/buildings/new", "/buildings", map[string][]string{"name": {"Log Court"}, "address": {"3 Log St"}, "timezone": {"UTC"}})
	if _, body := admin.Get("/audit"); !strings.Contains(body, "Verifier key") || !strings.Contains(body, "doorledger+") {
		t.Fatalf("audit page lacks the log's verifier key:\n%s", body)
	}
	if _, _, body := admin.Post("/audit", "/audit/verify", nil); !strings.Contains(body, "Intact:") {
		t.Fatalf("verify now:\n%s", body)
	}
	p.Stop(t)

	getenv := func(string) string { return "" }
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "-data", dir}, getenv, &out, &errb); err != nil {
		t.Fatalf("verify an untouched log: %v\n%s%s", err, out.String(), errb.String())
	}
	// Edit a journal entry behind the portal's back (dropping the trigger first).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`DROP TRIGGER audit_entries_no_update`, `UPDATE audit_entries SET actor = 'someone else' WHERE action = 'building.create'`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out.Reset()
	err = run(context.Background(), []string{"audit", "verify", "-data", dir}, getenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("verify a changed log: %v\n%s", err, out.String())
	}
}

// TestShutdownSequencesEverything: rows committed right before the portal is
// told to stop (SIGTERM cancels run's context) are in the log when it has
// stopped, under a head signed at shutdown; `portal audit verify` finds
// nothing waiting.
func TestShutdownSequencesEverything(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	for i := 0; i < 3; i++ {
		if status, _, body := admin.Post("/buildings/new", "/buildings", map[string][]string{"name": {fmt.Sprintf("Last Second %d", i)},
			"address": {"1 Stop St"}, "timezone": {"UTC"}}); status != http.StatusSeeOther {
			t.Fatalf("create building: %d\n%s", status, body)
		}
	}
	p.Stop(t) // right after the last write: the sequencer's next tick is up to a second away

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var waiting, size, head int64
	if err := db.QueryRow(`SELECT
		(SELECT COUNT(*) FROM audit_entries WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'audit')) +
		(SELECT COUNT(*) FROM unlock_events WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'unlock')) +
		(SELECT COUNT(*) FROM log_purges WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'purge')),
		(SELECT COUNT(*) FROM log_leaves), (SELECT COALESCE(MAX(size), 0) FROM log_heads)`).Scan(&waiting, &size, &head); err != nil {
		t.Fatal(err)
	}
	if waiting != 0 {
		t.Errorf("%d rows committed before the shutdown are not in the log", waiting)
	}
	if head != size {
		t.Errorf("the latest signed head covers %d of the log's %d entries", head, size)
	}
	var last string
	db.QueryRow(`SELECT action FROM audit_entries WHERE id = (SELECT MAX(ref_id) FROM log_leaves WHERE kind = 'audit')`).Scan(&last)
	if last != "building.create" {
		t.Errorf("the last entry logged is %q, want the last building created", last)
	}

	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "-data", dir}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("verify: %v\n%s%s", err, out.String(), errb.String())
	}
	if strings.Contains(out.String(), "Not yet logged") {
		t.Errorf("verify after a graceful shutdown:\n%s", out.String())
	}
}
