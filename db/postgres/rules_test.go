package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/postgres"
	"github.com/jackc/pgx/v5/pgconn"
)

// ruleWorld is a database written around the services, by SQL: two
// buildings, an installer, a roster signer, a consent signed as its policy
// (none: one signature) requires with the device it enables, an awaiting
// consent, and an unlock event. The triggers let every row in (the first
// test below) and refuse what the rules forbid (the rest).
func ruleWorld(t *testing.T) (*postgres.DB, func(sql string, args ...any) error) {
	t.Helper()
	d, _ := MustOpenDB(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) error {
		_, err := d.Pool().Exec(ctx, sql, args...)
		return err
	}
	for _, stmt := range []string{
		`INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at)
			VALUES (1, 'inst@example.com', 'Inst', 'installer', 'x', now(), now())`,
		`INSERT INTO buildings (id, name, address, timezone, created_at, updated_at)
			VALUES (1, 'A', '1 A St', 'America/New_York', now(), now()), (2, 'B', '2 B St', 'UTC', now(), now())`,
		`INSERT INTO signers (id, building_id, name, title, email, created_at)
			VALUES (1, 1, 'Zoë', 'Board president', 'zoe@example.com', now()), (2, 1, 'Ann', 'Owner', 'ann@example.com', now())`,
		`INSERT INTO consents (id, building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode,
			requested_at, status_at, terms, terms_sha256)
			VALUES (1, 1, 1, 1, 'Acme', 'K2', 'SN-1', 'lobby', 'door', 'link', now(), now(), 'terms', 'sha'),
			       (2, 1, 1, 1, 'Acme', 'K2', 'SN-2', 'lobby', 'door', 'link', now(), now(), 'terms', 'sha')`,
		`INSERT INTO devices (id, building_id, vendor, model, serial, location, consent_id, origin, created_at)
			VALUES (1, 1, 'Acme', 'K2', 'SN-1', 'lobby', 1, 'consent_request', now())`,
		`UPDATE consents SET device_id = 1 WHERE id = 1`,
		`INSERT INTO consent_signers (consent_id, signer_id, position, address_key) VALUES (1, 1, 1, 'zoe'), (2, 1, 1, 'zoe')`,
		`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
			VALUES (1, 1, 'zoe@example.com', 'zoe', 'sha', 'Zoë', '\x89', now(), 'link')`,
		`UPDATE consents SET status = 'signed', signed_at = now(), typed_name = 'Zoë', signature_png = '\x89', method = 'link',
			expires_at = now() + interval '1 year' WHERE id = 1`,
		`UPDATE devices SET desired_state = 'enabled', desired_version = 1 WHERE id = 1`,
		`INSERT INTO unlock_events (id, building_id, device_id, event_id, occurred_at, received_at, effective_at, method, actor_ref, result, anomalies, source)
			VALUES (1, 1, 1, 'e1', '2026-12-07T03:30:00Z', now(), '2026-12-07T03:30:00Z', 'code', 'courier 7', 'granted', 8, 'mqtt')`,
		`INSERT INTO reports (id, building_id, format, from_date, to_date, requested_name, requested_at, status, sha256, bytes, done_at)
			VALUES ('AR-1', 1, 'pdf', '2026-11-01', '2026-11-30', 'test', now(), 'done', repeat('a', 64), 10, now())`,
		`INSERT INTO consent_policies (id, building_id, required, created_at, created_by) VALUES (1, 1, 1, now(), 'test')`,
		`UPDATE signers SET active = false, removed_at = now() WHERE id = 2`,
	} {
		if err := exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return d, exec
}

// wantRefused fails unless err is a trigger's refusal with the message.
func wantRefused(t *testing.T, what string, err error, message string) {
	t.Helper()
	var e *pgconn.PgError
	if !errors.As(err, &e) || e.Code != "P0001" || e.Message != message {
		t.Errorf("%s: err = %v, want the refusal %q", what, err, message)
	}
}

// What the triggers keep as rows are written: the building's notice slug
// and open-anomaly counter, the event's day counted in the building's time
// zone (03:30 UTC on 7 December is the 6th in New York), devices' offline
// time from the building's heartbeat, the unlock cache's epoch; a change of
// time zone sets the day counts to be counted again.
func TestRulesKeepDerivedRows(t *testing.T) {
	d, exec := ruleWorld(t)
	ctx := context.Background()
	q := func(sql string, dest ...any) {
		t.Helper()
		if err := d.Pool().QueryRow(ctx, sql).Scan(dest...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var slugOK, slugsDiffer bool
	q(`SELECT bool_and(slug ~ '^[0-9a-f]{32}$'), COUNT(DISTINCT slug) = 2 FROM building_notices`, &slugOK, &slugsDiffer)
	if !slugOK || !slugsDiffer {
		t.Errorf("notice slugs: 32 hex digits %v, distinct %v", slugOK, slugsDiffer)
	}
	var open int
	q(`SELECT n FROM building_open_anomalies WHERE building_id = 1`, &open)
	if open != 1 {
		t.Errorf("open anomalies of A: %d, want 1", open)
	}
	var day string
	var granted, denied, anomalous int
	q(`SELECT day::text, granted, denied, anomalous FROM unlock_daily WHERE building_id = 1`, &day, &granted, &denied, &anomalous)
	if day != "2026-12-06" || granted != 1 || denied != 0 || anomalous != 1 {
		t.Errorf("daily counts of A: %s %d/%d/%d, want 2026-12-06 1/0/1", day, granted, denied, anomalous)
	}
	var offline *time.Time
	q(`SELECT offline_after FROM devices WHERE id = 1`, &offline)
	if offline != nil {
		t.Errorf("offline_after without a heartbeat: %v, want NULL", offline)
	}
	if err := exec(`UPDATE buildings SET heartbeat_seconds = 90 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var after bool
	q(`SELECT offline_after = created_at + interval '90 seconds' FROM devices WHERE id = 1`, &after)
	if !after {
		t.Error("offline_after is not registration + the building's heartbeat")
	}
	var epoch int
	q(`SELECT n FROM unlock_cache_epoch`, &epoch)
	if epoch == 0 {
		t.Error("unlock cache epoch not moved by device and building writes")
	}
	if err := exec(`UPDATE buildings SET timezone = 'Europe/Warsaw' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var days int
	var recount bool
	q(`SELECT (SELECT COUNT(*) FROM unlock_daily WHERE building_id = 1), counted_until = '-infinity' FROM unlock_daily_zones WHERE building_id = 1`, &days, &recount)
	if days != 0 || !recount {
		t.Errorf("after a change of time zone: %d days kept, to count again %v", days, recount)
	}
}

// Writes around the services that the rules forbid are refused by the
// database itself, with the rule's message.
func TestRulesRefuse(t *testing.T) {
	_, exec := ruleWorld(t)
	for _, c := range []struct{ stmt, message string }{
		{`UPDATE audit_entries SET actor = 'someone else'`, ""}, // no rows yet: nothing to refuse
		{`INSERT INTO audit_entries (at, actor, action) VALUES (now(), 'x', 'y')`, ""},
		{`UPDATE audit_entries SET actor = 'someone else'`, "audit_entries is append-only"},
		{`DELETE FROM audit_entries`, "audit_entries is append-only"},
		{`TRUNCATE audit_entries`, "audit_entries is append-only"},
		// The core rule: no device enabled without an active consent of its
		// building, signed as its policy requires.
		{`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at)
			VALUES (2, 'Acme', 'K2', 'SN-9', 'lobby', 1, 'consent_request', 'enabled', now())`, "no device is enabled without an active consent signed as its policy requires"},
		{`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at)
			VALUES (1, 'Acme', 'K2', 'SN-2', 'lobby', 2, 'consent_request', 'enabled', now())`, "no device is enabled without an active consent signed as its policy requires"},
		{`INSERT INTO devices (building_id, vendor, model, serial, location, origin, desired_state, created_at)
			VALUES (1, 'Acme', 'K2', 'SN-3', 'lobby', 'found', 'enabled', now())`, "no device is enabled without an active consent signed as its policy requires"},
		{`UPDATE consents SET status = 'withdrawn' WHERE id = 1`, "disable the devices of a consent before ending it"},
		{`UPDATE consents SET status = 'signed' WHERE id = 2`, "a consent is signed only with as many signatures as its policy requires"},
		// Evidence is immutable; nothing is deleted.
		{`UPDATE consents SET typed_name = 'Mallory' WHERE id = 1`, "signed consents are immutable"},
		{`UPDATE consents SET signature_png = '\x00' WHERE id = 1`, "signed consents are immutable"},
		{`UPDATE consents SET expires_at = '2099-01-01T00:00:00Z' WHERE id = 1`, "signed consents are immutable"},
		{`UPDATE consents SET serial = 'other' WHERE id = 1`, "signed consents are immutable"},
		{`DELETE FROM consents WHERE id = 2`, "consents are never deleted"},
		{`DELETE FROM devices WHERE id = 1`, "devices are retired, never deleted"},
		{`UPDATE consent_signatures SET typed_name = 'Mallory'`, "signatures are immutable"},
		{`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
			VALUES (2, 1, 'zoe@example.com', 'zoe', 'forged', 'Zoë', '\x89', now(), 'link')`, "a signature is of the request's own terms"},
		{`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
			VALUES (2, 2, 'ann@example.com', 'ann', 'sha', 'Ann', '\x89', now(), 'link')`, "only a signer the request names can sign it"},
		{`UPDATE signers SET active = true WHERE id = 2`, "a removed signer stays removed: add them to the roster again"},
		{`UPDATE consent_policies SET required = 2`, "consent policies are append-only: record a new one"},
		// Unlock events are facts.
		{`UPDATE unlock_events SET actor_ref = ''`, "unlock events are never changed, but for the redaction of identifiable data after 90 days under the privacy profile"},
		{`DELETE FROM unlock_events`, "unlock events are deleted only by the retention purge, once past the building's retention"},
		{`INSERT INTO unlock_events (building_id, device_id, event_id, occurred_at, received_at, effective_at, method, result, source)
			VALUES (1, 1, 'e2', '2026-12-01T00:00:00Z', now(), now(), 'code', 'granted', 'mqtt')`, "an unlock event's effective_at is its received_at when flagged clock_skew, else its occurred_at"},
		// The log is appended at the next position only.
		{`INSERT INTO log_leaves (idx, kind, ref_id, hash) VALUES (5, 'audit', 1, '\x` + zeros32 + `')`, "log entries are appended at the next position"},
		{`INSERT INTO log_hashes (idx, hash) VALUES (1, '\x` + zeros32 + `')`, "log hashes are appended at the next position"},
		{`INSERT INTO log_leaves (idx, kind, ref_id, hash) VALUES (0, 'audit', 1, '\x` + zeros32 + `')`, ""},
		{`UPDATE log_leaves SET ref_id = 2`, "the log is append-only"},
		{`DELETE FROM log_leaves`, "the log is append-only"},
		// The report registry.
		{`UPDATE reports SET sha256 = repeat('b', 64)`, "a finished report is never changed"},
		{`DELETE FROM reports`, "reports are never deleted from the registry"},
	} {
		err := exec(c.stmt)
		if c.message == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.stmt, err)
			}
			continue
		}
		wantRefused(t, c.stmt, err, c.message)
	}
}

const zeros32 = "0000000000000000000000000000000000000000000000000000000000000000"

// What the rules allow they let through: the retention purge of an event
// past its building's retention (its day and open anomaly counted down),
// the redaction of an event's identifiable data after 90 days under the
// privacy profile, an acknowledgement of an anomaly, and under that profile
// an enable with a complete vendor disclosure record only.
func TestRulesAllow(t *testing.T) {
	d, exec := ruleWorld(t)
	ctx := context.Background()
	must := func(sql string) {
		t.Helper()
		if err := exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := d.Pool().QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	old := `now() - interval '100 days'`
	must(`UPDATE buildings SET unlock_retention_days = 30, privacy_profile = 'nyc_tdpa', privacy_profile_at = now() WHERE id = 1`)
	must(`INSERT INTO unlock_events (id, building_id, device_id, event_id, occurred_at, received_at, effective_at, method, actor_ref, result, anomalies, source)
		VALUES (2, 1, 1, 'old', ` + old + `, ` + old + `, ` + old + `, 'code', 'courier 9', 'denied', 8, 'mqtt'),
		       (3, 1, 1, 'old2', ` + old + `, ` + old + `, ` + old + `, 'code', 'courier 9', 'granted', 0, 'mqtt')`)
	if n := count(`SELECT n FROM building_open_anomalies WHERE building_id = 1`); n != 2 {
		t.Fatalf("open anomalies: %d, want 2", n)
	}
	// Redaction: the journal entry and the record first, then the event.
	must(`INSERT INTO audit_entries (id, at, actor, action, building_id) VALUES (500, now(), 'system', 'unlock.redact', 1)`)
	must(`INSERT INTO unlock_redactions (unlock_id, redaction_id, leaf, redacted) VALUES (3, 500, '\x` + zeros32 + `', '\x` + zeros32 + `')`)
	wantRefused(t, "redaction under another entry", exec(`UPDATE unlock_events SET actor_ref = '', redaction_id = 1, redacted_at = now() WHERE id = 3`),
		"unlock events are never changed, but for the redaction of identifiable data after 90 days under the privacy profile")
	must(`UPDATE unlock_events SET actor_ref = '', redaction_id = 500, redacted_at = now() WHERE id = 3`)
	wantRefused(t, "redacted twice", exec(`UPDATE unlock_events SET actor_ref = '', redaction_id = 500, redacted_at = now() WHERE id = 3`),
		"unlock events are never changed, but for the redaction of identifiable data after 90 days under the privacy profile")
	// Acknowledgement: of an anomalous event of the building only.
	wantRefused(t, "ack of a plain event", exec(`INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (3, 1, now(), 'm', 'ok')`),
		"only an anomalous unlock event of the building can be acknowledged")
	must(`INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (1, 1, now(), 'm', 'false alarm')`)
	if n := count(`SELECT n FROM building_open_anomalies WHERE building_id = 1`); n != 1 {
		t.Fatalf("open anomalies after an acknowledgement: %d, want 1", n)
	}
	// The purge: past retention only; the open anomaly and day counts go with it.
	wantRefused(t, "purge a recent event", exec(`DELETE FROM unlock_events WHERE id = 1`),
		"unlock events are deleted only by the retention purge, once past the building's retention")
	days := count(`SELECT COALESCE(SUM(granted + denied), 0) FROM unlock_daily WHERE building_id = 1`)
	must(`DELETE FROM unlock_events WHERE id IN (2, 3)`)
	if n := count(`SELECT n FROM building_open_anomalies WHERE building_id = 1`); n != 0 {
		t.Errorf("open anomalies after the purge: %d, want 0", n)
	}
	if n := count(`SELECT COALESCE(SUM(granted + denied), 0) FROM unlock_daily WHERE building_id = 1`); n != days-2 {
		t.Errorf("day counts after purging 2 events: %d, want %d", n, days-2)
	}
	if n := count(`SELECT COUNT(*) FROM unlock_daily WHERE granted = 0 AND denied = 0 AND anomalous = 0`); n != 0 {
		t.Errorf("%d days counted down to nothing kept", n)
	}
	// Under the profile: an enable needs a complete disclosure record.
	wantRefused(t, "enable without disclosure", exec(`UPDATE devices SET desired_state = 'disabled' WHERE id = 1; UPDATE devices SET desired_state = 'enabled' WHERE id = 1`),
		"under the Tenant Data Privacy Act profile no device is enabled without a complete vendor disclosure record")
	must(`INSERT INTO vendor_disclosures (id, building_id, legal_name, data_collected, purpose, retention, policy_url, created_at, updated_at)
		VALUES (1, 1, 'Acme Inc.', 'codes', 'deliveries', '90 days', 'https://acme.example/privacy', now(), now())`)
	must(`UPDATE devices SET vendor_disclosure_id = 1, desired_state = 'enabled' WHERE id = 1`)
	wantRefused(t, "empty the disclosure of an enabled device", exec(`UPDATE vendor_disclosures SET purpose = ' ' WHERE id = 1`),
		"an enabled device names this vendor disclosure record: it must stay complete")
}
