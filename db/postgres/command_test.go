package postgres_test

import (
	"context"
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
