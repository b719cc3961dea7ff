package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/jackc/pgx/v5/pgconn"
)

// The messages of the device rules' triggers (migrations/004).
const (
	enableRule = "no device is enabled without an active consent signed as its policy requires"
	endRule    = "disable the devices of a consent before ending it"
)

// deviceWorld is dbtest's device world on PostgreSQL, with the database
// itself for the writes around the services.
func deviceWorld(t *testing.T) (*dbtest.DeviceWorld, *postgres.DB, func(sql string, args ...any) error) {
	t.Helper()
	s, d := openServices(t)
	w := dbtest.NewDeviceWorld(t, s)
	exec := func(sql string, args ...any) error {
		_, err := d.Pool().Exec(context.Background(), sql, args...)
		return err
	}
	return w, d, exec
}

// THE RULE, below the services: no write enables a device without an
// active consent of its own building (awaiting, withdrawn, another
// building's, none), nor moves an enabled one off its consent or building;
// a consent cannot end under an enabled device; devices are never deleted.
func TestDeviceRules(t *testing.T) {
	w, _, exec := deviceWorld(t)
	mgr := doorledger.NewContextWithUser(context.Background(), w.MgrA)
	enabled := doorledger.StateEnabled

	req, err := w.Consents.RequestConsent(doorledger.NewContextWithUser(context.Background(), w.InstA), w.A, dbtest.Request("SN-AWAIT", w.SignerA))
	if err != nil {
		t.Fatal(err)
	}
	found, err := w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	live, consent := w.ConsentedDevice(t)
	if _, err := w.Devices.SetDesiredState(mgr, live, enabled, ""); err != nil {
		t.Fatal(err)
	}
	_, otherConsent := w.EnabledDevice(t, w.B)
	for _, c := range []struct {
		what   string
		device int64
	}{{"awaiting its consent", req.DeviceID}, {"found, no consent", found.ID}} {
		_, err := w.Devices.SetDesiredState(mgr, c.device, enabled, "")
		dbtest.WantCode(t, "service enable of a device "+c.what, err, doorledger.ECONFLICT)
		wantRefused(t, "enable a device "+c.what, exec(`UPDATE devices SET desired_state = 'enabled' WHERE id = $1`, c.device), enableRule)
		wantRefused(t, "enable a device "+c.what+" with a version", exec(`UPDATE devices SET desired_state = 'enabled', desired_version = 7 WHERE id = $1`, c.device), enableRule)
		if d := w.MustDevice(t, c.device); d.DesiredState != doorledger.StateDisabled {
			t.Errorf("device %s after the refusals: %s", c.what, d.DesiredState)
		}
	}
	wantRefused(t, "insert an enabled device without consent", exec(`INSERT INTO devices (building_id, vendor, model, serial, location, origin, desired_state, created_at)
		VALUES ($1, 'Acme', 'K1', 'INS-1', 'lobby', 'found', 'enabled', now())`, w.A), enableRule)
	wantRefused(t, "insert an enabled device on another building's consent", exec(`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at)
		VALUES ($1, 'Acme', 'K1', 'INS-2', 'lobby', $2, 'consent_request', 'enabled', now())`, w.A, otherConsent), enableRule)
	if err := exec(`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at)
		VALUES ($1, 'Acme', 'K1', 'INS-3', 'lobby', $2, 'consent_request', 'enabled', now())`, w.A, consent); err != nil {
		t.Errorf("insert an enabled device on an active consent of its building: %v", err)
	}

	wantRefused(t, "move an enabled device to another building's consent", exec(`UPDATE devices SET consent_id = $1 WHERE id = $2`, otherConsent, live), enableRule)
	wantRefused(t, "move an enabled device to an awaiting consent", exec(`UPDATE devices SET consent_id = $1 WHERE id = $2`, req.ID, live), enableRule)
	wantRefused(t, "drop the consent of an enabled device", exec(`UPDATE devices SET consent_id = NULL WHERE id = $1`, live), enableRule)
	wantRefused(t, "move an enabled device to another building", exec(`UPDATE devices SET building_id = $1 WHERE id = $2`, w.B, live), enableRule)
	for _, status := range []string{"withdrawn", "disputed", "lapsed"} {
		wantRefused(t, "end the consent as "+status, exec(`UPDATE consents SET status = $1, status_at = now() WHERE id = $2`, status, consent), endRule)
	}
	wantRefused(t, "delete a device", exec(`DELETE FROM devices WHERE id = $1`, found.ID), "devices are retired, never deleted")
	wantRefused(t, "truncate devices", exec(`TRUNCATE devices CASCADE`), "devices are retired, never deleted")
	if d := w.MustDevice(t, live); d.DesiredState != enabled || d.ConsentID != consent || d.BuildingID != w.A {
		t.Errorf("enabled device after the refusals: %+v", d)
	}
}

// The consent gate reads PostgreSQL's own clock: once a consent has run out
// by it, the device under it cannot be enabled again, whatever the
// service's clock says, while bookkeeping on its row goes on; and the
// device's next report disables it.
func TestDeviceConsentRunsOutByTheDatabaseClock(t *testing.T) {
	w, d, exec := deviceWorld(t)
	ctx := context.Background()
	mgr := doorledger.NewContextWithUser(ctx, w.MgrA)
	id, consent := w.EnabledDevice(t, w.A)
	other, _ := w.ConsentedDevice(t)
	if err := exec(`UPDATE devices SET consent_id = $1 WHERE id = $2`, consent, other); err != nil {
		t.Fatal(err)
	}
	// A signed consent's expiry never changes (its triggers refuse): the
	// test gives this one a near expiry with the consents' triggers off, in
	// its own database, as a consent signed for a moment would have.
	for _, stmt := range []string{
		`ALTER TABLE consents DISABLE TRIGGER USER`,
		`UPDATE consents SET expires_at = now() + interval '300 milliseconds' WHERE id = $1`,
		`ALTER TABLE consents ENABLE TRIGGER USER`,
	} {
		args := []any{}
		if stmt[0] == 'U' {
			args = append(args, consent)
		}
		if err := exec(stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var past bool
		if err := d.Pool().QueryRow(ctx, `SELECT expires_at < now() FROM consents WHERE id = $1`, consent).Scan(&past); err != nil {
			t.Fatal(err)
		}
		if past {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the consent never ran out by the database's clock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The service's clock stands still, before the expiry, so the service's
	// own check lets the enable through: the database refuses it.
	var expires time.Time
	if err := d.Pool().QueryRow(ctx, `SELECT expires_at FROM consents WHERE id = $1`, consent).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	if !w.Now.Before(expires) {
		t.Fatalf("the service's clock %v is not before the expiry %v", *w.Now, expires)
	}
	if _, err := w.Devices.SetDesiredState(mgr, other, doorledger.StateEnabled, ""); !isRefusal(err, enableRule) {
		t.Errorf("service enable by a clock before the expiry: %v, want the database's refusal", err)
	}
	if dev := w.MustDevice(t, other); dev.DesiredState != doorledger.StateDisabled || dev.DesiredVersion != 0 {
		t.Errorf("device after the refused enable: %s v%d", dev.DesiredState, dev.DesiredVersion)
	}
	wantRefused(t, "enable under a consent run out", exec(`UPDATE devices SET desired_state = 'enabled', desired_version = desired_version + 1 WHERE id = $1`, other), enableRule)
	if err := exec(`UPDATE devices SET last_seen_at = now() WHERE id = $1`, id); err != nil {
		t.Errorf("bookkeeping on a device whose consent ran out: %v", err)
	}
	*w.Now = time.Now().UTC()
	if got := w.MustDevice(t, other).ConsentState; got != doorledger.ConsentLapsed {
		t.Errorf("ConsentState past the expiry = %q, want lapsed (before the lapse job records it)", got)
	}
	w.Report(t, id, doorledger.StateEnabled, 1)
	if dev := w.MustDevice(t, id); dev.DesiredState != doorledger.StateDisabled || dev.DesiredVersion != 2 || dev.Unconsented {
		t.Errorf("device after its report: %+v", dev)
	}
	if c := w.MustCommand(t, id, 2); c.RequestedBy != "system" || c.Reason != "its consent is no longer active" {
		t.Errorf("the disable = %+v", c)
	}
	_, err := w.Devices.SetDesiredState(mgr, id, doorledger.StateEnabled, "")
	dbtest.WantCode(t, "service enable under a consent run out", err, doorledger.ECONFLICT)
}

// isRefusal reports whether err is a trigger's refusal with the message.
func isRefusal(err error, message string) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "P0001" && e.Message == message
}

// What a device's credential leaves in the database: the hex SHA-256 of the
// secret only (and the broker's hash when BrokerHash is set), in neither the
// journal nor the outbox; a retired device is refused and gets no new one.
// The rest is dbtest's DeviceCredential.
func TestDeviceCredentialStored(t *testing.T) {
	w, d, exec := deviceWorld(t)
	ctx := context.Background()
	svc := w.Devices.(*postgres.DeviceService)
	svc.BrokerHash = func(secret string) (string, error) { return "broker:" + secret[:4], nil }
	id, _ := w.ConsentedDevice(t)
	secret, err := svc.IssueCredential(doorledger.NewContextWithUser(ctx, w.MgrA), id)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	var found bool
	if err := d.Pool().QueryRow(ctx, `SELECT secret_hash, EXISTS (SELECT 1 FROM audit_entries WHERE detail LIKE '%' || $2 || '%' OR detail LIKE '%' || secret_hash || '%')
		FROM devices WHERE id = $1`, id, secret).Scan(&stored, &found); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if stored != hex.EncodeToString(sum[:]) {
		t.Errorf("stored %q, want the hex SHA-256 of the secret", stored)
	}
	if found {
		t.Error("the secret or its hash is in the audit journal")
	}
	creds, err := svc.MosquittoCredentials(sys())
	if err != nil || len(creds) != 1 || creds[0].DeviceID != id || creds[0].Hash != "broker:"+secret[:4] {
		t.Errorf("broker credentials %+v, %v", creds, err)
	}
	_, err = svc.MosquittoCredentials(doorledger.NewContextWithUser(ctx, w.MgrA))
	dbtest.WantCode(t, "broker credentials for a manager", err, doorledger.EFORBIDDEN)

	if err := exec(`UPDATE devices SET retired = true WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	dbtest.WantCode(t, "retired device", svc.AuthenticateDevice(ctx, id, secret), doorledger.EUNAUTHORIZED)
	_, err = svc.IssueCredential(doorledger.NewContextWithUser(ctx, w.MgrA), id)
	dbtest.WantCode(t, "credential for a retired device", err, doorledger.ECONFLICT)
	if creds, err := svc.MosquittoCredentials(sys()); err != nil || len(creds) != 0 {
		t.Errorf("broker credentials of a retired device: %+v, %v", creds, err)
	}
}
