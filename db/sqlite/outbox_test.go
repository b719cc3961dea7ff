package sqlite_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

var signLinkRE = regexp.MustCompile(`http://portal\.test/sign/([A-Za-z0-9_-]+)`)

// A queued body is sealed: the outbox table holds no link, the dispatcher
// gets the body whole, and the link in it works.
func TestOutboxSealsBodiesAtRest(t *testing.T) {
	w := newConsentWorld(t)
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
	raw := testtool.TableText(t, w.db.Reader())
	if strings.Contains(raw, "/sign/") || strings.Contains(raw, "Review the full terms") {
		t.Fatalf("the outbox table holds the body in the clear:\n%s", raw)
	}
	token := w.LastLink(t, w.Signer.Email, "/sign/") // through PendingMessages
	if strings.Contains(raw, token) || bytes.Contains(testtool.DatabaseFiles(t, w.db.Path), []byte(token)) {
		t.Fatal("the token is in the database")
	}
	if _, err := w.Consents.OpenSigning(context.Background(), token); err != nil {
		t.Fatalf("the mailed link does not work: %v", err)
	}
}

// With SMTP, a sent body is dropped and admins see none; while mail is only
// logged, it stays sealed and admins read it.
func TestOutboxBodiesOnceSent(t *testing.T) {
	w := newConsentWorld(t)
	admin, err := sqlite.NewUserService(w.db).CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for _, logOnly := range []bool{false, true} {
		out := sqlite.NewOutboxService(w.db)
		out.LogOnly = logOnly
		if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-"+map[bool]string{false: "smtp", true: "log"}[logOnly], w.Signer.ID)); err != nil {
			t.Fatal(err)
		}
		pending, err := out.PendingMessages(context.Background(), 8, 10)
		if err != nil || len(pending) != 1 || !signLinkRE.MatchString(pending[0].Body) {
			t.Fatalf("pending: %+v, %v", pending, err)
		}
		id := pending[0].ID
		list, err := out.FindMessages(as(admin), 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := list[0]; got.ID != id || (got.Body != "") == !logOnly {
			t.Fatalf("logOnly=%v: unsent message listed with body %q", logOnly, got.Body)
		}
		if err := out.MarkSent(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		var body string
		var sealed []byte
		if err := w.db.Reader().QueryRow(`SELECT body, body_sealed FROM outbox WHERE id = ?`, id).Scan(&body, &sealed); err != nil {
			t.Fatal(err)
		}
		if body != "" || (sealed != nil) != logOnly {
			t.Fatalf("logOnly=%v: sent row keeps body %q, sealed %d bytes", logOnly, body, len(sealed))
		}
		list, _ = out.FindMessages(as(admin), 10)
		if got := list[0]; got.SentAt.IsZero() || signLinkRE.MatchString(got.Body) != logOnly {
			t.Fatalf("logOnly=%v: sent message listed as %+v", logOnly, got)
		}
	}
}

// Rows written in the clear before migration 023 are sealed (unsent) or
// dropped (sent) at start, and their clear text leaves the database's files.
func TestOutboxSecureStoredMail(t *testing.T) {
	for _, logOnly := range []bool{false, true} {
		w := newConsentWorld(t)
		if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID)); err != nil {
			t.Fatal(err)
		}
		out := sqlite.NewOutboxService(w.db)
		out.LogOnly = logOnly
		pending, err := out.PendingMessages(context.Background(), 8, 10)
		if err != nil || len(pending) != 1 {
			t.Fatal(pending, err)
		}
		body := pending[0].Body
		token := signLinkRE.FindStringSubmatch(body)[1]
		// As an older version stored it: the body in the clear, once unsent
		// and once sent.
		if _, err := w.db.Writer().Exec(`DELETE FROM outbox`); err != nil {
			t.Fatal(err)
		}
		for _, sent := range []any{nil, "2026-01-01T00:00:00.000000Z"} {
			if _, err := w.db.Writer().Exec(`INSERT INTO outbox (created_at, to_addr, subject, body, kind, sent_at) VALUES ('2026-01-01T00:00:00.000000Z', ?, 'Consent requested', ?, 'signing_link', ?)`,
				w.Signer.Email, body, sent); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.db.Writer().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(testtool.DatabaseFiles(t, w.db.Path), []byte(token)) {
			t.Fatal("test set-up: the clear body is not in the file")
		}

		n, err := out.SecureStoredMail(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("logOnly=%v: SecureStoredMail = %d, %v; want 2 rows", logOnly, n, err)
		}
		if raw := testtool.TableText(t, w.db.Reader()); strings.Contains(raw, token) || strings.Contains(raw, "/sign/") {
			t.Fatalf("logOnly=%v: the table still holds a link:\n%s", logOnly, raw)
		}
		if bytes.Contains(testtool.DatabaseFiles(t, w.db.Path), []byte(token)) {
			t.Fatalf("logOnly=%v: the token lingers in the database's files", logOnly)
		}
		// The unsent one still goes out whole; the sent one is kept (sealed)
		// only while mail is only logged.
		pending, err = out.PendingMessages(context.Background(), 8, 10)
		if err != nil || len(pending) != 1 || pending[0].Body != body {
			t.Fatalf("logOnly=%v: pending after securing: %+v, %v", logOnly, pending, err)
		}
		var sealedSent int
		w.db.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND body_sealed IS NOT NULL`).Scan(&sealedSent)
		if want := map[bool]int{false: 0, true: 1}[logOnly]; sealedSent != want {
			t.Fatalf("logOnly=%v: %d sent rows keep a sealed body, want %d", logOnly, sealedSent, want)
		}
		// Again: nothing left to do.
		if n, err := out.SecureStoredMail(context.Background()); err != nil || n != 0 {
			t.Fatalf("second run: %d, %v", n, err)
		}
	}
}

// Switching from logged mail to SMTP drops the bodies kept while logging.
func TestOutboxSecureStoredMailDropsLoggedBodies(t *testing.T) {
	w := newConsentWorld(t)
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
	logged := sqlite.NewOutboxService(w.db)
	logged.LogOnly = true
	pending, _ := logged.PendingMessages(context.Background(), 8, 10)
	if err := logged.MarkSent(context.Background(), pending[0].ID); err != nil {
		t.Fatal(err)
	}
	smtp := sqlite.NewOutboxService(w.db)
	if n, err := smtp.SecureStoredMail(context.Background()); err != nil || n != 1 {
		t.Fatalf("SecureStoredMail = %d, %v", n, err)
	}
	var sealed []byte
	w.db.Reader().QueryRow(`SELECT body_sealed FROM outbox`).Scan(&sealed)
	if sealed != nil {
		t.Fatal("the logged body was kept")
	}
}

// A sealed body opens only in its own row, for its own recipient, under the
// key it was sealed with; one that does not open is never sent.
func TestOutboxSealedBodyBound(t *testing.T) {
	w := newConsentWorld(t)
	out := sqlite.NewOutboxService(w.db)
	for _, serial := range []string{"SN-1", "SN-2"} {
		if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request(serial, w.Signer.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// Someone who can write the database but has no key sends the link to
	// themselves: the body no longer opens, and the mail is given up on.
	if _, err := w.db.Writer().Exec(`UPDATE outbox SET to_addr = 'mallory@example.com' WHERE id = (SELECT MIN(id) FROM outbox)`); err != nil {
		t.Fatal(err)
	}
	pending, err := out.PendingMessages(context.Background(), 8, 10)
	if err != nil || len(pending) != 1 || pending[0].To != w.Signer.Email {
		t.Fatalf("pending: %+v, %v", pending, err)
	}
	var attempts int
	var lastError string
	w.db.Reader().QueryRow(`SELECT attempts, last_error FROM outbox WHERE to_addr = 'mallory@example.com'`).Scan(&attempts, &lastError)
	if attempts != 8 || !strings.Contains(lastError, "does not open") {
		t.Fatalf("redirected mail: attempts %d, last error %q", attempts, lastError)
	}
	// Another data directory's key opens nothing.
	if err := w.db.SetSealKey(bytes.Repeat([]byte{7}, sqlite.SealKeySize)); err != nil {
		t.Fatal(err)
	}
	if pending, err := out.PendingMessages(context.Background(), 8, 10); err != nil || len(pending) != 0 {
		t.Fatalf("pending under another key: %+v, %v", pending, err)
	}
	if err := w.db.SetSealKey([]byte("short")); err == nil {
		t.Fatal("a short seal key was accepted")
	}
}
