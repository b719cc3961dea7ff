package main

import (
	"bytes"
	"database/sql"
	"html"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/testtool"
)

// Mail bodies across restarts and modes: bodies an older version stored in
// the clear are sealed (unsent) or dropped (sent) at start; with SMTP the
// Outbox shows no body and the database's files hold no link; a mail queued
// under SMTP is still readable after a restart without it, because its seal
// key is the data directory's, not the process's.
func TestEndToEndOutboxBodiesAtRest(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	lastPortal = p
	consentedDevice(t, p) // mail only logged: its bodies are on the Outbox page
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	withdraw := outboxLink(t, admin, "/consent/withdraw/")
	p.Stop(t)

	// As an older version left them: one unsent and one sent body in the clear.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		body string
		sent any
	}{{"unsent body LEGACY-MARKER-1", nil}, {"sent body LEGACY-MARKER-2", "2026-01-01T00:00:00.000000Z"}} {
		if _, err := db.Exec(`INSERT INTO outbox (created_at, to_addr, subject, body, kind, sent_at) VALUES ('2026-01-01T00:00:00.000000Z', 'old@example.com', 'Old mail', ?, 'alert', ?)`, row.body, row.sent); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// With SMTP (a relay that refuses connections): nothing readable at rest.
	p = MustStartPortalEnv(t, dir, map[string]string{"DOORLEDGER_SMTP_URL": "smtp://127.0.0.1:1?from=portal@example.com&tls=none&timeout=2s"})
	lastPortal = p
	admin.base = p.URL
	page := awaitPage(t, admin, "/outbox", "connection refused")
	if strings.Contains(page, "LEGACY-MARKER") || strings.Contains(page, "/consent/withdraw/") || strings.Contains(html.UnescapeString(page), withdraw) {
		t.Fatalf("the Outbox shows bodies with SMTP:\n%s", page)
	}
	files := testtool.DatabaseFiles(t, filepath.Join(dir, "doorledger.db"))
	for _, s := range []string{"LEGACY-MARKER-1", "LEGACY-MARKER-2", strings.TrimPrefix(withdraw, "/consent/withdraw/"), "/consent/withdraw/", "/sign/"} {
		if bytes.Contains(files, []byte(s)) {
			t.Errorf("the database's files hold %q", s)
		}
	}
	// The link itself still works: only the database lost it.
	if status, _ := NewClient(t, p.URL).Get(withdraw); status != http.StatusOK {
		t.Fatalf("the delivered withdraw link: %d", status)
	}
	p.Stop(t)

	// Without SMTP again: the unsent legacy mail is logged and its body,
	// sealed under the data directory's key, is readable on the Outbox page.
	p = MustStartPortal(t, dir)
	lastPortal = p
	admin.base = p.URL
	awaitPage(t, admin, "/outbox", "unsent body LEGACY-MARKER-1")
}
