package dbtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Commands of one device written at once, from several connections (on
// PostgreSQL) or callers: each reads the device's desired version and writes
// the next, so concurrent writers must wait for each other, never write the
// same version twice nor fail on the unique (device, version) (issue 15).
func testDeviceConcurrentCommandsTakeTurns(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	found, err := w.Devices.RecordFoundDevice(as(w.MgrA), w.A, doorledger.DeviceDetails{Vendor: "Shady", Serial: "RACE-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	versions := make(chan int64, writers*each)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				cmd, err := w.Devices.SetDesiredState(as(w.MgrA), found.ID, doorledger.StateDisabled, fmt.Sprintf("writer %d, %d", i, j))
				if err != nil {
					errs <- err
					continue
				}
				versions <- cmd.Version
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(versions)
	for err := range errs {
		t.Errorf("concurrent SetDesiredState: %v", err)
	}
	var got []int64
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("versions written %v, want 1 to %d once each", got, writers*each)
		}
	}
	if d := w.MustDevice(t, found.ID); d.DesiredVersion != writers*each {
		t.Errorf("desired version %d, want %d", d.DesiredVersion, writers*each)
	}
	open, err := w.Devices.FindCommands(as(w.MgrA), doorledger.CommandFilter{DeviceID: found.ID, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Version != writers*each {
		t.Errorf("open commands %+v, want only the last (the rest superseded)", open)
	}
	if n := w.JournalCount(t, "device.disable", found.ID, w.MgrA.Email); n != writers*each {
		t.Errorf("%d device.disable entries, want %d", n, writers*each)
	}
}

// enabledConfirmed is a device of building A enabled under its consent at
// version 1 by the manager and confirmed by the device.
func (w *DeviceWorld) enabledConfirmed(t *testing.T) int64 {
	t.Helper()
	id, _ := w.ConsentedDevice(t)
	if _, err := w.Devices.SetDesiredState(as(w.MgrA), id, doorledger.StateEnabled, ""); err != nil {
		t.Fatal(err)
	}
	w.Report(t, id, doorledger.StateEnabled, 1)
	if dev := w.MustDevice(t, id); !dev.Confirmed() {
		t.Fatalf("device not confirmed at v1: %+v", dev)
	}
	return id
}

// A command the device does not confirm within the time-out is recorded
// not confirmed, journaled and alerted once, and retried until the device
// answers; delivery attempts and their failures are kept on the command.
func testDeviceExpireUnconfirmed(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	id, _ := w.ConsentedDevice(t)
	ctx := context.Background()
	c1, err := w.Devices.SetDesiredState(as(w.MgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandSent || c.Attempts != 1 || !c.SentAt.Equal(*w.Now) {
		t.Errorf("after MarkSent: %+v", c)
	}
	expire := func() []doorledger.DesiredState {
		t.Helper()
		retries, err := w.Controller.ExpireUnconfirmed(ctx, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return retries
	}
	audits := func() int { return w.JournalCount(t, "command.not_confirmed", c1.ID, "system") }
	alerts := func(to string) int { return w.AlertCount(t, to, "Device * did not confirm*") }

	*w.Now = w.Now.Add(3 * time.Minute)
	if r := expire(); len(r) != 0 {
		t.Errorf("retries before the time-out: %+v", r)
	}
	*w.Now = w.Now.Add(3 * time.Minute)
	want := doorledger.DesiredState{DeviceID: id, CommandID: c1.ID, State: enabled, Version: 1, IssuedAt: c1.RequestedAt}
	for i := range 2 {
		if r := expire(); len(r) != 1 || r[0] != want {
			t.Errorf("run %d: retries %+v, want [%+v]", i+1, r, want)
		}
		if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandNotConfirmed {
			t.Errorf("run %d: status %s", i+1, c.Status)
		}
		if a, m := audits(), alerts(w.MgrA.Email); a != 1 || m != 1 {
			t.Errorf("run %d: %d audit entries and %d alerts, want 1 and 1", i+1, a, m)
		}
	}
	if n := alerts(w.BoardA.Email); n != 0 {
		t.Errorf("the board got %d time-out alerts", n)
	}

	// Retries are counted; a failure is kept; a retried command stays not confirmed.
	if err := w.Controller.MarkSent(ctx, c1.ID, errors.New("broker unavailable")); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 2 || c.LastError != "broker unavailable" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a failed retry: %+v", c)
	}
	if err := w.Controller.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 3 || c.LastError != "" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a retry: %+v", c)
	}
	expire()
	if a, m := audits(), alerts(w.MgrA.Email); a != 1 || m != 1 {
		t.Errorf("after retrying: %d audit entries and %d alerts, want 1 and 1", a, m)
	}

	// The device comes back and confirms: nothing left to retry.
	w.Report(t, id, enabled, 1)
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed {
		t.Errorf("late confirmation: %s", c.Status)
	}
	if r := expire(); len(r) != 0 {
		t.Errorf("retries after confirmation: %+v", r)
	}

	// A command never handed over times out as well.
	c2, err := w.Devices.SetDesiredState(as(w.MgrA), id, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(6 * time.Minute)
	if r := expire(); len(r) != 1 || r[0].CommandID != c2.ID || r[0].State != disabled {
		t.Errorf("retries of the unsent disable: %+v", r)
	}
	WantCode(t, "MarkSent of an unknown command", w.Controller.MarkSent(ctx, 99999, nil), doorledger.ENOTFOUND)
}

// A device that answers a revoke with the version it was sent but the
// state it had is refusing the command. That is neither "confirmed" nor
// "waiting": the command is recorded refused, journaled, and the managers are
// alerted at once, not after the time-out.
func testDeviceRefusedRevoke(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	id := w.enabledConfirmed(t)
	mgr := as(w.MgrA)
	revoke, err := w.Devices.SetDesiredState(mgr, id, disabled, "revoked by a manager")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.MarkSent(context.Background(), revoke.ID, nil); err != nil {
		t.Fatal(err)
	}

	// The device takes version 2 but stays enabled.
	*w.Now = w.Now.Add(2 * time.Second)
	w.Report(t, id, enabled, 2)

	c := w.MustCommand(t, id, 2)
	if c.Status != doorledger.CommandRefused || !c.ConfirmedAt.IsZero() || !c.RefusedAt.Equal(*w.Now) || c.ID != revoke.ID {
		t.Errorf("revoke after the device said enabled v2: status %s, confirmed %v, refused %v; want refused now, never confirmed", c.Status, c.ConfirmedAt, c.RefusedAt)
	}
	dev := w.MustDevice(t, id)
	if dev.Confirmed() || !dev.Refused() || dev.Pending() {
		t.Errorf("device: confirmed %v, refused %v, pending %v; want refused only", dev.Confirmed(), dev.Refused(), dev.Pending())
	}
	if dev.DesiredState != disabled || dev.ReportedState != enabled || dev.CommandStatus != doorledger.CommandRefused {
		t.Errorf("device: desired %s, reported %s, command %s", dev.DesiredState, dev.ReportedState, dev.CommandStatus)
	}
	st := dev.Status(*w.Now, 30*time.Second)
	if st.Label != "disabled · device refused: still enabled" || st.Tone != doorledger.ToneAlarm || st.Code != "refused" {
		t.Errorf("device status %+v, want the alarm \"disabled · device refused: still enabled\"", st)
	}
	if cs := c.Status.Describe(c.State); cs.Tone != doorledger.ToneAlarm || !strings.Contains(strings.ToLower(cs.Label), "refused") {
		t.Errorf("command status %+v, want an alarm saying refused", cs)
	}

	journal := func() int { return w.JournalCount(t, "command.refused", revoke.ID, deviceLabel(id)) }
	alerts := func(to string) int { return w.AlertCount(t, to, "Device * REFUSED*") }
	if n := journal(); n != 1 {
		t.Errorf("%d command.refused journal entries, want 1", n)
	}
	if n := alerts(w.MgrA.Email); n != 1 {
		t.Errorf("%d refusal alerts to the manager at once, want 1", n)
	}
	var body string
	for _, m := range w.MailsTo(t, w.MgrA.Email) {
		if strings.Contains(m.Subject, "REFUSED") {
			body = m.Body
		}
	}
	for _, want := range []string{"still ENABLED", "told it to be disabled", "couriers may still be able to open the door"} {
		if !strings.Contains(body, want) {
			t.Errorf("alert body lacks %q:\n%s", want, body)
		}
	}
	if n := w.JournalCount(t, "command.confirmed", revoke.ID, ""); n != 0 {
		t.Errorf("the refused revoke was journaled confirmed %d times", n)
	}

	// The device says it again: a sign of life, not a second alert.
	*w.Now = w.Now.Add(time.Second)
	w.Report(t, id, enabled, 2)
	if j, a := journal(), alerts(w.MgrA.Email); j != 1 || a != 1 {
		t.Errorf("after a repeat: %d journal entries and %d alerts, want 1 and 1", j, a)
	}

	// The time-out does not turn "refused" into "not confirmed", and the
	// refused command is sent again with the retries.
	*w.Now = w.Now.Add(10 * time.Minute)
	retries, err := w.Controller.ExpireUnconfirmed(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 || retries[0].CommandID != revoke.ID || retries[0].State != disabled {
		t.Errorf("retries %+v, want the refused revoke", retries)
	}
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the time-out: %s, want still refused", c.Status)
	}
	if n := w.JournalCount(t, "command.not_confirmed", revoke.ID, ""); n != 0 {
		t.Errorf("a refused command also timed out (%d entries)", n)
	}
	if open, err := w.Devices.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id, Open: true}); err != nil || len(open) != 1 {
		t.Errorf("open commands %d (%v), want the refused one", len(open), err)
	}

	// When the device finally disables, the command is confirmed.
	w.Report(t, id, disabled, 2)
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandConfirmed || c.ConfirmedAt.IsZero() {
		t.Errorf("after the device disabled: %+v", c)
	}
	if dev := w.MustDevice(t, id); !dev.Confirmed() || dev.Refused() {
		t.Errorf("device after it disabled: %+v", dev)
	}

	// A device that confirmed and then says the opposite for the same
	// version has gone back on it: refused again, and alerted.
	*w.Now = w.Now.Add(time.Minute)
	w.Report(t, id, enabled, 2)
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the device went back to enabled: %s, want refused", c.Status)
	}
	if dev := w.MustDevice(t, id); !dev.Refused() {
		t.Errorf("device after going back: %+v", dev)
	}
	if j := journal(); j != 2 {
		t.Errorf("%d command.refused entries after the device went back, want 2", j)
	}
}

func deviceLabel(id int64) string { return "device " + itoa(id) }

// Delivery records (Controller.MarkSentMany, which may hold them a while)
// written after their command was confirmed or timed out leave the status
// alone, and the latest delivery time wins whatever the order.
func testDeviceDeliveryRecordsAnyOrder(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled := doorledger.StateEnabled
	ctx := context.Background()
	id, _ := w.ConsentedDevice(t)
	c1, err := w.Devices.SetDesiredState(as(w.MgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	// Timed out before its record was written: ExpireUnconfirmed writes the
	// record first, then finds the command past its time-out.
	first := *w.Now
	if err := w.Controller.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(10 * time.Minute)
	retries, err := w.Controller.ExpireUnconfirmed(ctx, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 {
		t.Fatalf("retries %+v", retries)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandNotConfirmed || c.Attempts != 1 || !c.SentAt.Equal(first) {
		t.Errorf("after the time-out: %+v", c)
	}
	// The retry's record may be held; a failed retry, recorded at once, writes it first.
	retried := *w.Now
	if err := w.Controller.MarkSentMany(ctx, retries); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(time.Second)
	if err := w.Controller.MarkSent(ctx, c1.ID, context.DeadlineExceeded); err != nil {
		t.Fatal(err)
	}
	c := w.MustCommand(t, id, 1)
	if c.Status != doorledger.CommandNotConfirmed || c.Attempts != 3 || !c.SentAt.Equal(retried) || c.LastError != context.DeadlineExceeded.Error() {
		t.Errorf("after a held retry and a failed one: %+v", c)
	}
	// Confirmed, then a record arrives late: still confirmed.
	w.Report(t, id, enabled, 1)
	if err := w.Controller.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.FlushSent(ctx); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed || c.Attempts != 4 {
		t.Errorf("a late record: %+v", c)
	}
}
