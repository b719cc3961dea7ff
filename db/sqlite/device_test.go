package sqlite_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
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

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := doorledger.ErrorCode(err); got != code {
		t.Errorf("%s: err = %v (code %q), want %s", what, err, got, code)
	}
}

func wantRefused(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: err = %v, want the database to refuse with %q", what, err, msg)
	}
}

const (
	ruleMsg     = "no device is enabled without an active consent"
	endRuleMsg  = "disable the devices of a consent before ending it"
	immutable   = "signed consents are immutable"
	enabled     = doorledger.StateEnabled
	disabled    = doorledger.StateDisabled
	alertsQuery = `SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND to_addr = ? AND subject GLOB ?`
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

// THE RULE (4): with an active consent, enabling works and is pushed after commit.
func TestDeviceEnableWithActiveConsent(t *testing.T) {
	w := newDeviceWorld(t)
	consent := w.activeConsent(t, w.A)
	id := w.device(t, w.A, w.inst1, consent, "Acme")
	cmd, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "signed by the board")
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Version != 1 || cmd.State != enabled || cmd.Status != doorledger.CommandPending || cmd.RequestedBy != w.mgrA.Email || cmd.BuildingID != w.A {
		t.Errorf("command = %+v", cmd)
	}
	dev := w.mustDevice(t, id)
	if dev.DesiredState != enabled || dev.DesiredVersion != 1 || !dev.Pending() || dev.ConsentID != consent || dev.ConsentState != doorledger.ConsentSigned {
		t.Errorf("device = %+v", dev)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.enable' AND object_id = ? AND actor = ?`, id, w.mgrA.Email); n != 1 {
		t.Errorf("%d device.enable audit entries, want 1", n)
	}
	calls := w.pushCalls()
	want := doorledger.DesiredState{DeviceID: id, CommandID: cmd.ID, State: enabled, Version: 1, IssuedAt: *w.now}
	if len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != want {
		t.Errorf("pushed %+v, want [[%+v]]", calls, want)
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

func TestDeviceAccess(t *testing.T) {
	w := newDeviceWorld(t)
	a1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	a2 := w.device(t, w.A, w.inst2, w.consent(t, w.A, doorledger.ConsentSigned, w.now.Add(-time.Hour)), "Acme")
	b1 := w.device(t, w.B, w.inst1, 0, "Acme") // inst1 has no grant on B
	for _, id := range []int64{a1, a2} {
		if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, disabled, "setup"); err != nil {
			t.Fatal(err)
		}
	}

	ids := func(ctx context.Context, f doorledger.DeviceFilter) string {
		t.Helper()
		list, err := w.svc.FindDevices(ctx, f)
		if err != nil {
			t.Fatalf("FindDevices(%+v): %v", f, err)
		}
		var s []string
		for _, d := range list {
			s = append(s, fmt.Sprint(d.ID))
		}
		return strings.Join(s, ",")
	}
	list := func(ids ...int64) string {
		var s []string
		for _, id := range ids {
			s = append(s, fmt.Sprint(id))
		}
		return strings.Join(s, ",")
	}

	// A manager of another building: not found, whatever the method.
	mgrB := w.ctx(w.mgrB)
	_, err := w.svc.FindDeviceByID(mgrB, a1)
	wantCode(t, "mgrB FindDeviceByID", err, doorledger.ENOTFOUND)
	_, err = w.svc.SetDesiredState(mgrB, a1, disabled, "")
	wantCode(t, "mgrB SetDesiredState", err, doorledger.ENOTFOUND)
	_, err = w.svc.IssueCredential(mgrB, a1)
	wantCode(t, "mgrB IssueCredential", err, doorledger.ENOTFOUND)
	_, err = w.svc.FindDevices(mgrB, doorledger.DeviceFilter{BuildingID: w.A})
	wantCode(t, "mgrB FindDevices of A", err, doorledger.ENOTFOUND)
	_, err = w.svc.FindCommands(mgrB, doorledger.CommandFilter{DeviceID: a1})
	wantCode(t, "mgrB FindCommands of a1", err, doorledger.ENOTFOUND)
	_, err = w.svc.FindCommands(mgrB, doorledger.CommandFilter{BuildingID: w.A})
	wantCode(t, "mgrB FindCommands of A", err, doorledger.ENOTFOUND)
	_, err = w.svc.RecordFoundDevice(mgrB, w.A, doorledger.DeviceDetails{Vendor: "X", Serial: "1", Location: "panel"})
	wantCode(t, "mgrB RecordFoundDevice in A", err, doorledger.ENOTFOUND)
	_, err = w.svc.DisableDevices(mgrB, doorledger.DeviceFilter{BuildingID: w.A}, "")
	wantCode(t, "mgrB lockdown of A", err, doorledger.ENOTFOUND)
	if got, want := ids(mgrB, doorledger.DeviceFilter{}), list(b1); got != want {
		t.Errorf("mgrB sees %s, want %s", got, want)
	}

	// The board looks but does not touch.
	board := w.ctx(w.boardA)
	if _, err := w.svc.FindDeviceByID(board, a1); err != nil {
		t.Errorf("board FindDeviceByID: %v", err)
	}
	if got, want := ids(board, doorledger.DeviceFilter{}), list(a1, a2); got != want {
		t.Errorf("board sees %s, want %s", got, want)
	}
	_, err = w.svc.SetDesiredState(board, a1, disabled, "")
	wantCode(t, "board SetDesiredState", err, doorledger.EFORBIDDEN)
	_, err = w.svc.IssueCredential(board, a1)
	wantCode(t, "board IssueCredential", err, doorledger.EFORBIDDEN)
	_, err = w.svc.RecordFoundDevice(board, w.A, doorledger.DeviceDetails{Vendor: "X", Serial: "1", Location: "panel"})
	wantCode(t, "board RecordFoundDevice", err, doorledger.EFORBIDDEN)
	_, err = w.svc.DisableDevices(board, doorledger.DeviceFilter{BuildingID: w.A}, "")
	wantCode(t, "board lockdown", err, doorledger.EFORBIDDEN)
	_, err = w.svc.DisableDevices(board, doorledger.DeviceFilter{Vendor: "Acme"}, "")
	wantCode(t, "board disable by vendor", err, doorledger.EFORBIDDEN)
	if cmds, err := w.svc.FindCommands(board, doorledger.CommandFilter{BuildingID: w.A}); err != nil || len(cmds) != 2 {
		t.Errorf("board FindCommands: %d, %v; want 2", len(cmds), err)
	}

	// An installer sees only what they installed, in buildings they were invited to.
	inst := w.ctx(w.inst1)
	if got, want := ids(inst, doorledger.DeviceFilter{}), list(a1); got != want {
		t.Errorf("installer sees %s, want %s", got, want)
	}
	if got := ids(inst, doorledger.DeviceFilter{InstallerID: w.inst2.ID}); got != "" {
		t.Errorf("installer filtering on another installer sees %s", got)
	}
	for _, id := range []int64{a2, b1} {
		_, err = w.svc.FindDeviceByID(inst, id)
		wantCode(t, fmt.Sprintf("installer FindDeviceByID(%d)", id), err, doorledger.ENOTFOUND)
	}
	_, err = w.svc.SetDesiredState(inst, a1, enabled, "")
	wantCode(t, "installer enables own device", err, doorledger.EFORBIDDEN)
	_, err = w.svc.SetDesiredState(inst, a2, disabled, "")
	wantCode(t, "installer disables another's device", err, doorledger.ENOTFOUND)
	if cmds, err := w.svc.FindCommands(inst, doorledger.CommandFilter{BuildingID: w.A}); err != nil || len(cmds) != 1 || cmds[0].DeviceID != a1 {
		t.Errorf("installer FindCommands: %+v, %v; want only a1's", cmds, err)
	}

	// Admins see everything; nobody signed in sees nothing.
	if got, want := ids(w.ctx(w.admin), doorledger.DeviceFilter{}), list(a1, a2, b1); got != want {
		t.Errorf("admin sees %s, want %s", got, want)
	}
	if got, want := ids(w.ctx(w.admin), doorledger.DeviceFilter{Vendor: "acme", InstallerID: w.inst1.ID}), list(a1, b1); got != want {
		t.Errorf("admin by vendor and installer sees %s, want %s", got, want)
	}
	_, err = w.svc.FindDevices(context.Background(), doorledger.DeviceFilter{})
	wantCode(t, "anonymous FindDevices", err, doorledger.EUNAUTHORIZED)

	// The consent state is joined, and an expired signature shows as lapsed.
	if got := w.mustDevice(t, a1).ConsentState; got != doorledger.ConsentSigned {
		t.Errorf("a1 ConsentState = %q, want signed", got)
	}
	if got := w.mustDevice(t, a2).ConsentState; got != doorledger.ConsentLapsed {
		t.Errorf("a2 ConsentState = %q, want lapsed (expired)", got)
	}
	if got := w.mustDevice(t, b1).ConsentState; got != "" {
		t.Errorf("b1 ConsentState = %q, want none", got)
	}
}

func TestDeviceCommandVersionsAndReports(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	mgr := w.ctx(w.mgrA)
	var cmds []*doorledger.Command
	for _, s := range []doorledger.DeviceState{enabled, disabled, enabled} {
		cmd, err := w.svc.SetDesiredState(mgr, id, s, "")
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	list, err := w.svc.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, fmt.Sprintf("v%d %s %s", c.Version, c.State, c.Status))
	}
	if g, want := strings.Join(got, "; "), "v3 enabled pending; v2 disabled superseded; v1 enabled superseded"; g != want {
		t.Errorf("commands, newest first: %s\nwant %s", g, want)
	}
	confirmed := func() int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.confirmed' AND object_id = ?`, cmds[2].ID)
	}
	badReports := func() int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.bad_report' AND object_id = ?`, id)
	}

	// Behind: recorded, confirms nothing.
	w.report(t, id, disabled, 2)
	if dev := w.mustDevice(t, id); dev.ReportedVersion != 2 || dev.ReportedState != disabled || !dev.Pending() {
		t.Errorf("after v2 report: %+v", dev)
	}
	if c := w.mustCommand(t, id, 2); c.Status != doorledger.CommandSuperseded {
		t.Errorf("v2 status = %s, want superseded (a superseded command is never confirmed)", c.Status)
	}

	// The desired version confirms its command, once.
	*w.now = w.now.Add(1500 * time.Millisecond)
	w.report(t, id, enabled, 3)
	c := w.mustCommand(t, id, 3)
	if c.Status != doorledger.CommandConfirmed || !c.ConfirmedAt.Equal(*w.now) || c.Latency() != 1500*time.Millisecond {
		t.Errorf("v3 after report: %+v", c)
	}
	if dev := w.mustDevice(t, id); dev.Pending() || dev.ReportedState != enabled {
		t.Errorf("device after confirmation: %+v", dev)
	}
	w.report(t, id, enabled, 3)
	if n := confirmed(); n != 1 {
		t.Errorf("%d command.confirmed entries after a duplicate, want 1", n)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.confirmed' AND actor = ?`, fmt.Sprintf("device %d", id)); n != 1 {
		t.Errorf("confirmation not audited as the device: %d", n)
	}

	// Out of order: ignored, but the device was seen.
	*w.now = w.now.Add(time.Minute)
	w.report(t, id, disabled, 2)
	if dev := w.mustDevice(t, id); dev.ReportedVersion != 3 || dev.ReportedState != enabled || !dev.LastSeenAt.Equal(*w.now) {
		t.Errorf("after an out-of-order report: reported %s v%d, seen %v (want enabled v3, seen %v)", dev.ReportedState, dev.ReportedVersion, dev.LastSeenAt, *w.now)
	}

	// A version never issued is suspicious: audited, not recorded, not confirmed.
	w.report(t, id, enabled, 9)
	if dev := w.mustDevice(t, id); dev.ReportedVersion != 3 || dev.DesiredVersion != 3 {
		t.Errorf("after a report ahead of desired: %+v", dev)
	}
	if n := badReports(); n != 1 {
		t.Errorf("%d bad_report entries, want 1", n)
	}

	// The right version in the wrong state confirms nothing: the device
	// refused it (TestDeviceRefusedRevoke).
	c4, err := w.svc.SetDesiredState(mgr, id, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	w.report(t, id, enabled, 4)
	if c := w.mustCommand(t, id, 4); c.Status != doorledger.CommandRefused {
		t.Errorf("v4 after a wrong-state report: %s, want refused", c.Status)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.refused' AND object_id = ?`, c4.ID); n != 1 {
		t.Errorf("%d command.refused entries, want 1", n)
	}
	w.report(t, id, disabled, 4)
	if c := w.mustCommand(t, id, 4); c.Status != doorledger.CommandConfirmed || c.ID != c4.ID {
		t.Errorf("v4 after the right report: %+v", c)
	}
	if open, err := w.svc.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id, Open: true}); err != nil || len(open) != 0 {
		t.Errorf("open commands: %+v, %v", open, err)
	}
	if dev := w.mustDevice(t, id); dev.Unconsented {
		t.Errorf("a consented device was flagged")
	}

	// Unknown devices and malformed reports are refused for good.
	err = w.svc.ReportState(context.Background(), doorledger.ReportedState{DeviceID: 9999, State: enabled, Version: 1})
	wantCode(t, "report of an unknown device", err, doorledger.ENOTFOUND)
	err = w.svc.ReportState(context.Background(), doorledger.ReportedState{DeviceID: id, State: "open", Version: 1})
	wantCode(t, "report of a bad state", err, doorledger.EINVALID)
}

// The controller hears of desired states only once they are committed, and
// never of a transaction that failed.
func TestDeviceOnDesiredOnlyAfterCommit(t *testing.T) {
	w := newDeviceWorld(t)
	d1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	d2 := w.device(t, w.A, w.inst2, 0, "Acme")

	// A refused enable pushes nothing.
	if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), d2, enabled, ""); err == nil {
		t.Fatal("enabled without consent")
	}
	// A lockdown that fails on its second device, after the first was decided.
	if _, err := w.d.Writer().Exec(fmt.Sprintf(`CREATE TRIGGER test_fail BEFORE INSERT ON commands WHEN NEW.device_id = %d
		BEGIN SELECT RAISE(ABORT, 'test failure'); END`, d2)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.DisableDevices(w.ctx(w.mgrA), doorledger.DeviceFilter{BuildingID: w.A}, "lockdown"); err == nil || !strings.Contains(err.Error(), "test failure") {
		t.Fatalf("lockdown with a failing device: %v", err)
	}
	if calls := w.pushCalls(); len(calls) != 0 {
		t.Fatalf("a failed transaction reached the controller: %+v", calls)
	}
	if dev := w.mustDevice(t, d1); dev.DesiredVersion != 0 {
		t.Errorf("d1 desired version %d after rollback, want 0", dev.DesiredVersion)
	}
	if _, err := w.d.Writer().Exec(`DROP TRIGGER test_fail`); err != nil {
		t.Fatal(err)
	}
	cmds, err := w.svc.DisableDevices(w.ctx(w.mgrA), doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	calls := w.pushCalls()
	if len(calls) != 1 || len(calls[0]) != 2 || calls[0][0].CommandID != cmds[0].ID || calls[0][1].CommandID != cmds[1].ID {
		t.Errorf("pushed %+v, want the two commands in one call", calls)
	}
}

func TestDeviceUnconsentedReportingEnabled(t *testing.T) {
	w := newDeviceWorld(t)
	mgr := w.ctx(w.mgrA)

	// A manager records a black box found in the panel.
	found, err := w.svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: " Shady ", Serial: "X-1", Location: "basement panel"})
	if err != nil {
		t.Fatal(err)
	}
	if !found.Unconsented || found.DesiredState != disabled || found.ConsentID != 0 || found.InstallerID != 0 || found.Vendor != "Shady" {
		t.Errorf("found device = %+v", found)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.found' AND object_id = ?`, found.ID); n != 1 {
		t.Errorf("%d device.found entries", n)
	}
	for _, to := range []string{w.mgrA.Email, w.boardA.Email} {
		if n := w.count(t, alertsQuery, to, "Unconsented device found*"); n != 1 {
			t.Errorf("%d found-device alerts to %s, want 1", n, to)
		}
	}
	_, err = w.svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Shady", Serial: "X-1", Location: "roof"})
	wantCode(t, "same vendor and serial again", err, doorledger.ECONFLICT)
	_, err = w.svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Model: "?"})
	if f := doorledger.ErrorFields(err); f["vendor"] == "" || f["serial"] == "" || f["location"] == "" {
		t.Errorf("empty found device: %v", err)
	}

	// It reports that it is enabled: flagged, told to disable, alert.
	w.report(t, found.ID, enabled, 0)
	dev := w.mustDevice(t, found.ID)
	if !dev.Unconsented || dev.DesiredState != disabled || dev.DesiredVersion != 1 || dev.ReportedState != enabled {
		t.Errorf("after reporting enabled: %+v", dev)
	}
	if c := w.mustCommand(t, found.ID, 1); c.State != disabled || c.RequestedBy != "system" {
		t.Errorf("command = %+v, want disabled by system", c)
	}
	calls := w.pushCalls()
	if len(calls) != 1 || calls[0][0].DeviceID != found.ID || calls[0][0].State != disabled || calls[0][0].Version != 1 {
		t.Errorf("pushed %+v, want the disable", calls)
	}
	unconsentedAudits := func(id int64) int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.unconsented' AND object_id = ? AND actor = ?`, id, fmt.Sprintf("device %d", id))
	}
	if n := unconsentedAudits(found.ID); n != 1 {
		t.Errorf("%d device.unconsented entries, want 1", n)
	}
	for _, to := range []string{w.mgrA.Email, w.boardA.Email} {
		if n := w.count(t, alertsQuery, to, "UNCONSENTED device*"); n != 1 {
			t.Errorf("%d unconsented alerts to %s, want 1", n, to)
		}
	}
	if n := w.count(t, alertsQuery, w.mgrB.Email, "*"); n != 0 {
		t.Errorf("another building's manager got %d alerts", n)
	}
	// Saying it again changes nothing: no second command, alert or entry.
	w.report(t, found.ID, enabled, 0)
	if dev := w.mustDevice(t, found.ID); dev.DesiredVersion != 1 {
		t.Errorf("desired version %d after a repeat, want 1", dev.DesiredVersion)
	}
	if n := w.count(t, alertsQuery, w.mgrA.Email, "UNCONSENTED device*"); n != 1 || unconsentedAudits(found.ID) != 1 {
		t.Errorf("a repeat alerted again: %d alerts", n)
	}
	w.report(t, found.ID, disabled, 1)
	if c := w.mustCommand(t, found.ID, 1); c.Status != doorledger.CommandConfirmed {
		t.Errorf("disable not confirmed: %s", c.Status)
	}

	// A device awaiting its consent must not be enabled either.
	waiting := w.device(t, w.A, w.inst1, w.consent(t, w.A, doorledger.ConsentAwaiting, time.Time{}), "Acme")
	w.report(t, waiting, enabled, 0)
	if dev := w.mustDevice(t, waiting); !dev.Unconsented || dev.DesiredVersion != 1 || unconsentedAudits(waiting) != 1 {
		t.Errorf("awaiting device reporting enabled: %+v", dev)
	}

	// A device enabled under consent and merely behind the disable that followed
	// the withdrawal is not "unconsented"; one claiming that disable's version
	// while enabled is.
	consent := w.activeConsent(t, w.A)
	lagging := w.device(t, w.A, w.inst1, consent, "Acme")
	if _, err := w.svc.SetDesiredState(mgr, lagging, enabled, ""); err != nil {
		t.Fatal(err)
	}
	w.report(t, lagging, enabled, 1)
	if _, err := w.svc.SetDesiredState(mgr, lagging, disabled, "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE consents SET status = 'withdrawn' WHERE id = ?`, consent); err != nil {
		t.Fatal(err)
	}
	w.report(t, lagging, enabled, 1)
	if dev := w.mustDevice(t, lagging); dev.Unconsented || dev.DesiredVersion != 2 || unconsentedAudits(lagging) != 0 {
		t.Errorf("lagging device: %+v", dev)
	}
	w.report(t, lagging, enabled, 2)
	if dev := w.mustDevice(t, lagging); !dev.Unconsented || dev.DesiredVersion != 3 || unconsentedAudits(lagging) != 1 {
		t.Errorf("device enabled at the disable's version: %+v", dev)
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

func TestDeviceExpireUnconfirmed(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	ctx := context.Background()
	c1, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandSent || c.Attempts != 1 || !c.SentAt.Equal(*w.now) {
		t.Errorf("after MarkSent: %+v", c)
	}
	expire := func() []doorledger.DesiredState {
		t.Helper()
		retries, err := w.svc.ExpireUnconfirmed(ctx, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return retries
	}
	audits := func() int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.not_confirmed' AND object_id = ? AND actor = 'system'`, c1.ID)
	}
	alerts := func(to string) int { return w.count(t, alertsQuery, to, "Device * did not confirm*") }

	*w.now = w.now.Add(3 * time.Minute)
	if r := expire(); len(r) != 0 {
		t.Errorf("retries before the time-out: %+v", r)
	}
	*w.now = w.now.Add(3 * time.Minute)
	want := doorledger.DesiredState{DeviceID: id, CommandID: c1.ID, State: enabled, Version: 1, IssuedAt: c1.RequestedAt}
	for i := 0; i < 2; i++ {
		if r := expire(); len(r) != 1 || r[0] != want {
			t.Errorf("run %d: retries %+v, want [%+v]", i+1, r, want)
		}
		if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandNotConfirmed {
			t.Errorf("run %d: status %s", i+1, c.Status)
		}
		if a, m := audits(), alerts(w.mgrA.Email); a != 1 || m != 1 {
			t.Errorf("run %d: %d audit entries and %d alerts, want 1 and 1", i+1, a, m)
		}
	}
	if n := alerts(w.boardA.Email); n != 0 {
		t.Errorf("the board got %d time-out alerts", n)
	}

	// Retries are counted; a failure is kept; a retried command stays not confirmed.
	if err := w.svc.MarkSent(ctx, c1.ID, errors.New("broker unavailable")); err != nil {
		t.Fatal(err)
	}
	if c := w.mustCommand(t, id, 1); c.Attempts != 2 || c.LastError != "broker unavailable" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a failed retry: %+v", c)
	}
	if err := w.svc.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.mustCommand(t, id, 1); c.Attempts != 3 || c.LastError != "" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a retry: %+v", c)
	}
	expire()
	if a, m := audits(), alerts(w.mgrA.Email); a != 1 || m != 1 {
		t.Errorf("after retrying: %d audit entries and %d alerts, want 1 and 1", a, m)
	}

	// The device comes back and confirms: nothing left to retry.
	w.report(t, id, enabled, 1)
	if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed {
		t.Errorf("late confirmation: %s", c.Status)
	}
	if r := expire(); len(r) != 0 {
		t.Errorf("retries after confirmation: %+v", r)
	}

	// A command never handed over times out as well.
	c2, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	*w.now = w.now.Add(6 * time.Minute)
	if r := expire(); len(r) != 1 || r[0].CommandID != c2.ID || r[0].State != disabled {
		t.Errorf("retries of the unsent disable: %+v", r)
	}
	wantCode(t, "MarkSent of an unknown command", w.svc.MarkSent(ctx, 99999, nil), doorledger.ENOTFOUND)
}

func TestDevicePendingDesired(t *testing.T) {
	w := newDeviceWorld(t)
	mgr := w.ctx(w.mgrA)
	d1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	w.device(t, w.A, w.inst1, 0, "Acme") // never given a desired state: nothing to publish
	d3 := w.device(t, w.B, nil, 0, "Acme")
	d4 := w.device(t, w.A, nil, 0, "Acme")
	if _, err := w.svc.SetDesiredState(mgr, d1, enabled, ""); err != nil {
		t.Fatal(err)
	}
	c2, err := w.svc.SetDesiredState(mgr, d1, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	c3, err := w.svc.SetDesiredState(w.ctx(w.admin), d3, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SetDesiredState(mgr, d4, disabled, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id = ?`, d4); err != nil {
		t.Fatal(err)
	}
	got, err := w.svc.PendingDesired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []doorledger.DesiredState{
		{DeviceID: d1, CommandID: c2.ID, State: disabled, Version: 2, IssuedAt: *w.now},
		{DeviceID: d3, CommandID: c3.ID, State: disabled, Version: 1, IssuedAt: *w.now},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PendingDesired = %+v\nwant %+v", got, want)
	}
}

func TestDeviceCredential(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, w.inst1, 0, "Acme")
	other := w.device(t, w.A, w.inst1, 0, "Acme") // never given a credential
	ctx := context.Background()
	secret, err := w.svc.IssueCredential(w.ctx(w.mgrA), id)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v; want 32 random bytes in base64url", secret, len(raw), err)
	}
	if err := w.svc.AuthenticateDevice(ctx, id, secret); err != nil {
		t.Errorf("right secret: %v", err)
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

	for _, tt := range []struct {
		name   string
		id     int64
		secret string
	}{
		{"wrong secret", id, secret + "x"},
		{"empty secret", id, ""},
		{"another device's secret", other, secret},
		{"no credential issued, empty secret", other, ""},
		{"unknown device", 9999, secret},
	} {
		wantCode(t, tt.name, w.svc.AuthenticateDevice(ctx, tt.id, tt.secret), doorledger.EUNAUTHORIZED)
	}

	// Rotation invalidates the old secret.
	rotated, err := w.svc.IssueCredential(w.ctx(w.admin), id)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "old secret after rotation", w.svc.AuthenticateDevice(ctx, id, secret), doorledger.EUNAUTHORIZED)
	if err := w.svc.AuthenticateDevice(ctx, id, rotated); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.credential' AND object_id = ?`, id); n != 2 {
		t.Errorf("%d device.credential entries, want 2", n)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.credential' AND object_id = ? AND detail = '{"rotated":true}'`, id); n != 1 {
		t.Errorf("the rotation is not marked in the journal")
	}

	// A retired device is refused, and gets no new credential.
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "retired device", w.svc.AuthenticateDevice(ctx, id, rotated), doorledger.EUNAUTHORIZED)
	_, err = w.svc.IssueCredential(w.ctx(w.mgrA), id)
	wantCode(t, "credential for a retired device", err, doorledger.ECONFLICT)
}

func TestDeviceDisableDevices(t *testing.T) {
	w := newDeviceWorld(t)
	a1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	a2 := w.device(t, w.A, w.inst2, 0, "Acme")
	a3 := w.device(t, w.A, w.inst1, 0, "Bolt")
	a4 := w.device(t, w.A, w.inst2, 0, "Bolt")
	a5 := w.device(t, w.A, w.inst2, w.activeConsent(t, w.A), "Cobalt")
	b1 := w.device(t, w.B, w.inst1, 0, "Acme")
	b2 := w.device(t, w.B, w.inst2, 0, "Bolt")
	mgr := w.ctx(w.mgrA)
	for _, id := range []int64{a1, a5} {
		if _, err := w.svc.SetDesiredState(mgr, id, enabled, ""); err != nil {
			t.Fatal(err)
		}
	}
	// a4 is retired (skipped); a5 is retired but somehow still enabled (disabled all the same).
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id IN (?, ?)`, a4, a5); err != nil {
		t.Fatal(err)
	}

	devices := func(cmds []*doorledger.Command) string {
		var s []string
		for _, c := range cmds {
			if c.State != disabled || c.Status != doorledger.CommandPending {
				t.Errorf("command %+v", c)
			}
			s = append(s, fmt.Sprint(c.DeviceID))
		}
		return strings.Join(s, ",")
	}
	ids := func(ids ...int64) string {
		return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		f    doorledger.DeviceFilter
		want string
	}{
		{"manager, one installer", mgr, doorledger.DeviceFilter{InstallerID: w.inst1.ID}, ids(a1, a3)},
		{"manager, one vendor (any case)", mgr, doorledger.DeviceFilter{Vendor: " acme "}, ids(a1, a2)},
		{"manager, vendor in one building", mgr, doorledger.DeviceFilter{Vendor: "Bolt", BuildingID: w.A}, ids(a3)},
		{"admin, one vendor everywhere", w.ctx(w.admin), doorledger.DeviceFilter{Vendor: "Bolt"}, ids(a3, b2)},
		{"admin, one installer everywhere", w.ctx(w.admin), doorledger.DeviceFilter{InstallerID: w.inst1.ID}, ids(a1, a3, b1)},
		{"other manager, one installer", w.ctx(w.mgrB), doorledger.DeviceFilter{InstallerID: w.inst1.ID}, ids(b1)},
	} {
		cmds, err := w.svc.DisableDevices(tt.ctx, tt.f, "installer under investigation")
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := devices(cmds); got != tt.want {
			t.Errorf("%s: disabled %s, want %s", tt.name, got, tt.want)
		}
	}

	// Building lockdown: every device of the building in service, in one push.
	before := len(w.pushCalls())
	lock, err := w.svc.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := devices(lock), ids(a1, a2, a3, a5); got != want {
		t.Errorf("lockdown disabled %s, want %s", got, want)
	}
	if calls := w.pushCalls(); len(calls) != before+1 || len(calls[before]) != 4 {
		t.Errorf("lockdown pushed in %d calls, want 1 of 4", len(calls)-before)
	}
	for _, id := range []int64{a1, a2, a3, a5} {
		if dev := w.mustDevice(t, id); dev.DesiredState != disabled {
			t.Errorf("device %d still %s", id, dev.DesiredState)
		}
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.disable_many' AND building_id = ? AND actor = ?`, w.A, w.mgrA.Email); n < 1 {
		t.Errorf("no device.disable_many entry")
	}
	if n := w.count(t, `SELECT COUNT(*) FROM commands WHERE device_id = ?`, a4); n != 0 {
		t.Errorf("retired device got %d commands", n)
	}

	// The lockdown page's progress.
	cmdIDs := make([]int64, len(lock))
	for i, c := range lock {
		cmdIDs[i] = c.ID
	}
	progress := func(ctx context.Context) (int, int) {
		t.Helper()
		n, rest, err := w.svc.CommandProgress(ctx, cmdIDs)
		if err != nil {
			t.Fatal(err)
		}
		return n, n + len(rest)
	}
	if n, total := progress(mgr); n != 0 || total != 4 {
		t.Errorf("progress %d of %d, want 0 of 4", n, total)
	}
	w.report(t, a2, disabled, lock[1].Version)
	w.report(t, a3, disabled, lock[2].Version)
	if n, total := progress(mgr); n != 2 || total != 4 {
		t.Errorf("progress %d of %d, want 2 of 4", n, total)
	}
	if n, total := progress(w.ctx(w.mgrB)); n != 0 || total != 0 {
		t.Errorf("another building's manager sees progress %d of %d", n, total)
	}

	// Refusals.
	_, err = w.svc.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.B}, "")
	wantCode(t, "lockdown of a building not granted", err, doorledger.ENOTFOUND)
	_, err = w.svc.DisableDevices(mgr, doorledger.DeviceFilter{}, "")
	wantCode(t, "empty filter", err, doorledger.EINVALID)
	_, err = w.svc.DisableDevices(w.ctx(w.inst1), doorledger.DeviceFilter{InstallerID: w.inst1.ID}, "")
	wantCode(t, "installer", err, doorledger.EFORBIDDEN)
	_, err = w.svc.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, strings.Repeat("x", 501))
	wantCode(t, "long reason", err, doorledger.EINVALID)
}
