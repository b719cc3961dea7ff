package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// Delivery records (MarkSentMany) are held and written by the device's next
// transaction, its report normally: with the report, not before it. A
// report refused changes nothing of the device and gives the records back;
// a later transaction writes them, once.
func TestDeviceDeliveryRecordsRideOnTheReport(t *testing.T) {
	w, _, exec := deviceWorld(t)
	svc := w.Devices.(*postgres.DeviceService)
	svc.SentFlushDelay = time.Hour // only transactions write them here
	ctx := context.Background()
	mgr := doorledger.NewContextWithUser(ctx, w.MgrA)
	enabled := doorledger.StateEnabled
	id, _ := w.ConsentedDevice(t)
	other, _ := w.ConsentedDevice(t)
	var cmds []*doorledger.Command
	for _, d := range []int64{id, other} {
		c, err := svc.SetDesiredState(mgr, d, enabled, "")
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	pushed := *w.Now
	if err := svc.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: cmds[0].ID}, {DeviceID: other, CommandID: cmds[1].ID}}); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("held record written already: %+v", c)
	}

	// A failed report (a trigger injected on the test's database) writes
	// nothing, and keeps the record held.
	for _, stmt := range []string{
		`CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
		`CREATE TRIGGER test_fail BEFORE UPDATE OF attempts ON commands FOR EACH ROW EXECUTE FUNCTION test_fail()`,
	} {
		if err := exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	err := svc.ReportState(ctx, doorledger.ReportedState{DeviceID: id, State: enabled, Version: 1})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("report with the injected failure: %v", err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("the failed transaction left: %+v", c)
	}
	if err := exec(`DROP TRIGGER test_fail ON commands`); err != nil {
		t.Fatal(err)
	}

	*w.Now = w.Now.Add(time.Second)
	w.Report(t, id, enabled, 1)
	c := w.MustCommand(t, id, 1)
	if c.Status != doorledger.CommandConfirmed || c.Attempts != 1 || !c.SentAt.Equal(pushed) || !c.ConfirmedAt.Equal(*w.Now) {
		t.Errorf("after the confirming report: status %s, attempts %d, sent %v, confirmed %v; want confirmed, 1, %v, %v",
			c.Status, c.Attempts, c.SentAt, c.ConfirmedAt, pushed, *w.Now)
	}
	if c.Took != time.Second {
		t.Errorf("took %v, want 1s (the monotonic clock moved with the test's)", c.Took)
	}
	if c := w.MustCommand(t, other, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("another device's record was written by this report: %+v", c)
	}

	// A report refused (a retired device) gives its device's record back:
	// written once by the next flush.
	if err := exec(`UPDATE devices SET retired = true, desired_state = 'disabled' WHERE id = $1`, other); err != nil {
		t.Fatal(err)
	}
	err = svc.ReportState(ctx, doorledger.ReportedState{DeviceID: other, State: enabled, Version: 1})
	dbtest.WantCode(t, "report of a retired device", err, doorledger.EUNAUTHORIZED)
	for range 2 {
		if err := svc.FlushSent(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if c := w.MustCommand(t, other, 1); c.Status != doorledger.CommandSent || c.Attempts != 1 || !c.SentAt.Equal(pushed) {
		t.Errorf("refused report, then two flushes: %+v", c)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 1 {
		t.Errorf("record written twice: %d attempts", c.Attempts)
	}
}

// Without a transaction of its device, a record is written on its own after
// SentFlushDelay.
func TestDeviceDeliveryRecordsFlushOnTheirOwn(t *testing.T) {
	w, _, _ := deviceWorld(t)
	svc := w.Devices.(*postgres.DeviceService)
	svc.SentFlushDelay = time.Millisecond
	id, _ := w.ConsentedDevice(t)
	c1, err := svc.SetDesiredState(doorledger.NewContextWithUser(context.Background(), w.MgrA), id, doorledger.StateEnabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.MarkSentMany(context.Background(), []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.MustCommand(t, id, 1).Status != doorledger.CommandSent {
		if time.Now().After(deadline) {
			t.Fatal("the held record was never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 1 {
		t.Errorf("attempts %d, want 1", c.Attempts)
	}
}

// A lockdown skips retired devices, unless one is somehow still enabled,
// and their states are not published at start-up; a lockdown's progress (CommandProgress, one array parameter for any number of
// commands) counts the devices' confirmations, in the caller's buildings.
func TestDeviceDisableDevicesRetired(t *testing.T) {
	w, _, exec := deviceWorld(t)
	mgr := doorledger.NewContextWithUser(context.Background(), w.MgrA)
	svc := w.Devices.(*postgres.DeviceService)
	a1, _ := w.EnabledDevice(t, w.A)
	found, err := svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	retired, err := svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-2", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	stillOn, _ := w.EnabledDevice(t, w.A)
	if err := exec(`UPDATE devices SET retired = true WHERE id IN ($1, $2)`, retired.ID, stillOn); err != nil {
		t.Fatal(err)
	}
	lock, err := svc.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, c := range lock {
		got = append(got, c.DeviceID)
	}
	if want := []int64{a1, found.ID, stillOn}; !slices.Equal(got, want) {
		t.Errorf("lockdown disabled %v, want %v", got, want)
	}
	if d := w.MustDevice(t, retired.ID); d.DesiredVersion != 0 {
		t.Errorf("retired device given version %d", d.DesiredVersion)
	}
	// A retired device's state is not published at start-up.
	pending, err := svc.PendingDesired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var published []int64
	for _, p := range pending {
		published = append(published, p.DeviceID)
	}
	if want := []int64{a1, found.ID}; !slices.Equal(published, want) {
		t.Errorf("PendingDesired publishes %v, want %v (not the retired one)", published, want)
	}

	ids := make([]int64, len(lock))
	for i, c := range lock {
		ids[i] = c.ID
	}
	progress := func(ctx context.Context) (int, int) {
		t.Helper()
		n, rest, err := svc.CommandProgress(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		return n, n + len(rest)
	}
	if n, total := progress(mgr); n != 0 || total != 3 {
		t.Errorf("progress %d of %d, want 0 of 3", n, total)
	}
	w.Report(t, a1, doorledger.StateDisabled, lock[0].Version)
	if n, total := progress(mgr); n != 1 || total != 3 {
		t.Errorf("progress %d of %d, want 1 of 3", n, total)
	}
	if n, total := progress(doorledger.NewContextWithUser(context.Background(), w.MgrB)); n != 0 || total != 0 {
		t.Errorf("another building's manager sees progress %d of %d", n, total)
	}
	if n, rest, err := svc.CommandProgress(mgr, nil); n != 0 || rest != nil || err != nil {
		t.Errorf("progress of no commands: %d, %v, %v", n, rest, err)
	}
}

// The controller hears of desired states only once they are committed, and
// never of a transaction that failed: a lockdown that fails on its second
// device (a trigger injected) pushes nothing and leaves the first as it was.
func TestDeviceOnDesiredOnlyAfterCommit(t *testing.T) {
	w, _, exec := deviceWorld(t)
	mgr := doorledger.NewContextWithUser(context.Background(), w.MgrA)
	d1, _ := w.EnabledDevice(t, w.A)
	d2, err := w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	before := len(w.PushCalls())
	for _, stmt := range []string{
		`CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'test failure'; END $$`,
		fmt.Sprintf(`CREATE TRIGGER test_fail BEFORE INSERT ON commands FOR EACH ROW WHEN (NEW.device_id = %d) EXECUTE FUNCTION test_fail()`, d2.ID),
	} {
		if err := exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown"); err == nil || !strings.Contains(err.Error(), "test failure") {
		t.Fatalf("lockdown with a failing device: %v", err)
	}
	if calls := w.PushCalls(); len(calls) != before {
		t.Fatalf("a failed transaction reached the controller: %+v", calls[before:])
	}
	if dev := w.MustDevice(t, d1); dev.DesiredState != doorledger.StateEnabled || dev.DesiredVersion != 1 {
		t.Errorf("d1 after the rollback: %s v%d, want enabled v1", dev.DesiredState, dev.DesiredVersion)
	}
	if err := exec(`DROP TRIGGER test_fail ON commands`); err != nil {
		t.Fatal(err)
	}
	cmds, err := w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	calls := w.PushCalls()
	if len(calls) != before+1 || len(calls[before]) != 2 || calls[before][0].CommandID != cmds[0].ID || calls[before][1].CommandID != cmds[1].ID {
		t.Errorf("pushed %+v, want the two commands in one call", calls[before:])
	}
}

// A device's report and a manager's command of the same device at once,
// while the report carries a held delivery record of the device: both go
// through, neither fails on a deadlock (the report takes the device's row
// before it writes the record, in the order the command takes them).
func TestDeviceReportAndCommandAtOnce(t *testing.T) {
	w, _, _ := deviceWorld(t)
	svc := w.Devices.(*postgres.DeviceService)
	svc.SentFlushDelay = time.Hour
	ctx := context.Background()
	mgr := doorledger.NewContextWithUser(ctx, w.MgrA)
	found, err := svc.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "G-1", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 40 {
		c, err := svc.SetDesiredState(mgr, found.ID, doorledger.StateDisabled, "")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := svc.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: found.ID, CommandID: c.ID, Version: c.Version}}); err != nil {
			t.Fatal(err)
		}
		errs := atOnce(2, func(i int) error {
			if i == 0 {
				return svc.ReportState(ctx, doorledger.ReportedState{DeviceID: found.ID, State: doorledger.StateDisabled, Version: c.Version})
			}
			_, err := svc.SetDesiredState(mgr, found.ID, doorledger.StateDisabled, "")
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, [2]string{"report", "command"}[i], err)
			}
		}
	}
}
