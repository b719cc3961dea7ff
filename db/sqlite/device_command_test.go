package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

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
