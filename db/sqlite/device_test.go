package sqlite_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// deviceWorld is two buildings with their people, and a recorder of the
// desired states handed to the device controller.
type deviceWorld struct {
	d   *sqlite.DB
	now *time.Time
	svc *sqlite.DeviceService

	A, B                      int64 // buildings
	signerA, signerB          int64
	admin, mgrA, mgrB, boardA *doorledger.User
	inst1, inst2              *doorledger.User // both invited to A
	serial                    int
	mu                        sync.Mutex
	pushes                    [][]doorledger.DesiredState
	pushErrs                  []string
}

func newDeviceWorld(t *testing.T) *deviceWorld {
	t.Helper()
	d, now := MustOpenDB(t)
	// The triggers compare consent expiry with SQLite's real clock, so the
	// service's clock must not be in the past.
	*now = time.Now().UTC().Truncate(time.Second)
	w := &deviceWorld{d: d, now: now, svc: sqlite.NewDeviceService(d)}
	buildings, users := sqlite.NewBuildingService(d), sqlite.NewUserService(d)
	for _, b := range []struct {
		id     *int64
		signer *int64
		name   string
	}{{&w.A, &w.signerA, "Alder Court"}, {&w.B, &w.signerB, "Birch House"}} {
		bld, err := buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: b.name, Address: "1 " + b.name, Timezone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		*b.id = bld.ID
		sg, err := buildings.AddSigner(sys(), bld.ID, doorledger.SignerInput{Name: "Pat Owner", Title: "Board president", Email: "pat@" + strings.ReplaceAll(strings.ToLower(b.name), " ", "") + ".example"})
		if err != nil {
			t.Fatal(err)
		}
		*b.signer = sg.ID
	}
	for _, u := range []struct {
		p      **doorledger.User
		email  string
		role   doorledger.Role
		grants []int64
	}{
		{&w.admin, "admin@example.com", doorledger.RoleAdmin, nil},
		{&w.mgrA, "mgr-a@example.com", doorledger.RoleManager, []int64{w.A}},
		{&w.mgrB, "mgr-b@example.com", doorledger.RoleManager, []int64{w.B}},
		{&w.boardA, "board-a@example.com", doorledger.RoleBoard, []int64{w.A}},
		{&w.inst1, "inst1@example.com", doorledger.RoleInstaller, []int64{w.A}},
		{&w.inst2, "inst2@example.com", doorledger.RoleInstaller, []int64{w.A}},
	} {
		nu, err := users.CreateUser(sys(), doorledger.NewUser{Email: u.email, Name: u.email, Role: u.role, Password: "correct horse battery"})
		if err != nil {
			t.Fatal(err)
		}
		*u.p = nu
		for _, b := range u.grants {
			if err := buildings.GrantAccess(sys(), b, nu.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Record what reaches the controller, and check it is committed by then:
	// the read pool only sees committed data.
	d.OnDesired = func(states []doorledger.DesiredState) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pushes = append(w.pushes, states)
		for _, s := range states {
			var v int64
			if err := d.Reader().QueryRow(`SELECT desired_version FROM devices WHERE id = ?`, s.DeviceID).Scan(&v); err != nil || v < s.Version {
				w.pushErrs = append(w.pushErrs, fmt.Sprintf("device %d: pushed version %d before commit (committed %d, %v)", s.DeviceID, s.Version, v, err))
			}
		}
	}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, e := range w.pushErrs {
			t.Error(e)
		}
	})
	return w
}

func (w *deviceWorld) ctx(u *doorledger.User) context.Context {
	return doorledger.NewContextWithUser(context.Background(), u)
}

func (w *deviceWorld) pushCalls() [][]doorledger.DesiredState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]doorledger.DesiredState(nil), w.pushes...)
}

func dbTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// consent inserts a consent row directly, with the evidence a signed one needs.
func (w *deviceWorld) consent(t *testing.T, building int64, status doorledger.ConsentStatus, expires time.Time) int64 {
	t.Helper()
	signer := w.signerA
	if building == w.B {
		signer = w.signerB
	}
	at := dbTime(*w.now)
	var res interface{ LastInsertId() (int64, error) }
	var err error
	switch status {
	case doorledger.ConsentAwaiting, doorledger.ConsentDeclined:
		res, err = w.d.Writer().Exec(`INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at)
			VALUES (?, ?, ?, 'Acme', 'K1', 'C-1', 'lobby', 'front door', 'link', ?, ?, ?)`, building, w.inst1.ID, signer, at, status, at)
	default:
		res, err = w.d.Writer().Exec(`INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
			terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at)
			VALUES (?, ?, ?, 'Acme', 'K1', 'C-1', 'lobby', 'front door', 'link', ?, 'awaiting_signature', ?,
			'the terms', 'abc123', 'Pat Owner', x'89504e47', ?, 'UTC', '192.0.2.1', 'test', 'link', ?)`,
			building, w.inst1.ID, signer, at, at, at, dbTime(expires))
	}
	if err != nil {
		t.Fatalf("insert %s consent: %v", status, err)
	}
	id, _ := res.LastInsertId()
	if status != doorledger.ConsentAwaiting && status != doorledger.ConsentDeclined {
		signDirectly(t, w.d.Writer(), id, string(status))
	}
	return id
}

// activeConsent is a signed consent of the building that lasts a year.
func (w *deviceWorld) activeConsent(t *testing.T, building int64) int64 {
	t.Helper()
	return w.consent(t, building, doorledger.ConsentSigned, w.now.AddDate(1, 0, 0))
}

// device inserts a disabled device directly (installer and consent 0: none).
func (w *deviceWorld) device(t *testing.T, building int64, installer *doorledger.User, consentID int64, vendor string) int64 {
	t.Helper()
	w.serial++
	var inst, cons any
	if installer != nil {
		inst = installer.ID
	}
	if consentID != 0 {
		cons = consentID
	}
	res, err := w.d.Writer().Exec(`INSERT INTO devices (building_id, vendor, model, serial, location, installer_id, consent_id, origin, created_at)
		VALUES (?, ?, 'K1', ?, 'lobby panel', ?, ?, 'consent_request', ?)`, building, vendor, fmt.Sprintf("SN-%04d", w.serial), inst, cons, dbTime(*w.now))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

func (w *deviceWorld) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := w.d.Reader().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *deviceWorld) mustDevice(t *testing.T, id int64) *doorledger.Device {
	t.Helper()
	dev, err := w.svc.FindDeviceByID(sys(), id)
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

func (w *deviceWorld) mustCommand(t *testing.T, deviceID int64, version int64) *doorledger.Command {
	t.Helper()
	cmds, err := w.svc.FindCommands(sys(), doorledger.CommandFilter{DeviceID: deviceID})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if c.Version == version {
			return c
		}
	}
	t.Fatalf("device %d has no command of version %d", deviceID, version)
	return nil
}

func (w *deviceWorld) report(t *testing.T, id int64, state doorledger.DeviceState, version int64) {
	t.Helper()
	if err := w.svc.ReportState(context.Background(), doorledger.ReportedState{DeviceID: id, State: state, Version: version, At: time.Now()}); err != nil {
		t.Fatalf("report %s v%d of device %d: %v", state, version, id, err)
	}
}

func wantRefused(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: err = %v, want the database to refuse with %q", what, err, msg)
	}
}

const (
	ruleMsg    = "no device is enabled without an active consent"
	endRuleMsg = "disable the devices of a consent before ending it"
	immutable  = "signed consents are immutable"
	enabled    = doorledger.StateEnabled
	disabled   = doorledger.StateDisabled
)

// THE RULE (1, 2): neither the service nor a direct write enables a device
// without an active consent of its own building.
func TestDeviceRuleNoEnableWithoutActiveConsent(t *testing.T) {
	w := newDeviceWorld(t)
	for _, tt := range []struct {
		name    string
		consent func() int64
	}{
		{"no consent", func() int64 { return 0 }},
		{"awaiting signature", func() int64 { return w.consent(t, w.A, doorledger.ConsentAwaiting, time.Time{}) }},
		{"declined", func() int64 { return w.consent(t, w.A, doorledger.ConsentDeclined, time.Time{}) }},
		{"withdrawn", func() int64 { return w.consent(t, w.A, doorledger.ConsentWithdrawn, w.now.AddDate(1, 0, 0)) }},
		{"disputed", func() int64 { return w.consent(t, w.A, doorledger.ConsentDisputed, w.now.AddDate(1, 0, 0)) }},
		{"lapsed", func() int64 { return w.consent(t, w.A, doorledger.ConsentLapsed, w.now.AddDate(1, 0, 0)) }},
		{"signed but expired", func() int64 { return w.consent(t, w.A, doorledger.ConsentSigned, w.now.Add(-time.Hour)) }},
		{"signed, of another building", func() int64 { return w.activeConsent(t, w.B) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := w.device(t, w.A, w.inst1, tt.consent(), "Acme")
			for _, u := range []context.Context{w.ctx(w.mgrA), w.ctx(w.admin), sys()} {
				_, err := w.svc.SetDesiredState(u, id, enabled, "please")
				wantCode(t, "service enable", err, doorledger.ECONFLICT)
			}
			_, err := w.d.Writer().Exec(`UPDATE devices SET desired_state = 'enabled' WHERE id = ?`, id)
			wantRefused(t, "direct UPDATE", err, ruleMsg)
			_, err = w.d.Writer().Exec(`UPDATE devices SET desired_state = 'enabled', desired_version = 7 WHERE id = ?`, id)
			wantRefused(t, "direct UPDATE with a version", err, ruleMsg)

			dev := w.mustDevice(t, id)
			if dev.DesiredState != disabled || dev.DesiredVersion != 0 {
				t.Errorf("device after refusals: %s v%d, want disabled v0", dev.DesiredState, dev.DesiredVersion)
			}
			if n := w.count(t, `SELECT COUNT(*) FROM commands WHERE device_id = ?`, id); n != 0 {
				t.Errorf("%d commands recorded, want none", n)
			}
		})
	}
	if calls := w.pushCalls(); len(calls) != 0 {
		t.Errorf("refused enables reached the controller: %v", calls)
	}

	// INSERT of an enabled device: refused without an active consent of the
	// building, accepted with one.
	insert := func(consentID any) error {
		w.serial++
		_, err := w.d.Writer().Exec(`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at)
			VALUES (?, 'Acme', 'K1', ?, 'lobby', ?, 'consent_request', 'enabled', ?)`, w.A, fmt.Sprintf("INS-%d", w.serial), consentID, dbTime(*w.now))
		return err
	}
	wantRefused(t, "INSERT enabled without consent", insert(nil), ruleMsg)
	wantRefused(t, "INSERT enabled with an expired consent", insert(w.consent(t, w.A, doorledger.ConsentSigned, w.now.Add(-time.Minute))), ruleMsg)
	wantRefused(t, "INSERT enabled with a withdrawn consent", insert(w.consent(t, w.A, doorledger.ConsentWithdrawn, w.now.AddDate(1, 0, 0))), ruleMsg)
	wantRefused(t, "INSERT enabled with another building's consent", insert(w.activeConsent(t, w.B)), ruleMsg)
	if err := insert(w.activeConsent(t, w.A)); err != nil {
		t.Errorf("INSERT enabled with an active consent: %v", err)
	}

	// An enabled device cannot be moved onto a dead consent or to another building.
	good := w.activeConsent(t, w.A)
	id := w.device(t, w.A, w.inst1, good, "Acme")
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, ""); err != nil {
		t.Fatal(err)
	}
	dead := w.consent(t, w.A, doorledger.ConsentWithdrawn, w.now.AddDate(1, 0, 0))
	_, err := w.d.Writer().Exec(`UPDATE devices SET consent_id = ? WHERE id = ?`, dead, id)
	wantRefused(t, "move enabled device to a withdrawn consent", err, ruleMsg)
	_, err = w.d.Writer().Exec(`UPDATE devices SET consent_id = NULL WHERE id = ?`, id)
	wantRefused(t, "drop the consent of an enabled device", err, ruleMsg)
	_, err = w.d.Writer().Exec(`UPDATE devices SET building_id = ? WHERE id = ?`, w.B, id)
	wantRefused(t, "move enabled device to another building", err, ruleMsg)
}

// THE RULE (3): a consent cannot end while a device under it is enabled; the
// service path (disable, then end) works, and the ended consent stays ended.
func TestDeviceRuleConsentCannotEndUnderEnabledDevice(t *testing.T) {
	w := newDeviceWorld(t)
	consent := w.activeConsent(t, w.A)
	id := w.device(t, w.A, w.inst1, consent, "Acme")
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "signed"); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{"withdrawn", "disputed", "lapsed"} {
		_, err := w.d.Writer().Exec(`UPDATE consents SET status = ?, status_at = ? WHERE id = ?`, status, dbTime(*w.now), consent)
		wantRefused(t, "end consent as "+status, err, endRuleMsg)
	}
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, disabled, "withdrawing"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE consents SET status = 'withdrawn', status_at = ? WHERE id = ?`, dbTime(*w.now), consent); err != nil {
		t.Fatalf("end consent after disabling: %v", err)
	}
	_, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "again")
	wantCode(t, "enable under the withdrawn consent", err, doorledger.ECONFLICT)
	_, err = w.d.Writer().Exec(`UPDATE consents SET status = 'signed' WHERE id = ?`, consent)
	wantRefused(t, "revive a withdrawn consent", err, "consent")
	if got := w.mustDevice(t, id).ConsentState; got != doorledger.ConsentWithdrawn {
		t.Errorf("ConsentState = %q, want withdrawn", got)
	}
}

// THE RULE (5): signed evidence cannot change; consents and devices are never deleted.
func TestDeviceRuleEvidenceImmutableNothingDeleted(t *testing.T) {
	w := newDeviceWorld(t)
	consent := w.activeConsent(t, w.A)
	id := w.device(t, w.A, w.inst1, consent, "Acme")
	for _, stmt := range []string{
		`UPDATE consents SET typed_name = 'Mallory' WHERE id = ?`,
		`UPDATE consents SET signature_png = x'00' WHERE id = ?`,
		`UPDATE consents SET terms_sha256 = 'forged' WHERE id = ?`,
		`UPDATE consents SET expires_at = '2099-01-01T00:00:00.000000Z' WHERE id = ?`,
		`UPDATE consents SET signed_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?`,
		`UPDATE consents SET building_id = building_id + 1 WHERE id = ?`,
		`UPDATE consents SET serial = 'other' WHERE id = ?`,
	} {
		_, err := w.d.Writer().Exec(stmt, consent)
		wantRefused(t, stmt, err, immutable)
	}
	_, err := w.d.Writer().Exec(`DELETE FROM consents WHERE id = ?`, consent)
	wantRefused(t, "delete consent", err, "consents are never deleted")
	_, err = w.d.Writer().Exec(`DELETE FROM devices WHERE id = ?`, id)
	wantRefused(t, "delete device", err, "devices are retired, never deleted")
}

// A signed consent past its expiry shows as lapsed before the lapse job
// records it (who sees which device is dbtest's DeviceAccess).
func TestDeviceConsentShownLapsed(t *testing.T) {
	w := newDeviceWorld(t)
	a1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	a2 := w.device(t, w.A, w.inst2, w.consent(t, w.A, doorledger.ConsentSigned, w.now.Add(-time.Hour)), "Acme")
	if got := w.mustDevice(t, a1).ConsentState; got != doorledger.ConsentSigned {
		t.Errorf("a1 ConsentState = %q, want signed", got)
	}
	if got := w.mustDevice(t, a2).ConsentState; got != doorledger.ConsentLapsed {
		t.Errorf("a2 ConsentState = %q, want lapsed (expired)", got)
	}
	list, err := w.svc.FindDevices(w.ctx(w.mgrA), doorledger.DeviceFilter{BuildingID: w.A})
	if err != nil || len(list) != 2 || list[1].ConsentState != doorledger.ConsentLapsed {
		t.Errorf("FindDevices: %+v, %v; want a2 lapsed", list, err)
	}
}

// A consent that runs out while its device is enabled (before the lapse job
// runs): the database refuses to (re-)enable the device on it, bookkeeping on
// the row goes on, and a report from the device disables it at once.
func TestDeviceConsentRunsOutWhileEnabled(t *testing.T) {
	w := newDeviceWorld(t)
	expires := time.Now().Add(1200 * time.Millisecond)
	consent := w.consent(t, w.A, doorledger.ConsentSigned, expires)
	d1 := w.device(t, w.A, w.inst1, consent, "Acme")
	d2 := w.device(t, w.A, w.inst1, consent, "Acme")
	for _, id := range []int64{d1, d2} {
		if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, ""); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(expires) + 100*time.Millisecond)
	*w.now = time.Now().UTC().Truncate(time.Microsecond)

	if _, err := w.d.Writer().Exec(`UPDATE devices SET last_seen_at = ? WHERE id = ?`, dbTime(*w.now), d1); err != nil {
		t.Fatalf("bookkeeping on a device whose consent ran out: %v", err)
	}
	_, err := w.d.Writer().Exec(`UPDATE devices SET desired_state = 'enabled', desired_version = desired_version + 1 WHERE id = ?`, d1)
	wantRefused(t, "enable a device whose consent ran out", err, ruleMsg)
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), d1, enabled, ""); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("service enable on an expired consent: %v", err)
	}

	w.report(t, d2, enabled, 1)
	if dev := w.mustDevice(t, d2); dev.DesiredState != disabled || dev.DesiredVersion != 2 || dev.Unconsented || dev.ReportedVersion != 1 {
		t.Errorf("d2 after its report: %+v", dev)
	}
	if c := w.mustCommand(t, d2, 2); c.RequestedBy != "system" || c.Reason != "its consent is no longer active" {
		t.Errorf("d2 disable = %+v", c)
	}
	if _, err := w.d.Writer().Exec(`UPDATE consents SET status = 'lapsed' WHERE id = ?`, consent); err == nil {
		t.Error("lapsed a consent whose device d1 is still enabled")
	}
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), d1, disabled, "consent ran out"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE consents SET status = 'lapsed' WHERE id = ?`, consent); err != nil {
		t.Errorf("lapse after the devices were disabled: %v", err)
	}
}

func TestDeviceSeen(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, nil, 0, "Acme")
	at := w.now.Add(time.Minute)
	if err := w.svc.DeviceSeen(context.Background(), id, at); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.DeviceSeen(context.Background(), id, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := w.mustDevice(t, id).LastSeenAt; !got.Equal(at) {
		t.Errorf("LastSeenAt = %v, want %v (an older sighting does not move it back)", got, at)
	}
}

// What a device's credential leaves in the database: the hex SHA-256 of the
// secret only, in neither the journal nor the outbox; a retired device is
// refused and gets no new one (the rest is dbtest's DeviceCredential).
func TestDeviceCredentialStored(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, w.inst1, 0, "Acme")
	ctx := context.Background()
	secret, err := w.svc.IssueCredential(w.ctx(w.mgrA), id)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := w.d.Reader().QueryRow(`SELECT secret_hash FROM devices WHERE id = ?`, id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if stored != hex.EncodeToString(sum[:]) {
		t.Errorf("stored %q, want the hex SHA-256 of the secret", stored)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE detail LIKE ? OR detail LIKE ?`, "%"+secret+"%", "%"+stored+"%"); n != 0 {
		t.Errorf("the secret or its hash is in the audit journal")
	}
	if n := w.count(t, `SELECT COUNT(*) FROM outbox WHERE body LIKE ?`, "%"+secret+"%"); n != 0 {
		t.Errorf("the secret is in the outbox")
	}

	// A retired device is refused, and gets no new credential.
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "retired device", w.svc.AuthenticateDevice(ctx, id, secret), doorledger.EUNAUTHORIZED)
	_, err = w.svc.IssueCredential(w.ctx(w.mgrA), id)
	wantCode(t, "credential for a retired device", err, doorledger.ECONFLICT)
}

var wantCode = dbtest.WantCode
