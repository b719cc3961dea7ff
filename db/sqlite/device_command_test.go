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

// A lockdown skips retired devices, unless one is somehow still enabled,
// and their states are not published at start-up; a lockdown's progress counts the devices' confirmations (the behaviour of
// DisableDevices itself is dbtest's DeviceDisableDevices).
func TestDeviceDisableDevicesRetired(t *testing.T) {
	w := newDeviceWorld(t)
	a1 := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	a2 := w.device(t, w.A, w.inst2, 0, "Acme")
	a4 := w.device(t, w.A, w.inst2, 0, "Bolt")
	a5 := w.device(t, w.A, w.inst2, w.activeConsent(t, w.A), "Cobalt")
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
	lock, err := w.svc.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, c := range lock {
		got = append(got, c.DeviceID)
	}
	if fmt.Sprint(got) != fmt.Sprint([]int64{a1, a2, a5}) {
		t.Errorf("lockdown disabled %v, want %v", got, []int64{a1, a2, a5})
	}
	if n := w.count(t, `SELECT COUNT(*) FROM commands WHERE device_id = ?`, a4); n != 0 {
		t.Errorf("retired device got %d commands", n)
	}
	// A retired device's state is not published at start-up.
	pending, err := w.svc.PendingDesired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var published []int64
	for _, p := range pending {
		published = append(published, p.DeviceID)
	}
	if fmt.Sprint(published) != fmt.Sprint([]int64{a1, a2}) {
		t.Errorf("PendingDesired publishes %v, want %v (not the retired a5)", published, []int64{a1, a2})
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
	if n, total := progress(mgr); n != 0 || total != 3 {
		t.Errorf("progress %d of %d, want 0 of 3", n, total)
	}
	w.report(t, a2, disabled, lock[1].Version)
	if n, total := progress(mgr); n != 1 || total != 3 {
		t.Errorf("progress %d of %d, want 1 of 3", n, total)
	}
	if n, total := progress(w.ctx(w.mgrB)); n != 0 || total != 0 {
		t.Errorf("another building's manager sees progress %d of %d", n, total)
	}
}
