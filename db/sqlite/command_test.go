package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Delivery records (MarkSentMany) are held and written by the device's next
// transaction — its report, normally — so that recording "sent" never takes
// the writer ahead of the report.
func TestDeviceDeliveryRecordsRideOnTheReport(t *testing.T) {
	w := newDeviceWorld(t)
	w.svc.SentFlushDelay = time.Hour // only transactions write them here
	ctx := context.Background()
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	other := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	c1, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := w.svc.SetDesiredState(w.ctx(w.mgrA), other, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	pushed := *w.now
	if err := w.svc.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}, {DeviceID: other, CommandID: c2.ID}}); err != nil {
		t.Fatal(err)
	}
	if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("held record written already: %+v", c)
	}

	*w.now = w.now.Add(time.Second)
	w.report(t, id, enabled, 1)
	c := w.mustCommand(t, id, 1)
	if c.Status != doorledger.CommandConfirmed || c.Attempts != 1 || !c.SentAt.Equal(pushed) || !c.ConfirmedAt.Equal(*w.now) {
		t.Errorf("after the confirming report: status %s, attempts %d, sent %v, confirmed %v; want confirmed, 1, %v, %v",
			c.Status, c.Attempts, c.SentAt, c.ConfirmedAt, pushed, *w.now)
	}
	if c := w.mustCommand(t, other, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("another device's record was written by this report: %+v", c)
	}

	// A refused report changes nothing of the device, but the delivery it
	// carries happened: it is written, once.
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id = ?`, other); err != nil {
		t.Fatal(err)
	}
	err = w.svc.ReportState(ctx, doorledger.ReportedState{DeviceID: other, State: enabled, Version: 1})
	wantCode(t, "report of a retired device", err, doorledger.EUNAUTHORIZED)
	for i := 0; i < 2; i++ {
		if i > 0 {
			if err := w.svc.FlushSent(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if c := w.mustCommand(t, other, 1); c.Status != doorledger.CommandSent || c.Attempts != 1 || !c.SentAt.Equal(pushed) {
			t.Errorf("refused report, then %d flushes: %+v", i, c)
		}
	}
	if c := w.mustCommand(t, id, 1); c.Attempts != 1 {
		t.Errorf("record written twice: %d attempts", c.Attempts)
	}
}

// Without a transaction of its device, a record is written on its own after
// SentFlushDelay.
func TestDeviceDeliveryRecordsFlushOnTheirOwn(t *testing.T) {
	w := newDeviceWorld(t)
	w.svc.SentFlushDelay = time.Millisecond
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	c1, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.MarkSentMany(context.Background(), []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.mustCommand(t, id, 1).Status != doorledger.CommandSent {
		if time.Now().After(deadline) {
			t.Fatal("the held record was never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := w.mustCommand(t, id, 1); c.Attempts != 1 {
		t.Errorf("attempts %d, want 1", c.Attempts)
	}
}

// A transaction that fails gives the records it took back, and a later one
// writes them, once.
func TestDeviceDeliveryRecordsSurviveAFailedReport(t *testing.T) {
	w := newDeviceWorld(t)
	w.svc.SentFlushDelay = time.Hour
	ctx := context.Background()
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	c1, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	// The writer has one connection: a temporary trigger on it fails the
	// report's transaction where it writes the delivery record.
	if _, err := w.d.Writer().Exec(`CREATE TEMP TRIGGER fail_delivery BEFORE UPDATE OF attempts ON commands
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	err = w.svc.ReportState(ctx, doorledger.ReportedState{DeviceID: id, State: enabled, Version: 1})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("report with the injected failure: %v", err)
	}
	if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandPending || c.Attempts != 0 {
		t.Errorf("the failed transaction left: %+v", c)
	}
	if _, err := w.d.Writer().Exec(`DROP TRIGGER temp.fail_delivery`); err != nil {
		t.Fatal(err)
	}
	w.report(t, id, enabled, 1)
	if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed || c.Attempts != 1 {
		t.Errorf("after the report went through: %+v", c)
	}
}

// Reports that arrive while the writer is busy share one transaction; a
// refused report in the group changes nothing and does not stop the others.
func TestDeviceReportsGroupCommit(t *testing.T) {
	w := newDeviceWorld(t)
	const n = 20
	var ids []int64
	for i := 0; i < n; i++ {
		id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
		if _, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	retired, rogue := ids[0], w.device(t, w.A, nil, 0, "Shady") // rogue: no consent, says it is enabled
	if _, err := w.d.Writer().Exec(`UPDATE devices SET retired = 1 WHERE id = ?`, retired); err != nil {
		t.Fatal(err)
	}
	groups0, reports0 := w.svc.ReportStats()

	// Hold the writer so that every report queues behind it.
	hold, err := w.d.Writer().Begin()
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n+1)
	report := func(id int64, state doorledger.DeviceState, version int64) {
		err := w.svc.ReportState(context.Background(), doorledger.ReportedState{DeviceID: id, State: state, Version: version})
		if err != nil {
			err = fmt.Errorf("device %d: %w", id, err)
		}
		errs <- err
	}
	for _, id := range ids {
		go report(id, enabled, 1)
	}
	go report(rogue, enabled, 0)
	time.Sleep(100 * time.Millisecond) // let them all queue behind it
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	var refused []error
	for i := 0; i < n+1; i++ {
		if err := <-errs; err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) != 1 || doorledger.ErrorCode(refused[0]) != doorledger.EUNAUTHORIZED {
		t.Fatalf("errors %v, want only the retired device's EUNAUTHORIZED", refused)
	}
	for _, id := range ids[1:] {
		if c := w.mustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed {
			t.Errorf("device %d: command %s", id, c.Status)
		}
	}
	if d := w.mustDevice(t, retired); d.ReportedState != "" || !d.LastSeenAt.IsZero() {
		t.Errorf("the refused report was written: %+v", d)
	}
	if d := w.mustDevice(t, rogue); !d.Unconsented || d.DesiredState != disabled || d.DesiredVersion != 1 {
		t.Errorf("rogue device after its report: %+v", d)
	}
	var pushedRogue bool
	for _, call := range w.pushCalls() {
		for _, ds := range call {
			pushedRogue = pushedRogue || (ds.DeviceID == rogue && ds.State == disabled)
		}
	}
	if !pushedRogue {
		t.Error("the rogue device was not told to disable")
	}
	groups, reports := w.svc.ReportStats()
	groups, reports = groups-groups0, reports-reports0
	if reports != n+1 || groups >= reports {
		t.Errorf("%d reports in %d transactions, want %d in fewer", reports, groups, n+1)
	}
	t.Logf("%d reports in %d transactions", reports, groups)
}
