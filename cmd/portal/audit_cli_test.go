package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
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
	// The log's origin was chosen at first start and kept beside its key;
	// the log's key is named after it, as its checkpoints are.
	origin, err := os.ReadFile(filepath.Join(dir, "log.origin"))
	if err != nil {
		t.Fatal(err)
	}
	o := strings.TrimSpace(string(origin))
	if _, body := admin.Get("/audit"); !strings.Contains(body, "Verifier key") || !strings.Contains(body, ">"+o+"+") || !strings.Contains(body, "Log origin") {
		t.Fatalf("audit page lacks the log's origin %q and verifier key:\n%s", o, body)
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
	if !strings.Contains(out.String(), "Log origin:   "+o+"\n") {
		t.Errorf("verify does not name the log's origin %q:\n%s", o, out.String())
	}
	// The head, as a C2SP checkpoint of the log's origin.
	out.Reset()
	if err := run(context.Background(), []string{"audit", "head", "-data", dir}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "a C2SP checkpoint (c2sp.org/tlog-checkpoint) of "+o) || !strings.Contains(out.String(), "\n\n"+o+"\n") ||
		!strings.Contains(out.String(), "\n— "+o+" ") {
		t.Errorf("audit head:\n%s", out.String())
	}
	// A restart keeps the origin: it is never chosen again.
	p2 := MustStartPortal(t, dir)
	p2.Stop(t)
	if again, _ := os.ReadFile(filepath.Join(dir, "log.origin")); string(again) != string(origin) {
		t.Errorf("origin after a restart %q, was %q", again, origin)
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

	// A row committed two minutes before the newest and never sequenced (as
	// a sequencer that stopped working would leave it): verify fails, naming it.
	rw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	var newest string
	rw.QueryRow(`SELECT MAX(at) FROM audit_entries`).Scan(&newest)
	at, err := time.Parse("2006-01-02T15:04:05.000000Z", newest)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rw.Exec(`INSERT INTO audit_entries (at, actor_id, actor, action, building_id, object_type, object_id, ip, detail)
		VALUES (?, 0, 'system', 'user.logout', 0, 'user', 1, '', '{}')`, at.Add(-2*time.Minute).Format("2006-01-02T15:04:05.000000Z"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	out.Reset()
	err = run(context.Background(), []string{"audit", "verify", "-data", dir}, func(string) string { return "" }, &out, &errb)
	if want := fmt.Sprintf("audit #%d: not sequenced", id); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(out.String(), "FAILED: "+want) {
		t.Errorf("verify with an old row not sequenced: %v, want it to name %q\n%s", err, want, out.String())
	}
}
