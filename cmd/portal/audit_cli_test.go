package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	time.Sleep(1500 * time.Millisecond) // one sequencer pass (every second)
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
